-- KEYS = {m, v, x, i, cv, cx, ct, g, im, r} (copies.all_keys_of). delete_session found no durable session, so what
-- Redis holds of it is a leftover of a deleted one (a re-open that raced a deletion whose last erase failed), deleted
-- here with the claims of calls re-opening it (claim.lua: their writes then land nothing). Two things are not
-- leftovers and stay: a spawn's staged state (m 'p:<token>', staging.py: its durable session is incomplete, unknown
-- until the spawn completes), left whole with every key of the session, and the note of imports staged for it (im:
-- an import whose durable records have not committed yet; its switch takes a missing note for a deletion since).
-- Returns {'ok', the count of keys deleted} or {'staged'} (nothing deleted).
if string.sub(redis.call('GET', KEYS[1]) or '', 1, 1) == 'p' then return {'staged'} end
return {'ok', redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[10])}
