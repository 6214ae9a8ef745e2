-- ARGV: now[, nonce, copy_ms, min_keys]. KEYS = {m, v, x, i[, cv, cx, ct, g]}.
-- Needs lib.lua, which scripts.py puts before it (the locals m, v, x and the functions purge and reclaim).
-- With a nonce (a pause, copies.py): the state returned is also copied (COPY: server-side, no decode) to cv and
-- cx, with a tag ct naming the nonce and the copy's counts; the pause records the nonce with its checkpoint, and
-- take.lua copies the copy into v and x at a resume of the checkpoint that names it. A state of fewer than min_keys
-- keys is not copied (taking a copy would save its resume little and double its memory); any earlier copy goes, and
-- a session that is not open (sealed or terminated: its pause is refused durably) is not copied either. The reply's
-- fourth element: 1 if copied; its fifth, with a nonce, the pause's order among the session's transitions (lib.lua);
-- its sixth, the durable session this working memory was made from (i, nil if none is noted): the pause's record
-- lands only on that session, not on one deleted and spawned again under its id since this snapshot.
local st = redis.call('GET', m)
if not st or string.sub(st, 1, 1) == 'p' then return {'missing'} end
local room = not no_room() -- a full Redis still gives the pause its state, without a copy
purge(ARGV[1])
local copied = 0
if ARGV[2] then
  local cv, cx, ct = KEYS[5], KEYS[6], KEYS[7]
  redis.call('DEL', cv, cx, ct)
  if room and st == 'o' and redis.call('HLEN', v) >= tonumber(ARGV[4]) then copied = 1 end
end
if copied == 1 then
  local cv, cx, ct = KEYS[5], KEYS[6], KEYS[7]
  redis.call('COPY', v, cv)
  redis.call('COPY', x, cx)
  -- The session's reclaim expiry (lib.lua), at most copy_ms: an abandoned copy goes by itself.
  local ms, left = tonumber(ARGV[3]), redis.call('PTTL', v)
  if left > 0 and left < ms then ms = left end
  redis.call('HSET', ct, 'nonce', ARGV[2], 'n', redis.call('HLEN', cv), 'nx', redis.call('ZCARD', cx))
  redis.call('PEXPIRE', ct, ms)
  redis.call('PEXPIRE', cv, ms)
  redis.call('PEXPIRE', cx, ms)
end
local order = 0
if ARGV[2] then order = next_order(KEYS[8]) end
return {'ok', redis.call('HGETALL', v), redis.call('ZRANGE', x, 0, -1, 'WITHSCORES'), copied, order,
  redis.call('GET', KEYS[4])}
