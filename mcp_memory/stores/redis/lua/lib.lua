-- Shared by the scripts that write: KEYS = {m, v, x, ...}; purge(now) deletes the items whose TTL has passed,
-- reclaim(now, margin[, hv, hx]) gives v and x (or the hash hv and the zset hx) a real Redis expiry when every key
-- left has a TTL (the latest plus margin), and none otherwise; no_room() says whether Redis is full; closed(...)
-- marks a terminated session 't' for as long as the data it guards; made_from_other(hi, wanted) says whether it was
-- made from another durable session than the caller read.
local m, v, x = KEYS[1], KEYS[2], KEYS[3]
local function purge(now)
  local dead = redis.call('ZRANGEBYSCORE', x, '-inf', now)
  for i = 1, #dead, 500 do
    local j = math.min(i + 499, #dead)
    redis.call('HDEL', v, unpack(dead, i, j))
    redis.call('ZREM', x, unpack(dead, i, j))
  end
end
local function reclaim(now, margin, hv, hx)
  hv, hx = hv or v, hx or x
  local n = redis.call('HLEN', hv)
  if n == 0 then
    redis.call('DEL', hx)
  elseif redis.call('ZCARD', hx) == n then
    local last = redis.call('ZRANGE', hx, -1, -1, 'WITHSCORES')
    local ms = math.ceil((tonumber(last[2]) - tonumber(now)) * 1000) + tonumber(margin)
    redis.call('PEXPIRE', hv, ms)
    redis.call('PEXPIRE', hx, ms)
  else
    redis.call('PERSIST', hv)
    redis.call('PERSIST', hx)
  end
end
-- A terminated session's marker hm becomes 't' for as long as the data it guards (its kept items hv, hx), and its
-- incarnation hi lasts as long: for good while an item without a TTL is kept, else until the last item's expiry plus
-- tombstone ms (just that once nothing is kept). The caller has deleted hm first, or written before: a full Redis
-- refuses a script's first write if it may grow memory.
local function closed(now, tombstone, hm, hv, hx, hi)
  local n, ms = redis.call('HLEN', hv), tonumber(tombstone)
  if n > 0 and redis.call('ZCARD', hx) < n then
    redis.call('SET', hm, 't')
    redis.call('PERSIST', hi)
    return
  end
  if n > 0 then
    local last = redis.call('ZRANGE', hx, -1, -1, 'WITHSCORES')
    ms = ms + math.max(0, math.ceil((tonumber(last[2]) - tonumber(now)) * 1000))
  end
  redis.call('SET', hm, 't', 'PX', ms)
  redis.call('PEXPIRE', hi, ms)
end
-- Whether the working memory notes (in hi, its i key) another durable session than ``wanted``, the one its caller read
-- (a resume's checkpoint): the session was deleted and its id spawned again since. '' asks nothing; working memory
-- noting none (an earlier release's) is not another.
local function made_from_other(hi, wanted)
  if not wanted or wanted == '' then return false end
  local noted = redis.call('GET', hi)
  return noted ~= false and noted ~= wanted
end
-- Whether Redis is full (maxmemory reached under noeviction). Redis refuses a command that may grow memory only
-- while a script has not written yet: after its first write (a DEL, a purge's HDEL) every later one goes through,
-- past maxmemory. A script that grows memory asks this before its first write, so that it refuses whole ({'oom'})
-- or, for a pause's copy, leaves the copy out. An empty SETRANGE is such a command that writes nothing (an ACL
-- without it makes the answer "not known": no refusal, as before this check).
local function no_room()
  local r = redis.pcall('SETRANGE', m, 0, '')
  return type(r) == 'table' and type(r.err) == 'string' and string.sub(r.err, 1, 3) == 'OOM'
end
-- The order of a session's transition (a pause's snapshot, a resume's restore), which its durable record carries so
-- that a record landing late does not set the status back (copies.py, TRANSITION ORDER). Above the last order given
-- while g (the session's order key) lives, and never below Redis's clock in microseconds: a session whose keys Redis
-- lost (g with them, or g expired after a day without transitions) still orders after what it was given before.
-- Stored with pcall: a full Redis still answers, ordered by its clock. An ACL without TIME (one written for an
-- earlier release) gives no order (false): the record then sets the status as it did before orders existed, rather
-- than the script failing or a restarted count ranking below orders already recorded.
local function next_order(g)
  local t = redis.pcall('TIME')
  if type(t) ~= 'table' or t.err then return false end
  local n = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local last = tonumber(redis.call('GET', g) or '0')
  if last >= n then n = last + 1 end
  redis.pcall('SET', g, string.format('%d', n), 'PX', 86400000)
  return n
end
-- A re-open from the durable store (write.lua's "recover") raises g to the order its record last carried: a Redis
-- whose clock is behind the one that gave that order (a failover to another host, a clock stepped back) would
-- otherwise give orders below it, and every later record would leave the status as it was until its clock caught up.
local function raise_order(g, floor)
  local f = tonumber(floor)
  if not f then return end
  if tonumber(redis.call('GET', g) or '0') < f then redis.call('SET', g, string.format('%d', f), 'PX', 86400000) end
end
