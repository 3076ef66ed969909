-- enqueue.lua: a customer starts a chat. Creates the waiting conversation and puts it in its
-- category's queue, unless this e-mail already has a waiting or active one (then returns that).
-- KEYS: 1 conv:<id>  2 conv:<id>:events  3 customer:<email>  4 queue:<category>  5 queues
--       6 convs:live  7 customers:seen  8 ch:queue
--       9 conv:<open>  10 queue:<open's category>   (the e-mail's open conversation as the node
--       read it; untouched when ARGV[10] is '')
-- ARGV: now override, conv_id, new customer_id, name, email, category_id, subject, priority,
--       priority boost_ms, the open conversation's id as read ('' none), its category as read
-- Returns {'ok', conv_id, position, created 1|0, customer_id, status} or {'err', 'stale'}
local now = hd.now(ARGV[1])
local id, new_customer, name, email = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local category, subject, priority, boost = ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9])
local conv_key, events_key, customer_key, queue_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local existing = redis.call('HGET', customer_key, 'conv')
if (existing or '') ~= ARGV[10] then return hd.STALE end
if existing then
  local c = redis.call('HMGET', KEYS[9], 'status', 'category_id', 'customer_id')
  if c[1] == 'waiting' or c[1] == 'active' then
    local position = 0
    if c[1] == 'waiting' then
      if c[2] ~= ARGV[11] then return hd.STALE end
      position = (redis.call('ZRANK', KEYS[10], existing) or -1) + 1
    end
    return {'ok', existing, position, 0, c[3], c[1]}
  end
end

local customer = redis.call('HGET', customer_key, 'id') or new_customer
local score = now - boost
redis.call('HSET', conv_key,
  'id', id, 'status', 'waiting', 'customer_id', customer, 'customer_name', name, 'customer_email', email,
  'category_id', category, 'subject', subject, 'priority', priority,
  'created_at', now, 'enqueued_at', now, 'queue_score', score, 'agent_id', '', 'agent_name', '')
redis.call('HSET', customer_key, 'id', customer, 'conv', id, 'name', name)
redis.call('PERSIST', customer_key)
redis.call('ZADD', queue_key, score, id)
redis.call('SADD', KEYS[5], category)
redis.call('ZADD', KEYS[6], now, id)
-- The customer has one grace period to open its socket before the sweep counts it as gone.
redis.call('ZADD', KEYS[7], now, id)
hd.log(events_key, 'created', customer, 'customer', now, nil)
hd.publish(KEYS[8], 'queue', 'a', category, 'QUEUE_UPDATED', {op = 'added', conversation = hd.conversation(hd.hash(conv_key))})
return {'ok', id, redis.call('ZRANK', queue_key, id) + 1, 1, customer, 'waiting'}
