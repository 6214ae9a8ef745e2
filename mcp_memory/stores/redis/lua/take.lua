-- KEYS = {m, v, x, i, cv, cx, ct, g}; ARGV: now, margin, max_keys, snapshot nonce[, incarnation].
-- Needs lib.lua, which scripts.py puts before it (the locals m, v, x and the functions purge and reclaim).
-- A resume with clear of a checkpoint made from the snapshot ``nonce`` (the checkpoint's record names it): if the tag
-- names that nonce (the copy is that snapshot's, so exactly the checkpoint's content), the copy is whole (its counts
-- as the snapshot made it: Redis may evict one key and not another) and the session is open, the working memory
-- becomes a copy of the copy (COPY: the copy stays, for another resume of the same checkpoint), less the items
-- expired at ``now``; {'ok', n, the resume's order among the session's transitions (lib.lua)}. Otherwise {'nocopy'} and nothing changed: the caller restores from the
-- checkpoint's text, which gives every other answer (missing, sealed, full) as a restore does. With an incarnation
-- (the durable session the checkpoint was read from), working memory that notes another (i: the session was deleted
-- and spawned again since the read) is left as it is, {'other'}, as write.lua's restore refuses it.
local cv, cx, ct = KEYS[5], KEYS[6], KEYS[7]
local now = ARGV[1]
if redis.call('GET', m) ~= 'o' then return {'nocopy'} end
if made_from_other(KEYS[4], ARGV[5]) then return {'other'} end
local tag = redis.call('HMGET', ct, 'nonce', 'n', 'nx')
if tag[1] ~= ARGV[4] then return {'nocopy'} end
local n, nx = tonumber(tag[2]), tonumber(tag[3])
if redis.call('HLEN', cv) ~= n or redis.call('ZCARD', cx) ~= nx then
  redis.call('DEL', cv, cx, ct)
  return {'nocopy'}
end
if n - redis.call('ZCOUNT', cx, '-inf', now) > tonumber(ARGV[3]) then return {'nocopy'} end
if no_room() then return {'oom'} end
redis.call('DEL', v, x)
if n > 0 then redis.call('COPY', cv, v) end
if nx > 0 then redis.call('COPY', cx, x) end
purge(now)
reclaim(now, ARGV[2])
return {'ok', redis.call('HLEN', v), next_order(KEYS[8])}
