-- Shared by the scripts that write: KEYS = {m, v, x, ...}; purge(now) deletes the items whose TTL has passed,
-- reclaim(now, margin) gives v and x a real Redis expiry when every key left has a TTL (the latest plus margin).
local m, v, x = KEYS[1], KEYS[2], KEYS[3]
local function purge(now)
  local dead = redis.call('ZRANGEBYSCORE', x, '-inf', now)
  for i = 1, #dead, 500 do
    local j = math.min(i + 499, #dead)
    redis.call('HDEL', v, unpack(dead, i, j))
    redis.call('ZREM', x, unpack(dead, i, j))
  end
end
local function reclaim(now, margin)
  local n = redis.call('HLEN', v)
  if n == 0 then
    redis.call('DEL', x)
  elseif redis.call('ZCARD', x) == n then
    local last = redis.call('ZRANGE', x, -1, -1, 'WITHSCORES')
    local ms = math.ceil((tonumber(last[2]) - tonumber(now)) * 1000) + tonumber(margin)
    redis.call('PEXPIRE', v, ms)
    redis.call('PEXPIRE', x, ms)
  else
    redis.call('PERSIST', v)
    redis.call('PERSIST', x)
  end
end
