-- KEYS = {ct}; ARGV: nonce, checkpoint id, content hash. The durable store holds the checkpoint a pause made from
-- the snapshot of ``nonce``: the copy that snapshot made stands for it from now on, unless a later snapshot has
-- replaced the tag (or Redis lost it, or a deletion dropped it): then nothing changes.
local ct = KEYS[1]
if redis.call('HGET', ct, 'nonce') ~= ARGV[1] or redis.call('HEXISTS', ct, 'id') == 1 then return {'ok', 0} end
redis.call('HSET', ct, 'id', ARGV[2], 'hash', ARGV[3])
return {'ok', 1}
