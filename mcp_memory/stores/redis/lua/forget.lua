-- ARGV: incarnation. Spawn discarded the durable session ``incarnation`` (it could not open it): a re-open of it
-- by another call is an orphan now, dropped (a later call finds the session unknown, as the durable store does),
-- with a pause's copy (KEYS[5..7], copies.py) and the order of its transitions (KEYS[8]). The claims of calls
-- re-opening it (KEYS[10], claim.lua) go whichever incarnation Redis holds: a re-open in flight writes nothing then.
local m, v, x, inc = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
redis.call('DEL', KEYS[10])
if redis.call('GET', inc) ~= ARGV[1] then return {'ok', 0} end
redis.call('DEL', m, v, x, inc, KEYS[5], KEYS[6], KEYS[7], KEYS[8])
return {'ok', 1}
