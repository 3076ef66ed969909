-- rate.lua: the customer's rating of a closed conversation still held in Redis, once. Check and
-- write in one step, so two ratings sent at once cannot both pass (issue 10 #22).
-- KEYS: 1 conv:<id>
-- ARGV: now override, rating 1..5, comment
-- Returns {'ok', close_epoch} or {'err', 'not_found' | 'not_closed' | 'already_rated'}
local now = hd.now(ARGV[1])
local c = redis.call('HMGET', KEYS[1], 'status', 'rating', 'close_epoch')
if not c[1] then return {'err', 'not_found'} end
if c[1] ~= 'closed' and c[1] ~= 'abandoned' then return {'err', 'not_closed'} end
if c[2] then return {'err', 'already_rated'} end
redis.call('HSET', KEYS[1], 'rating', ARGV[2], 'rating_comment', ARGV[3], 'rated_at', now)
return {'ok', c[3] or '0'}
