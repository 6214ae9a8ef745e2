-- KEYS = {m, v, x, i} of an import's staged state; ARGV: token, ms. Gives each of them the staging TTL, if the
-- state is still this import's: staged keys are read by nothing but the switch, so those of an import that crashed
-- before its switch or its cleanup would otherwise stay for good.
if redis.call('GET', KEYS[1]) ~= 'p:' .. ARGV[1] then return {'missing'} end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[2]) end
return {'ok'}
