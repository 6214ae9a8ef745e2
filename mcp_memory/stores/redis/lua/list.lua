-- ARGV: now, prefix
local m, v, x = KEYS[1], KEYS[2], KEYS[3]
local st = redis.call('GET', m)
if not st or string.sub(st, 1, 1) == 'p' then return {'missing'} end
local dead = {}
for _, k in ipairs(redis.call('ZRANGEBYSCORE', x, '-inf', ARGV[1])) do dead[k] = true end
local prefix = ARGV[2]
local n = #prefix
local out = {'ok'}
for _, k in ipairs(redis.call('HKEYS', v)) do
  if not dead[k] and (n == 0 or string.sub(k, 1, n) == prefix) then out[#out + 1] = k end
end
return out
