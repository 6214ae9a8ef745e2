-- KEYS = {m, v, x, i} (a spawn's staged state: the session's own keys; or an import's staged keys, then the hash of
-- the imports staged for the session, im); ARGV: token. Only this spawn's or import's staged state goes (of an import
-- a call has taken already, 'k:<token>' (adopt.lua), only its marker: the rest is the session's working memory).
local m, v, x, inc = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if KEYS[5] then redis.call('HDEL', KEYS[5], ARGV[1]) end
local state = redis.call('GET', m)
if state == 'k:' .. ARGV[1] then
  redis.call('DEL', m, inc)
  return {'ok', 1}
end
if state ~= 'p:' .. ARGV[1] then return {'ok', 0} end
redis.call('DEL', m, v, x, inc)
return {'ok', 1}
