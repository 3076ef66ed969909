-- reopen.lua: a closed conversation still held in Redis goes back to its queue (the customer
-- came back, or staff want to follow up). One open conversation per customer still holds.
-- KEYS[1]: <prefix>conv:<id>
-- ARGV: prefix, conv_id, actor_id, actor_role, now_ms
-- Returns {'ok', position} or {'err', code}
local P, id, actor, role, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local conv_key = P .. 'conv:' .. id
local c = redis.call('HMGET', conv_key, 'status', 'customer_id', 'customer_email', 'category_id', 'subject', 'priority', 'customer_name', 'created_at')
if not c[1] then return {'err', 'not_found'} end
if role == 'customer' and actor ~= c[2] then return {'err', 'forbidden'} end
if c[1] ~= 'closed' and c[1] ~= 'abandoned' then return {'err', 'conflict'} end
local customer_key = P .. 'customer:' .. (c[3] or '')
local open = redis.call('HGET', customer_key, 'conv')
if open and open ~= id then
  local st = redis.call('HGET', P .. 'conv:' .. open, 'status')
  if st == 'waiting' or st == 'active' then return {'err', 'conflict'} end
end
for _, key in ipairs({conv_key, conv_key .. ':msgs', conv_key .. ':events', conv_key .. ':dedupe'}) do redis.call('PERSIST', key) end
redis.call('HSET', conv_key, 'status', 'waiting', 'agent_id', '', 'agent_name', '', 'assigned_at', '', 'closed_at', '',
  'resolution', '', 'reopened_at', now, 'enqueued_at', now, 'queue_score', now)
redis.call('HSET', customer_key, 'conv', id)
redis.call('PERSIST', customer_key)
redis.call('ZADD', P .. 'queue:' .. c[4], now, id)
redis.call('SADD', P .. 'queues', c[4])
redis.call('ZADD', P .. 'convs:live', tonumber(c[8]) or now, id)
redis.call('ZADD', P .. 'customers:seen', now, id)
redis.call('XADD', conv_key .. ':events', '*', 'type', 'reopened', 'actor_id', actor, 'actor_role', role, 'at', now, 'data', '')
local conversation = {id = id, status = 'waiting', category_id = c[4], subject = c[5], priority = c[6],
  customer = {id = c[2], name = c[7]}, created_at = tonumber(c[8]), enqueued_at = now}
redis.call('PUBLISH', P .. 'ch:queue', 'a|' .. c[4] .. '|' .. cjson.encode({event = 'QUEUE_UPDATED', data = {op = 'added', conversation = conversation}}))
redis.call('PUBLISH', P .. 'ch:conv:' .. id, 'a|-|' .. cjson.encode({event = 'CONVERSATION_REOPENED', data = {conversation_id = id, by = {id = actor, role = role}}}))
return {'ok', redis.call('ZRANK', P .. 'queue:' .. c[4], id) + 1}
