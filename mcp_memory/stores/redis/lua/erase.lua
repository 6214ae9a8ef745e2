-- ARGV: now, dry ('1': count only). Deletes one session's keys whatever its state (delete_session, forget); returns
-- the count of its live keys and whether Redis held anything of it. KEYS = {m, v, x, i, cv, cx, ct, g, im, r}: a
-- pause's copy (copies.py), the order of its transitions, the note of the imports staged for it (staging.py: an
-- import's switch then leaves it deleted) and the claims of calls re-opening it (claim.lua: their writes then land
-- nothing) go with the session.
local m, v, x, inc = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local live = redis.call('HLEN', v) - redis.call('ZCOUNT', x, '-inf', ARGV[1])
if live < 0 then live = 0 end
local held = redis.call('EXISTS', m, v, x, inc)
if ARGV[2] ~= '1' then redis.call('DEL', m, v, x, inc, KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]) end
return {'ok', live, held}
