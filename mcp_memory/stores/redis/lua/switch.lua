-- KEYS: 12 per session: its staged keys {sm, sv, sx, si} (an import's, same hash slot), its live {m, v, x, i}, then
-- its pause copy {cv, cx, ct} (copies.py: dropped, as the import replaces the session's checkpoints), then the hash
-- of the imports staged for it {im} (staging.py);
-- ARGV: token, now, margin, markers (one letter per session: 'o' open, 's' sealed by nobody: its terminate was cut
-- off, 't' terminated: it kept its keys, which no write may change), tombstone ms, then one incarnation per session
-- (the durable record it was imported as, scripts.incarnation; '' or absent: none), which it notes (i) as a spawn's
-- commit does.
-- Checks first that every session's staged state is this import's (else {'missing', n}: nothing changed),
-- then makes each staged state the session's working memory (with its marker),
-- so the sessions of one script switch together or not at all. A staged state a call has taken already ('k:<token>',
-- adopt.lua: the call found the session missing after the durable commit) is the session's working memory, with what
-- that call and later ones wrote: it is left as it is (only the staging's marker goes). Staged keys carry the staging
-- TTL (so that a crashed import's go by themselves): the live ones get the expiry a write would give them (reclaim,
-- lib.lua), and a terminated session is closed here as terminate closes one keeping its keys (closed, lib.lua: its
-- marker and i expire a tombstone after its last key, or never while a key without a TTL is kept): no later step is
-- left to give them an end, nor one that could mark a session deleted meanwhile. A session whose note of this
-- staging (im) is gone was deleted since the durable commit (delete_session and forget erase the note with the
-- session's keys): its staged state is dropped, nothing of it switched in. A session switched in loses its whole
-- note hash (im): the notes of other imports staged for it name imports that can no longer commit.
-- {'ok', the count switched, then the index (from 0) of each session so left out}.
local n = #KEYS / 12
for s = 0, n - 1 do
  local staged = redis.call('GET', KEYS[12 * s + 1])
  if staged ~= 'p:' .. ARGV[1] and staged ~= 'k:' .. ARGV[1] then return {'missing', s} end
end
local gone = {}
for s = 0, n - 1 do
  local b = 12 * s
  local staged = redis.call('GET', KEYS[b + 1]) == 'p:' .. ARGV[1]
  if staged and redis.call('HEXISTS', KEYS[b + 12], ARGV[1]) == 0 then
    redis.call('DEL', KEYS[b + 2], KEYS[b + 3])
    gone[#gone + 1] = s
    staged = false
  end
  if staged then
    -- This import's note was still there, so no deletion came since its staging, and its durable records are
    -- committed: no other import staged for this session can commit any more, and their notes all go.
    redis.call('DEL', KEYS[b + 12])
    redis.call('DEL', KEYS[b + 5], KEYS[b + 6], KEYS[b + 7], KEYS[b + 8], KEYS[b + 9], KEYS[b + 10], KEYS[b + 11])
    if redis.call('EXISTS', KEYS[b + 2]) == 1 then redis.call('RENAME', KEYS[b + 2], KEYS[b + 6]) end
    if redis.call('EXISTS', KEYS[b + 3]) == 1 then redis.call('RENAME', KEYS[b + 3], KEYS[b + 7]) end
    reclaim(ARGV[2], ARGV[3], KEYS[b + 6], KEYS[b + 7])
    local marker = string.sub(ARGV[4] or '', s + 1, s + 1)
    local made_from = ARGV[6 + s]
    if made_from and made_from ~= '' then redis.call('SET', KEYS[b + 8], made_from) end
    if marker == 't' then
      closed(ARGV[2], ARGV[5], KEYS[b + 5], KEYS[b + 6], KEYS[b + 7], KEYS[b + 8])
    else
      redis.call('SET', KEYS[b + 5], marker == 's' and marker or 'o')
    end
  else
    redis.call('HDEL', KEYS[b + 12], ARGV[1])
  end
  redis.call('DEL', KEYS[b + 1], KEYS[b + 4])
end
return {'ok', n - #gone, unpack(gone)}
