-- cancel.lua: a waiting customer leaves the queue: the conversation ends as abandoned at once
-- (the same end as customer_abandon.lua's, without waiting for the grace), closed by the customer.
-- An offer in flight ends (OFFER_REVOKED, reason closed), as close.lua does.
-- KEYS: 1 conv:<id>  2 conv:<id>:events  3 queue:<category>  4 customer:<email>  5 customers:seen
--       6 convs:live  7 outbox  8 ch:queue  9 ch:conv:<id>  10 offers  11 agent:<the agent it is
--       offered to>  12 agents:available  13 ch:user:<that agent>  14 ch:presence
--       (category, email and offered agent as the node read them)
-- ARGV: now override, conv_id, customer id (the caller), category_id as read, email as read,
--       offered_to as read
-- Returns {'ok', outbox entry id} or {'err', code}: not_found, forbidden (not its customer),
-- not_waiting (an agent has it: only the agent closes it), conversation_closed, stale
local now = hd.now(ARGV[1])
local id, customer = ARGV[2], ARGV[3]
local c = redis.call('HMGET', KEYS[1], 'status', 'category_id', 'customer_email', 'customer_id', 'offered_to')
if not c[1] then return {'err', 'not_found'} end
if c[4] ~= customer then return {'err', 'forbidden'} end
if (c[2] or '') ~= ARGV[4] or (c[3] or '') ~= ARGV[5] or (c[5] or '') ~= (ARGV[6] or '') then return hd.STALE end
if c[1] == 'closed' or c[1] == 'abandoned' then return {'err', 'conversation_closed'} end
if c[1] ~= 'waiting' then return {'err', 'not_waiting'} end
if c[5] and c[5] ~= '' then
  hd.end_offer({conv = KEYS[1], events = KEYS[2], offers = KEYS[10], agent = KEYS[11], available = KEYS[12],
    user_channel = KEYS[13], presence_channel = KEYS[14]}, id, c[5], 'closed', false, now)
end
hd.abandon({conv = KEYS[1], events = KEYS[2], queue = KEYS[3], customer = KEYS[4], seen = KEYS[5], live = KEYS[6],
  outbox = KEYS[7], queue_channel = KEYS[8], channel = KEYS[9]}, id, c[2], customer, now,
  {id = customer, role = 'customer'}, {reason = 'cancelled'})
return {'ok', redis.call('HGET', KEYS[1], 'close_epoch')}
