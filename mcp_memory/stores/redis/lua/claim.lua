-- KEYS = {r}: the claims of the calls re-opening the session from the durable store (store.py); ARGV: 'c' to claim
-- or 'd' to drop a claim, the call's nonce, how long a claim lasts (ms). A re-open claims first, then reads the
-- durable record, and its write (write.lua's "recover", adopt.lua) lands only while its claim is there: a deletion
-- that the read missed erases the claims after its durable step (erase.lua, forget.lua), so no write that read the
-- record before the deletion lands after it, whenever it arrives. A claim is never taken back by its write (a forget
-- scanning for the session's keys must find one of them all along); it goes when its time is up.
if ARGV[1] == 'c' then
  redis.call('HSET', KEYS[1], ARGV[2], '1')
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('HDEL', KEYS[1], ARGV[2])
end
return {'ok'}
