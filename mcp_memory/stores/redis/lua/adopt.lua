-- KEYS: the session's {m, v, x, i, cv, cx, ct, g, im, r} (copies.all_keys_of), then 4 per token of ARGV: that
-- import's staged {sm, sv, sx, si} (staging.py). ARGV: now, margin, state, incarnation, order, the call's re-open
-- claim (claim.lua: {'unclaimed'} and nothing changed if a deletion has erased it), then the tokens.
-- A call found the session missing, the durable store holds it as ``incarnation``, and imports have staged that very
-- incarnation (write.lua's "recover" answered "staged" with their tokens): the one whose durable records committed
-- has not switched them in yet, or never will (it stopped). Make the first staged state still there, staged for that
-- incarnation, the session's working memory in ``state``, as the switch would, raise the order key to ``order``
-- (raise_order, lib.lua), and mark it taken ('k:<token>'), and so every other staging of that incarnation given (its
-- state dropped): whichever of them committed, its switch then leaves the session as it is. {'exists'} if the
-- session is there meanwhile (the switch or another call came first), {'none'} if no staged state given is left.
-- A note whose staged marker is gone (its staging expired or was evicted; a drop or a switch takes its note with it)
-- names nothing to take any more and goes: the hash's expiry is the latest staging's, so a later import staged for
-- the session would keep it alive, and every re-open would answer "staged" again until then.
-- Needs lib.lua, which scripts.py puts before it (the locals m, v, x and the functions purge, reclaim, raise_order).
local inc, g, im = KEYS[4], KEYS[8], KEYS[9]
local now, margin, state, incarnation, floor = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if redis.call('HEXISTS', KEYS[10], ARGV[6]) == 0 then return {'unclaimed'} end
local live = redis.call('GET', m)
if live and string.sub(live, 1, 1) ~= 'p' then return {'exists'} end
local taken = false
for s = 0, #ARGV - 7 do
  local token = ARGV[7 + s]
  local sm, sv, sx, si = KEYS[11 + 4 * s], KEYS[12 + 4 * s], KEYS[13 + 4 * s], KEYS[14 + 4 * s]
  if redis.call('HGET', im, token) == incarnation and redis.call('GET', sm) == 'p:' .. token then
    if not taken then
      taken = true
      redis.call('DEL', v, x, inc, KEYS[5], KEYS[6], KEYS[7])
      if redis.call('EXISTS', sv) == 1 then redis.call('RENAME', sv, v) end
      if redis.call('EXISTS', sx) == 1 then redis.call('RENAME', sx, x) end
      raise_order(g, floor)
      redis.call('SET', m, state)
      redis.call('SET', inc, incarnation)
    end
    redis.call('DEL', sv, sx, si)
    redis.call('SET', sm, 'k:' .. token, 'KEEPTTL')
    redis.call('HDEL', im, token)
  elseif redis.call('EXISTS', sm) == 0 then
    redis.call('DEL', sv, sx, si)
    redis.call('HDEL', im, token)
  end
end
if not taken then return {'none'} end
purge(now)
reclaim(now, margin)
return {'adopted', redis.call('HLEN', v)}
