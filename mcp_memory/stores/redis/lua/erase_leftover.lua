-- KEYS = {m, v, x, i, cv, cx, ct, g, im, r} (copies.all_keys_of); ARGV: mode ('probe' or 'erase'), the incarnation
-- the probe read ('' for none noted; erase only). delete_session found no durable session, so what Redis holds of it
-- is a leftover of a deleted one (a re-open that raced a deletion whose last erase failed), deleted here with the
-- claims of calls re-opening it (claim.lua: their writes then land nothing). Not leftovers, and kept: a spawn's
-- staged state (m 'p:<token>': its durable session is incomplete, unknown until the spawn completes) with every key
-- of the session, and the note of imports staged for it (im: an import whose durable records have not committed; its
-- switch takes a missing note for a deletion since). 'probe' reads what the session's keys note they were made from;
-- the caller then reads the durable store again, and 'erase' deletes only if that is still what they note: a spawn
-- of the id that completed since (its durable commit comes before its Redis one) notes its own incarnation.
-- Returns {'none'} (nothing of it, or a staging), {'found', noted}, {'other'} (changed since the probe: nothing
-- deleted) or {'ok', the count of keys deleted}.
local m = redis.call('GET', KEYS[1])
if not m or string.sub(m, 1, 1) == 'p' then return {'none'} end
local noted = redis.call('GET', KEYS[4]) or ''
if ARGV[1] == 'probe' then return {'found', noted} end
if noted ~= ARGV[2] then return {'other'} end
return {'ok', redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[10])}
