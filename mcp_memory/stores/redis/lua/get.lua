-- ARGV: now, key
local m, v, x = KEYS[1], KEYS[2], KEYS[3]
local st = redis.call('GET', m)
if not st or string.sub(st, 1, 1) == 'p' then return {'missing'} end
local value = redis.call('HGET', v, ARGV[2])
if not value then return {'ok'} end
local e = redis.call('ZSCORE', x, ARGV[2])
if e and tonumber(e) <= tonumber(ARGV[1]) then return {'ok'} end
return {'ok', value, e or ''}
