-- KEYS = {m, v, x, i}; ARGV: token, now, margin. "ok" once the session is committed (or a call re-opened it from
-- the durable store already, which only happens once the spawn completed there); "missing" if the staged state is
-- not there (Redis lost it, or it was replaced).
local m, v, x = KEYS[1], KEYS[2], KEYS[3]
local state = redis.call('GET', m)
if state == 'p:' .. ARGV[1] then
  redis.call('SET', m, 'o')
  return {'ok'}
end
if state and string.sub(state, 1, 1) ~= 'p' then return {'ok'} end
return {'missing'}
