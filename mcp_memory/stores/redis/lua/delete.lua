-- ARGV: now, key, margin
-- Needs lib.lua, which scripts.py puts before it (the locals m, v, x and the functions purge and reclaim).
local state = redis.call('GET', m)
if not state or string.sub(state, 1, 1) == 'p' then return {'missing'} end
if state ~= 'o' then return {'sealed', state} end
local e = redis.call('ZSCORE', x, ARGV[2])
if redis.call('HDEL', v, ARGV[2]) == 0 then return {'ok', 0} end
redis.call('ZREM', x, ARGV[2])
reclaim(ARGV[1], ARGV[3])
if e and tonumber(e) <= tonumber(ARGV[1]) then return {'ok', 0} end
return {'ok', 1}
