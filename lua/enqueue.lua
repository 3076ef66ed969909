-- enqueue.lua: a customer starts a chat. Creates the waiting conversation and puts it in its
-- category's queue, unless the caller holds the token of this e-mail's open conversation (then
-- returns that one: exactly one open chat for its holder). Without that token a start always gets
-- a new conversation, so an answer never tells whether an address has an open chat, and a
-- stranger's start never touches the e-mail's record (its customer id, name, open conversation).
-- A signed-in customer account (ARGV[13]) starts with its own record instead of the e-mail's
-- (KEYS[3] is account:<id>, the customer id is the account id), and the conversation is marked
-- with account_id and listed in the account's set: an anonymous start with the same e-mail never
-- touches either.
-- KEYS: 1 conv:<id>  2 conv:<id>:events  3 customer:<email> (account:<id> for an account)  4 queue:<category>  5 queues
--       6 convs:live  7 customers:seen  8 ch:queue
--       9 conv:<the caller's token conversation>  10 queue:<its category as read>  (untouched
--       when ARGV[10] is '')
--       11 conv:<the e-mail's open conversation as read>  (untouched when ARGV[12] is '')
--       12 account:<id>:convs  (untouched when ARGV[13] is '')
-- ARGV: now override, conv_id, new customer_id, name, email, category_id, subject, priority,
--       priority boost_ms, the caller's token conversation ('' none), its category as read,
--       the e-mail's open conversation as read ('' none), the customer account id ('' anonymous)
-- Returns {'ok', conv_id, position, created 1|0, customer_id, status} or {'err', 'stale'}
local now = hd.now(ARGV[1])
local id, new_customer, name, email = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local category, subject, priority, boost = ARGV[6], ARGV[7], ARGV[8], tonumber(ARGV[9])
local resume = ARGV[10] or ''
local conv_key, events_key, customer_key, queue_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

local existing = redis.call('HGET', customer_key, 'conv')
if (existing or '') ~= (ARGV[12] or '') then return hd.STALE end
if resume ~= '' then
  local c = redis.call('HMGET', KEYS[9], 'status', 'category_id', 'customer_id', 'customer_email')
  if c[4] == email and (c[1] == 'waiting' or c[1] == 'active') then
    local position = 0
    if c[1] == 'waiting' then
      if c[2] ~= ARGV[11] then return hd.STALE end
      position = (redis.call('ZRANK', KEYS[10], resume) or -1) + 1
    end
    return {'ok', resume, position, 0, c[3], c[1]}
  end
end

-- Someone else's chat is open for this e-mail: this one is separate, with a customer id of its own.
local taken = false
if existing then
  local st = redis.call('HGET', KEYS[11], 'status')
  taken = st == 'waiting' or st == 'active'
end
local customer = new_customer
if not taken then
  customer = redis.call('HGET', customer_key, 'id') or new_customer
  redis.call('HSET', customer_key, 'id', customer, 'conv', id)
  -- the name is stored once: a later start (perhaps by a stranger) never overwrites it
  redis.call('HSETNX', customer_key, 'name', name)
  redis.call('PERSIST', customer_key)
end
local score = now - boost
redis.call('HSET', conv_key,
  'id', id, 'status', 'waiting', 'customer_id', customer, 'customer_name', name, 'customer_email', email,
  'category_id', category, 'subject', subject, 'priority', priority,
  'created_at', now, 'enqueued_at', now, 'queue_score', score, 'agent_id', '', 'agent_name', '')
if (ARGV[13] or '') ~= '' then
  redis.call('HSET', conv_key, 'account_id', ARGV[13])
  redis.call('ZADD', KEYS[12], now, id)
  -- bounded: older conversations are archived by now and listed from PostgreSQL
  redis.call('ZREMRANGEBYRANK', KEYS[12], 0, -101)
  redis.call('PEXPIRE', KEYS[12], 30 * 86400 * 1000)
end
redis.call('ZADD', queue_key, score, id)
redis.call('SADD', KEYS[5], category)
redis.call('ZADD', KEYS[6], now, id)
-- The customer has one grace period to open its socket before the sweep counts it as gone.
redis.call('ZADD', KEYS[7], now, id)
hd.log(events_key, 'created', customer, 'customer', now, nil)
hd.publish(KEYS[8], 'queue', 'a', category, 'QUEUE_UPDATED', {op = 'added', conversation = hd.conversation(hd.hash(conv_key))})
return {'ok', id, redis.call('ZRANK', queue_key, id) + 1, 1, customer, 'waiting'}
