-- KEYS = {cv, cx, ct}: drop a pause's copy (copies.py), e.g. as its checkpoint is deleted.
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return {'ok'}
