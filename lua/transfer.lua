-- transfer.lua: hands an active conversation on, to another agent or back to a (maybe different)
-- category queue. Capacity is checked here as in pick.lua. A running or ringing call ends for both
-- sides; the note reaches staff only (the customer's frame has none).
-- KEYS: 1 conv:<id>  2 conv:<id>:events  3 conv:<id>:call  4 ch:conv:<id>  5 calls:ringing
--       6 agent:<old>  7 agent:<old>:convs  8 agents:available  9 ch:presence  10 ch:user:<old>
--       11 agent:<target>  12 agent:<target>:convs  13 ch:user:<target>   (target: untouched for a queue)
--       14 queue:<target category>  15 queues  16 customers:seen  17 ch:queue   (untouched for an agent)
--       (old agent and current category as the node read them from the conversation)
-- ARGV: now override, conv_id, actor_id, actor_role, note, target agent id ('' = back to a queue),
--       target category ('' = keep), old agent_id as read, category_id as read
-- Returns {'ok', status} or {'err', code}
local now = hd.now(ARGV[1])
local id, actor, role, note, target, category = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local conv_key, events_key, call_key, channel, ringing_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local old_key, old_convs, available_key, presence_channel = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local c = redis.call('HMGET', conv_key, 'status', 'agent_id', 'category_id', 'queue_score', 'customer_id')
if not c[1] then return {'err', 'not_found'} end
if (c[2] or '') ~= ARGV[8] or (c[3] or '') ~= ARGV[9] then return hd.STALE end
if c[1] ~= 'active' then return {'err', c[1] == 'waiting' and 'forbidden' or 'conversation_closed'} end
if role == 'agent' and c[2] ~= actor then return {'err', 'forbidden'} end
if role ~= 'agent' and role ~= 'supervisor' and role ~= 'admin' then return {'err', 'forbidden'} end
local old, customer = c[2], c[5]

-- staff get the note; the customer the same event without it
local function moved(key, data)
  data.at = now
  data.note = note
  hd.publish(channel, 'moved', 's', key, 'CONVERSATION_TRANSFERRED', data)
  hd.publish(KEYS[10], 'user', 'a', '-', 'CONVERSATION_TRANSFERRED', data)
  data.note = nil
  hd.publish(channel, 'event', 'u', customer, 'CONVERSATION_TRANSFERRED', data)
end

if target ~= '' then
  if target == old then return {'err', 'already_picked'} end
  local t_key, t_convs = KEYS[11], KEYS[12]
  local t = redis.call('HMGET', t_key, 'status', 'capacity', 'active', 'name', 'offered')
  if t[1] ~= 'online' and t[1] ~= 'away' then return {'err', 'agent_offline'} end
  if hd.load(t[3], t[5]) >= (tonumber(t[2]) or 0) then return {'err', 'at_capacity'} end
  -- the call was between the customer and the old agent: it ends before the old agent leaves
  hd.end_call(call_key, ringing_key, events_key, channel, id, 'ended', actor, role, '', now)
  hd.release(old_key, old_convs, available_key, presence_channel, old, id, now)
  redis.call('SADD', t_convs, id)
  redis.call('HINCRBY', t_key, 'active', 1)
  hd.refresh_available(available_key, t_key, target, now)
  redis.call('HSET', conv_key, 'agent_id', target, 'agent_name', t[4] or '', 'transferred_at', now)
  hd.log(events_key, 'transferred', actor, role, now, {from = old, to = target, note = note})
  local conversation = hd.conversation(hd.hash(conv_key))
  moved(target, {conversation_id = id, from_agent_id = old, agent = conversation.agent})
  hd.publish(KEYS[13], 'user', 'a', '-', 'CONVERSATION_ASSIGNED',
    {conversation_id = id, conversation = conversation, agent = conversation.agent, transferred_from = old, note = note})
  hd.publish_presence(presence_channel, t_key, target)
  return {'ok', 'active'}
end

-- back to a queue, keeping its place (original score)
local queue = category ~= '' and category or c[3]
hd.end_call(call_key, ringing_key, events_key, channel, id, 'ended', actor, role, '', now)
hd.release(old_key, old_convs, available_key, presence_channel, old, id, now)
redis.call('HSET', conv_key, 'status', 'waiting', 'agent_id', '', 'agent_name', '', 'assigned_at', '', 'category_id', queue)
redis.call('ZADD', KEYS[14], c[4], id)
redis.call('SADD', KEYS[15], queue)
redis.call('ZADD', KEYS[16], now, id)
hd.log(events_key, 'transferred', actor, role, now, {from = old, to_queue = queue, note = note})
moved('-', {conversation_id = id, from_agent_id = old, category_id = queue})
hd.publish(KEYS[17], 'queue', 'a', queue, 'QUEUE_UPDATED', {op = 'added', conversation = hd.conversation(hd.hash(conv_key))})
return {'ok', 'waiting'}
