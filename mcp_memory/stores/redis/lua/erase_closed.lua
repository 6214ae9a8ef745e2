-- ARGV: incarnation (scripts.incarnation of the durable session a terminate recorded). KEYS as erase.lua's. That
-- session's record has been deleted (delete_session, by another server) since the terminate recorded it, and the
-- terminate's marking (clear.lua) may have come after the deletion's erase, writing the terminated marker into a Redis
-- the deletion had emptied: the session's keys go, as the deletion's erase (erase.lua) took them. Only that session's:
-- keys noting its incarnation, or a terminated marker noting none (what clear.lua leaves where Redis held nothing).
-- Another incarnation (the id spawned again: staged, open, or terminated, noting its own) is left alone, and so are
-- the note of imports (im) and the re-open claims (r): the deletion erased this session's, any left are another's.
local m, v, x, inc = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local noted = redis.call('GET', inc)
if noted then
  if noted ~= ARGV[1] then return {'ok', 0} end
elseif redis.call('GET', m) ~= 't' then
  return {'ok', 0}
end
redis.call('DEL', m, v, x, inc, KEYS[5], KEYS[6], KEYS[7], KEYS[8])
return {'ok', 1}
