-- ARGV: now, key, value, expires_at ('' = none), max_keys, margin
-- Needs lib.lua, which scripts.py puts before it (the locals m, v, x and the functions purge and reclaim).
local state = redis.call('GET', m)
if not state or string.sub(state, 1, 1) == 'p' then return {'missing'} end
if state ~= 'o' then return {'sealed', state} end
if no_room() then return {'oom'} end
local now, key = ARGV[1], ARGV[2]
purge(now)
if redis.call('HEXISTS', v, key) == 0 and redis.call('HLEN', v) >= tonumber(ARGV[5]) then return {'full'} end
redis.call('HSET', v, key, ARGV[3])
if ARGV[4] == '' then redis.call('ZREM', x, key) else redis.call('ZADD', x, ARGV[4], key) end
reclaim(now, ARGV[6])
return {'ok'}
