-- ARGV: incarnation. Spawn discarded the durable session ``incarnation`` (it could not open it): a re-open of it
-- by another call is an orphan now, dropped (a later call finds the session unknown, as the durable store does).
local m, v, x, inc = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('GET', inc) ~= ARGV[1] then return {'ok', 0} end
redis.call('DEL', m, v, x, inc)
return {'ok', 1}
