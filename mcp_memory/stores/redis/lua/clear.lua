-- ARGV: now, tombstone_ms, terminated ('1': the durable record says so), keep ('1': the items stay), and which session
-- the durable record is of ('' each: whichever Redis holds): the token of the terminate that recorded it, and the
-- incarnation it was made from (scripts.incarnation)
-- KEYS: m, v, x, i, the pause's copy (cv, cx, ct), the order key g
-- A terminated session's marker becomes 't' whatever it was (a failed terminate elsewhere may have unsealed it to
-- 'o' meanwhile, or Redis may not know the session at all): only a spawn of another incarnation overwrites 't'. It
-- lasts as long as the data it guards, a day (the tombstone) once the data is gone (closed, lib.lua, which
-- scripts.py puts before this script).
local inc = KEYS[4]  -- (m, v, x: lib.lua's)
local state = redis.call('GET', m)
local token, made_from = ARGV[5], ARGV[6]
if token ~= '' or made_from ~= '' then
  -- Only that session: it may have been deleted and its id spawned again since, and the new one (its items, its
  -- pause's copy, its openness) is not this terminate's. A staged spawn is another's (a spawn needs the record gone);
  -- a seal of this terminate's token, its own; else the incarnation noted (by a spawn's commit, a re-open, an
  -- import's switch, or the seal of a terminate) decides. A session Redis holds that notes none was made by an
  -- earlier release, and not sealed by this terminate since (its seal notes it): another's, left alone.
  if state and string.sub(state, 1, 1) == 'p' then return {'ok', 0} end
  local own_seal = token ~= '' and state and string.sub(state, 1, #token + 3) == 's:' .. token .. ':'
  if not own_seal and made_from ~= '' then
    local noted = redis.call('GET', inc)
    if noted ~= made_from and (noted or state) then return {'ok', 0} end
  end
end
-- A pause's copy (KEYS[5..7], copies.py) goes first, whatever else happens: a terminated or cleared session resumes
-- from its checkpoint's text.
redis.call('DEL', KEYS[5], KEYS[6], KEYS[7])
if state and string.sub(state, 1, 1) == 'p' then state = false end  -- a staged spawn: not a session yet
local terminated = ARGV[3] == '1'
if not state and not terminated then return {'ok', 0} end
local live = 0
if ARGV[4] ~= '1' then
  live = redis.call('HLEN', v) - redis.call('ZCOUNT', x, '-inf', ARGV[1])
  redis.call('DEL', v, x)
end
if terminated then
  -- The marker is replaced after a DEL of it (as in seal.lua): a full Redis refuses a script's first write only if it
  -- may grow memory, and a terminate frees memory.
  redis.call('DEL', m)
  -- The order of its transitions (KEYS[8]) has nothing left to order: the durable record refuses a late pause or
  -- resume of a terminated session whatever its order.
  redis.call('DEL', KEYS[8])
  -- Items kept with a TTL each: the marker outlives the last (Redis drops them after it); one without: no expiry.
  closed(ARGV[1], ARGV[2], m, v, x, inc)
elseif string.sub(state, 1, 1) == 's' then
  redis.call('PEXPIRE', m, ARGV[2])
  redis.call('PEXPIRE', inc, ARGV[2])
end
return {'ok', live}
