-- ARGV: mode, now, clear, max_keys, margin, state, n_plain, n_ttl, incarnation, spawn token, then n_plain (key,
-- value) pairs, then n_ttl (key, value, expires_at) triples. Items expired at ``now`` are filtered out by the caller.
-- mode "open": the durable store has just created the session (``incarnation``): open it with exactly these items
--   (whatever a Redis that outlived its durable store still held under this scope is stale), unless a re-open of
--   this very incarnation came first: then keep what it holds and add the items whose keys it has not ("sealed" if
--   a terminate sealed it). An empty ``incarnation`` asks: "stamp" if a re-open's incarnation is there to compare.
-- mode "restore": the session must be open; clear ("1") or merge, within max_keys.
-- mode "recover": only if Redis does not know the session: create it in ``state`` with exactly these items, and
--   note the durable ``incarnation`` it was made from. A staged spawn ("p:<token>") of the spawn token given (the
--   durable store says it completed) becomes the session as it is, in ``state``; another staged spawn is stale.
-- mode "spawn": stage exactly these items for the spawn token ("p:<token>": unknown to every other script until
--   staging.py's commit), over whatever Redis held under this scope (the durable row was just made for it).
-- Needs lib.lua, which scripts.py puts before it (the locals m, v, x and the functions purge and reclaim).
local inc = KEYS[4]
local mode, now, clear, maxk, margin = ARGV[1], ARGV[2], ARGV[3] == '1', tonumber(ARGV[4]), ARGV[5]
local np, nt, incarnation, token = tonumber(ARGV[7]), tonumber(ARGV[8]), ARGV[9], ARGV[10]
local p0 = 11
local t0 = p0 + 2 * np
local state = redis.call('GET', m)
if mode == 'recover' then
  if state and string.sub(state, 1, 1) == 'p' then
    if token ~= '' and state == 'p:' .. token then
      redis.call('SET', m, ARGV[6])
      if incarnation ~= '' then redis.call('SET', inc, incarnation) end
      purge(now)
      reclaim(now, margin)
      return {'ok', redis.call('HLEN', v)}
    end
    state = false
  end
  if state then return {'exists'} end
  clear = true
elseif mode == 'spawn' then
  redis.call('DEL', inc)
  clear = true
elseif mode == 'open' then
  local made_from = state and redis.call('GET', inc)
  if made_from and incarnation == '' then return {'stamp'} end
  if made_from and made_from == incarnation then
    if state ~= 'o' then return {'sealed', state} end
    purge(now)
    local n = 0
    for i = p0, t0 - 1, 2 do
      if redis.call('HEXISTS', v, ARGV[i]) == 0 then
        redis.call('HSET', v, ARGV[i], ARGV[i + 1])
        n = n + 1
      end
    end
    for i = t0, t0 + 3 * nt - 1, 3 do
      if redis.call('HEXISTS', v, ARGV[i]) == 0 then
        redis.call('HSET', v, ARGV[i], ARGV[i + 1])
        redis.call('ZADD', x, ARGV[i + 2], ARGV[i])
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
end
if clear then
  if np + nt > maxk then return {'full'} end
  redis.call('DEL', v, x)
else
  purge(now)
  local n = redis.call('HLEN', v)
  for i = p0, t0 - 1, 2 do
    if redis.call('HEXISTS', v, ARGV[i]) == 0 then n = n + 1 end
  end
  for i = t0, t0 + 3 * nt - 1, 3 do
    if redis.call('HEXISTS', v, ARGV[i]) == 0 then n = n + 1 end
  end
  if n > maxk then return {'full'} end
end
if mode == 'recover' then
  redis.call('SET', m, ARGV[6])
  if incarnation ~= '' then redis.call('SET', inc, incarnation) end
elseif mode == 'spawn' then
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
for i = p0, t0 - 1, 2 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  if not clear then plain[#plain + 1] = ARGV[i] end
  if #fields >= 1000 then flush() end
end
for i = t0, t0 + 3 * nt - 1, 3 do
  fields[#fields + 1] = ARGV[i]
  fields[#fields + 1] = ARGV[i + 1]
  members[#members + 1] = ARGV[i + 2]
  members[#members + 1] = ARGV[i]
  if #fields >= 1000 then flush() end
end
flush()
reclaim(now, margin)
return {'ok', np + nt}
