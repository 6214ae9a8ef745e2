-- KEYS = {m, v, x, i}; ARGV: token, now, margin, incarnation. "ok" once the session is committed (or a call re-opened
-- it from the durable store already, which only happens once the spawn completed there); "missing" if the staged
-- state is not there (Redis lost it, or it was replaced). The session notes the durable incarnation it is (i), as a
-- re-open does: a late terminate of an earlier session of this id tells it apart by that (clear.lua).
local m, v, x = KEYS[1], KEYS[2], KEYS[3]
local state = redis.call('GET', m)
if state == 'p:' .. ARGV[1] then
  redis.call('SET', m, 'o')
  if ARGV[4] and ARGV[4] ~= '' then redis.call('SET', KEYS[4], ARGV[4]) end
  return {'ok'}
end
if state and string.sub(state, 1, 1) ~= 'p' then return {'ok'} end
return {'missing'}
