-- ARGV: 's' to seal, 'o' to unseal, 'c' to clear a stale seal; the terminate's token; now, the lease's end and the
-- durable session the terminate read (scripts.incarnation, or ''), seal only. A sealed marker is
-- 's:<token>:<lease end>', or 's' (no owner: re-opened sealed from the durable record). A seal succeeds if the
-- session is open, sealed by this token or by nobody, or its owner's lease has run out ('held' and the marker
-- otherwise); an unseal clears only this token's seal (or an ownerless one); 'c' clears the seal only
-- if exactly this token ('' : nobody) still holds it (compare and delete: never a seal another terminate made since).
-- A terminated session ('t') stays terminated ({'terminated'}). A session sealed that notes no incarnation (i: made
-- by an earlier release) notes the one given: the terminate's last step (clear.lua) tells its own session by it.
local m = KEYS[1]
-- Each SET below replaces the marker after a DEL of it: Redis refuses a script's first write on a full Redis (above
-- maxmemory) only if that write may grow memory, and a DEL may not; so a full Redis still lets a terminate seal the
-- session (a few bytes), consolidate it and free its memory.
local state = redis.call('GET', m)
if not state or string.sub(state, 1, 1) == 'p' then return {'missing'} end
if state == 't' then return {'terminated'} end
local owner, lease = string.match(state, '^s:([^:]*):(.*)$')
local mine = state == 's' or owner == ARGV[2]
if ARGV[1] == 's' then
  if not (mine or state == 'o' or (lease and tonumber(lease) <= tonumber(ARGV[3]))) then return {'held', state} end
  redis.call('DEL', m)
  redis.call('SET', m, 's:' .. ARGV[2] .. ':' .. ARGV[4])
  if ARGV[5] and ARGV[5] ~= '' then redis.call('SET', KEYS[4], ARGV[5], 'NX') end
elseif ARGV[1] == 'c' then
  if (owner or '') == ARGV[2] and string.sub(state, 1, 1) == 's' then
    redis.call('DEL', m)
    redis.call('SET', m, 'o')
  end
elseif mine then
  redis.call('DEL', m)
  redis.call('SET', m, 'o')
end
return {'ok'}
