-- ARGV: mode, now, clear, max_keys, margin, state, n_plain, n_ttl, incarnation, spawn token, then n_plain (key,
-- value) pairs, then n_ttl (key, value, expires_at) triples. Items expired at ``now`` are filtered out by the caller.
-- Or n_plain "json" and one more argument: a checkpoint's stored state (a JSON object, key -> [value, expires_at or
-- null]), decoded here (nothing per item in Python, one argument instead of thousands); items expired at ``now`` are
-- left out here.
-- mode "open": the durable store has just created the session (``incarnation``): open it with exactly these items
--   (whatever a Redis that outlived its durable store still held under this scope is stale), unless a re-open of
--   this very incarnation came first: then keep what it holds and add the items whose keys it has not ("sealed" if
--   a terminate sealed it). An empty ``incarnation`` asks: "stamp" if a re-open's incarnation is there to compare.
-- mode "restore": the session must be open; clear ("1") or merge, within max_keys. With KEYS[8] (the session's order
--   key, after its copy keys), the reply's third element is the resume's order among its transitions (lib.lua).
--   A non-empty ``incarnation``: the durable session the checkpoint was read from; working memory made from another
--   (i: the session was deleted and spawned again since the read) is left as it is, {'other'} (one noting none, of
--   an earlier release, is restored).
-- mode "recover": only if Redis does not know the session: create it in ``state`` with exactly these items, and
--   note the durable ``incarnation`` it was made from. A staged spawn ("p:<token>") of the spawn token given (the
--   durable store says it completed) becomes the session as it is, in ``state``; another staged spawn is stale.
--   With KEYS[8] (the session's order key, after its copy keys), the last argument is the order its durable record
--   last carried ('' if none): the order key is raised to it (raise_order, lib.lua). With KEYS[9] (the hash of the
--   imports staged for the session, staging.py): if imports have staged this very ``incarnation``, nothing is
--   written and the answer is {'staged', token, ...}: the call takes that staged state instead (adopt.lua). With
--   KEYS[10] (the session's re-open claims, claim.lua), the last argument is the call's claim, the order the one
--   before it: nothing is written, {'unclaimed'}, unless the claim is still there (a deletion since erased it).
-- mode "spawn": stage exactly these items for the spawn token ("p:<token>": unknown to every other script until
--   staging.py's commit), over whatever Redis held under this scope (the durable row was just made for it).
-- mode "import": as "spawn", for an import's staging keys, which then expire after the last argument (ms): those of
--   an import that crashed before its switch or its cleanup go by themselves (the switch gives the live keys a
--   write's expiry). KEYS[5], if given: the hash of the imports staged for the session (staging.py), where the token
--   notes ``incarnation``, the durable record it stages for, which a call that finds the session missing compares.
--   No live key of the session is written: the durable step may still refuse the import (its pause copy, which the
--   import's checkpoints replace, goes in the switch, after the durable commit).
-- Needs lib.lua, which scripts.py puts before it (the locals m, v, x and the functions purge and reclaim).
local inc = KEYS[4]
local mode, now, clear, maxk, margin = ARGV[1], ARGV[2], ARGV[3] == '1', tonumber(ARGV[4]), ARGV[5]
local np, nt, incarnation, token = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9], ARGV[10]
-- The items as parallel arrays: plain keys and values, then keys, values and expiries of those with a TTL.
local pk, pv, tk, tv, te = {}, {}, {}, {}, {}
if ARGV[7] == 'json' then
  local cut = tonumber(now)
  for k, p in pairs(cjson.decode(ARGV[11])) do
    local e = p[2]
    if type(e) ~= 'number' then
      pk[#pk + 1], pv[#pv + 1] = k, p[1]
    elseif e > cut then
      tk[#tk + 1], tv[#tv + 1], te[#te + 1] = k, p[1], e
    end
  end
else
  local t0 = 11 + 2 * np
  for i = 11, t0 - 1, 2 do pk[#pk + 1], pv[#pv + 1] = ARGV[i], ARGV[i + 1] end
  for i = t0, t0 + 3 * nt - 1, 3 do tk[#tk + 1], tv[#tv + 1], te[#te + 1] = ARGV[i], ARGV[i + 1], ARGV[i + 2] end
end
np, nt = #pk, #tk
if no_room() then return {'oom'} end
local state = redis.call('GET', m)
local order = ARGV[#ARGV]
if mode == 'recover' and KEYS[10] then
  order = ARGV[#ARGV - 1]
  if redis.call('HEXISTS', KEYS[10], ARGV[#ARGV]) == 0 then return {'unclaimed'} end
end
if mode == 'recover' then
  if state and string.sub(state, 1, 1) == 'p' then
    if token ~= '' and state == 'p:' .. token then
      if KEYS[8] then raise_order(KEYS[8], order) end
      redis.call('SET', m, ARGV[6])
      if incarnation ~= '' then redis.call('SET', inc, incarnation) end
      purge(now)
      reclaim(now, margin)
      return {'ok', redis.call('HLEN', v)}
    end
    state = false
  end
  if state then return {'exists'} end
  if KEYS[9] and incarnation ~= '' then
    local staged, fields = {'staged'}, redis.call('HGETALL', KEYS[9])
    for j = 1, #fields, 2 do
      if fields[j + 1] == incarnation then staged[#staged + 1] = fields[j] end
    end
    if #staged > 1 then return staged end
  end
  clear = true
elseif mode == 'spawn' or mode == 'import' then
  redis.call('DEL', inc)
  clear = true
elseif mode == 'open' then
  local made_from = state and redis.call('GET', inc)
  if made_from and incarnation == '' then return {'stamp'} end
  if made_from and made_from == incarnation then
    if state ~= 'o' then return {'sealed', state} end
    purge(now)
    local n = 0
    for i = 1, np do
      if redis.call('HEXISTS', v, pk[i]) == 0 then
        redis.call('HSET', v, pk[i], pv[i])
        n = n + 1
      end
    end
    for i = 1, nt do
      if redis.call('HEXISTS', v, tk[i]) == 0 then
        redis.call('HSET', v, tk[i], tv[i])
        redis.call('ZADD', x, te[i], tk[i])
        n = n + 1
      end
    end
    redis.call('DEL', inc)
    reclaim(now, margin)
    return {'ok', n}
  end
  redis.call('DEL', inc)
  clear = true
else
  if not state or string.sub(state, 1, 1) == 'p' then return {'missing'} end
  if state ~= 'o' then return {'sealed', state} end
  if mode == 'restore' and made_from_other(inc, incarnation) then return {'other'} end
end
if clear then
  if np + nt > maxk then return {'full'} end
  redis.call('DEL', v, x)
else
  purge(now)
  local n = redis.call('HLEN', v)
  for i = 1, np do
    if redis.call('HEXISTS', v, pk[i]) == 0 then n = n + 1 end
  end
  for i = 1, nt do
    if redis.call('HEXISTS', v, tk[i]) == 0 then n = n + 1 end
  end
  if n > maxk then return {'full'} end
end
if mode == 'recover' then
  if KEYS[8] then raise_order(KEYS[8], order) end
  redis.call('SET', m, ARGV[6])
  if incarnation ~= '' then redis.call('SET', inc, incarnation) end
elseif mode == 'spawn' or mode == 'import' then
  redis.call('SET', m, 'p:' .. token)
elseif mode == 'open' and state ~= 'o' then
  redis.call('SET', m, 'o')
end
-- unpack() is limited by Lua's C stack (a few thousand values): write in chunks of 500 items.
local fields, members, plain = {}, {}, {}
local function flush()
  if #fields > 0 then redis.call('HSET', v, unpack(fields)) fields = {} end
  if #members > 0 then redis.call('ZADD', x, unpack(members)) members = {} end
  if #plain > 0 then redis.call('ZREM', x, unpack(plain)) plain = {} end
end
for i = 1, np do
  fields[#fields + 1] = pk[i]
  fields[#fields + 1] = pv[i]
  if not clear then plain[#plain + 1] = pk[i] end
  if #fields >= 1000 then flush() end
end
for i = 1, nt do
  fields[#fields + 1] = tk[i]
  fields[#fields + 1] = tv[i]
  members[#members + 1] = te[i]
  members[#members + 1] = tk[i]
  if #fields >= 1000 then flush() end
end
flush()
reclaim(now, margin)
if mode == 'import' then
  for _, k in ipairs({m, v, x, inc}) do redis.call('PEXPIRE', k, ARGV[#ARGV]) end
  if KEYS[5] then
    redis.call('HSET', KEYS[5], token, incarnation)
    redis.call('PEXPIRE', KEYS[5], ARGV[#ARGV])
  end
end
if mode == 'restore' and KEYS[8] then return {'ok', np + nt, next_order(KEYS[8])} end
return {'ok', np + nt}
