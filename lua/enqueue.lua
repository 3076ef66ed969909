-- enqueue.lua: a customer starts a chat. Creates the waiting conversation and puts it in its
-- category's queue, unless this e-mail already has a waiting or active one (then returns that).
-- KEYS[1]: <prefix>conv:<id> (for cluster routing; every key shares the prefix's hash tag)
-- ARGV: prefix, conv_id, new customer_id, name, email, category_id, subject, priority,
--       now_ms, priority boost_ms, customer grace_ms
-- Returns {conv_id, position, created 1|0, customer_id, status}
local P = ARGV[1]
local id, new_customer, name, email = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local category, subject, priority = ARGV[6], ARGV[7], ARGV[8]
local now, boost = tonumber(ARGV[9]), tonumber(ARGV[10])

local customer_key = P .. 'customer:' .. email
local existing = redis.call('HGET', customer_key, 'conv')
if existing then
  local c = redis.call('HMGET', P .. 'conv:' .. existing, 'status', 'category_id', 'customer_id')
  if c[1] == 'waiting' or c[1] == 'active' then
    local position = 0
    if c[1] == 'waiting' then
      position = (redis.call('ZRANK', P .. 'queue:' .. c[2], existing) or -1) + 1
    end
    return {existing, position, 0, c[3], c[1]}
  end
end

local customer = redis.call('HGET', customer_key, 'id') or new_customer
local score = now - boost
local conv_key = P .. 'conv:' .. id
redis.call('HSET', conv_key,
  'id', id, 'status', 'waiting', 'customer_id', customer, 'customer_name', name, 'customer_email', email,
  'category_id', category, 'subject', subject, 'priority', priority,
  'created_at', now, 'enqueued_at', now, 'queue_score', score, 'agent_id', '', 'agent_name', '')
redis.call('HSET', customer_key, 'id', customer, 'conv', id, 'name', name)
redis.call('PERSIST', customer_key)
redis.call('ZADD', P .. 'queue:' .. category, score, id)
redis.call('SADD', P .. 'queues', category)
redis.call('ZADD', P .. 'convs:live', now, id)
-- The customer has one grace period to open its socket before the sweep counts it as gone.
redis.call('ZADD', P .. 'customers:seen', now, id)
redis.call('XADD', conv_key .. ':events', '*', 'type', 'created', 'actor_id', customer, 'actor_role', 'customer', 'at', now, 'data', '')

local conversation = {
  id = id, status = 'waiting', category_id = category, subject = subject, priority = priority,
  customer = {id = customer, name = name}, created_at = now, enqueued_at = now,
}
redis.call('PUBLISH', P .. 'ch:queue',
  'a|' .. category .. '|' .. cjson.encode({event = 'QUEUE_UPDATED', data = {op = 'added', conversation = conversation}}))
local position = redis.call('ZRANK', P .. 'queue:' .. category, id) + 1
return {id, position, 1, customer, 'waiting'}
