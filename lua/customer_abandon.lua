-- customer_abandon.lua: the sweep for one waiting customer whose socket has been gone longer than
-- its grace: the conversation leaves the queue as abandoned and goes to the outbox. The node finds
-- candidates in customers:seen; this decides (by Redis's clock), so every node may run it at once.
-- KEYS: 1 conv:<id>  2 conv:<id>:events  3 queue:<category>  4 customer:<email>  5 customers:seen
--       6 convs:live  7 outbox  8 ch:queue  9 ch:conv:<id>   (category and email as the node read them)
-- ARGV: now override, conv_id, customer grace_ms, category_id as read, email as read
-- Returns 1 (abandoned), 0 (not due, or no longer waiting) or {'err', 'stale'}
local now = hd.now(ARGV[1])
local id, grace = ARGV[2], tonumber(ARGV[3])
local conv_key, seen_key = KEYS[1], KEYS[5]
local seen = tonumber(redis.call('ZSCORE', seen_key, id) or '')
if not seen or now - seen < grace then return 0 end
local c = redis.call('HMGET', conv_key, 'status', 'category_id', 'customer_email', 'customer_id', 'offered_to')
if c[1] ~= 'waiting' then
  redis.call('ZREM', seen_key, id)
  return 0
end
-- on offer to an agent right now: decided once the offer ends (accepted, or back in the queue)
if c[5] and c[5] ~= '' then return 0 end
if (c[2] or '') ~= ARGV[4] or (c[3] or '') ~= ARGV[5] then return hd.STALE end
hd.abandon({conv = conv_key, events = KEYS[2], queue = KEYS[3], customer = KEYS[4], seen = seen_key, live = KEYS[6],
  outbox = KEYS[7], queue_channel = KEYS[8], channel = KEYS[9]}, id, c[2], c[4], now, nil, nil)
return 1
