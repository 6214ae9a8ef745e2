-- KEYS = {m, v, x, i}; ARGV: token. Only this spawn's staged state goes.
local m, v, x, inc = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('GET', m) ~= 'p:' .. ARGV[1] then return {'ok', 0} end
redis.call('DEL', m, v, x, inc)
return {'ok', 1}
