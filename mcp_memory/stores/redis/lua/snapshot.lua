-- ARGV: now
-- Needs lib.lua, which scripts.py puts before it (the locals m, v, x and the functions purge and reclaim).
local st = redis.call('GET', m)
if not st or string.sub(st, 1, 1) == 'p' then return {'missing'} end
purge(ARGV[1])
return {'ok', redis.call('HGETALL', v), redis.call('ZRANGE', x, 0, -1, 'WITHSCORES')}
