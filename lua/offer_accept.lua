-- offer_accept.lua: an agent accepts the conversation offered to it (ACCEPT_OFFER). The offer held
-- the capacity, so the assignment cannot fail for capacity; it is made by hd.assign, as a PICK's.
-- KEYS: 1 conv:<id>  2 conv:<id>:events  3 ch:conv:<id>  4 queue:<its category as read>  5 customers:seen
--       6 offers  7 agent:<agent>  8 agent:<agent>:convs  9 agents:available  10 ch:user:<agent>
--       11 ch:queue  12 ch:presence
-- ARGV: now override, conv_id, agent_id, category_id as read
-- Returns {'ok', conv_id, [conv hash as HGETALL gives it]} or {'err', code}: no_offer (not offered
-- to this agent, or no longer), offer_expired (its time is up), stale
local now = hd.now(ARGV[1])
local id, agent_id = ARGV[2], ARGV[3]
local conv_key, agent_key = KEYS[1], KEYS[7]
local c = redis.call('HMGET', conv_key, 'status', 'category_id', 'offered_to', 'offer_expires_at')
if c[1] ~= 'waiting' or c[3] ~= agent_id then return {'err', 'no_offer'} end
if (c[2] or '') ~= ARGV[4] then return hd.STALE end
if (tonumber(c[4]) or 0) <= now then return {'err', 'offer_expired'} end

redis.call('HSET', conv_key, 'offered_to', '', 'offer_expires_at', '')
redis.call('ZREM', KEYS[6], id)
if (tonumber(redis.call('HGET', agent_key, 'offered')) or 0) > 0 then redis.call('HINCRBY', agent_key, 'offered', -1) end
local h = hd.assign({
  conv = conv_key, events = KEYS[2], channel = KEYS[3], queue = KEYS[4], seen = KEYS[5], agent = agent_key,
  convs = KEYS[8], available = KEYS[9], user_channel = KEYS[10], queue_channel = KEYS[11], presence_channel = KEYS[12],
}, id, c[2], agent_id, redis.call('HGET', agent_key, 'name'), agent_id, 'agent', now)
return {'ok', id, h}
