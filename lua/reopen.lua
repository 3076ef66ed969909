-- reopen.lua: a closed conversation still held in Redis goes back to its queue (the customer
-- came back, or staff want to follow up). One open conversation per customer still holds.
-- KEYS: 1 conv:<id>  2 conv:<id>:msgs  3 conv:<id>:events  4 conv:<id>:dedupe  5 customer:<email>
--       6 conv:<the customer's open conversation>  7 queue:<category>  8 queues  9 convs:live
--       10 customers:seen  11 ch:queue  12 ch:conv:<id>
--       (email, category and the customer's open conversation as the node read them)
-- ARGV: now override, conv_id, actor_id, actor_role, email, category_id, open conv id ('' none) as read
-- Returns {'ok', position} or {'err', code}
local now = hd.now(ARGV[1])
local id, actor, role = ARGV[2], ARGV[3], ARGV[4]
local conv_key, customer_key = KEYS[1], KEYS[5]
local c = redis.call('HMGET', conv_key, 'status', 'customer_id', 'customer_email', 'category_id', 'created_at')
if not c[1] then return {'err', 'not_found'} end
if (c[3] or '') ~= ARGV[5] or (c[4] or '') ~= ARGV[6] then return hd.STALE end
if role == 'customer' and actor ~= c[2] then return {'err', 'forbidden'} end
if c[1] ~= 'closed' and c[1] ~= 'abandoned' then return {'err', 'conflict'} end
local open = redis.call('HGET', customer_key, 'conv')
if (open or '') ~= ARGV[7] then return hd.STALE end
if open and open ~= id then
  local st = redis.call('HGET', KEYS[6], 'status')
  if st == 'waiting' or st == 'active' then return {'err', 'conflict'} end
end
for i = 1, 4 do redis.call('PERSIST', KEYS[i]) end
redis.call('HSET', conv_key, 'status', 'waiting', 'agent_id', '', 'agent_name', '', 'assigned_at', '', 'closed_at', '',
  'resolution', '', 'reopened_at', now, 'enqueued_at', now, 'queue_score', now)
-- a new round: its first response, rating and escalation are its own (the last round's would make
-- first-response and handle times negative, and block the new rating)
redis.call('HDEL', conv_key, 'first_response_at', 'rating', 'rating_comment', 'rated_at', 'escalated', 'escalation_note',
  'escalated_at', 'closed_by', 'declined_by')
redis.call('HSET', customer_key, 'conv', id)
redis.call('PERSIST', customer_key)
redis.call('ZADD', KEYS[7], now, id)
redis.call('SADD', KEYS[8], c[4])
redis.call('ZADD', KEYS[9], tonumber(c[5]) or now, id)
redis.call('ZADD', KEYS[10], now, id)
hd.log(KEYS[3], 'reopened', actor, role, now, nil)
hd.publish(KEYS[11], 'queue', 'a', c[4], 'QUEUE_UPDATED', {op = 'added', conversation = hd.conversation(hd.hash(conv_key))})
hd.publish(KEYS[12], 'moved', 'a', '-', 'CONVERSATION_REOPENED', {conversation_id = id, by = {id = actor, role = role}})
return {'ok', redis.call('ZRANK', KEYS[7], id) + 1}
