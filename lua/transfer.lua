-- transfer.lua: hands an active conversation on: to another agent, back to a (maybe different)
-- category queue, or up to the supervisors (escalate). Capacity is checked here as in pick.lua.
-- KEYS[1]: <prefix>conv:<id>
-- ARGV: prefix, op ('transfer' | 'escalate'), now_ms, conv_id, actor_id, actor_role, note,
--       target agent id ('' = back to the queue), category ('' = keep)
-- Returns {'ok', status} or {'err', code}
local P, op, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local id, actor, role, note, target, category = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local conv_key = P .. 'conv:' .. id
local c = redis.call('HMGET', conv_key, 'status', 'agent_id', 'category_id', 'queue_score', 'customer_id', 'customer_name', 'subject', 'priority', 'created_at', 'enqueued_at')
if not c[1] then return {'err', 'not_found'} end
if c[1] ~= 'active' then return {'err', c[1] == 'waiting' and 'forbidden' or 'conversation_closed'} end
if role == 'agent' and c[2] ~= actor then return {'err', 'forbidden'} end
if role ~= 'agent' and role ~= 'supervisor' and role ~= 'admin' then return {'err', 'forbidden'} end

local function publish_presence(agent_id)
  local pa = redis.call('HMGET', P .. 'agent:' .. agent_id, 'status', 'active', 'capacity', 'node', 'connected', 'since', 'name', 'supervisor_id')
  redis.call('PUBLISH', P .. 'ch:presence', 'a|' .. (pa[8] or '') .. '|' .. cjson.encode({event = 'PRESENCE_UPDATED', data = {
    agent_id = agent_id, name = pa[7] or '', status = pa[1] or 'offline', active = tonumber(pa[2] or '0'),
    capacity = tonumber(pa[3] or '0'), node_id = pa[4] or '', connected = pa[5] == '1', since = tonumber(pa[6] or '0')}}))
end

if op == 'escalate' then
  redis.call('HSET', conv_key, 'escalated', '1', 'escalation_note', note, 'escalated_at', now)
  redis.call('XADD', conv_key .. ':events', '*', 'type', 'escalated', 'actor_id', actor, 'actor_role', role, 'at', now, 'data', cjson.encode({note = note}))
  local frame = cjson.encode({event = 'CONVERSATION_ESCALATED', data = {conversation_id = id, note = note, by = {id = actor, role = role},
    customer = {id = c[5], name = c[6]}, subject = c[7]}})
  -- to the conversation's sockets and, like presence, to the agent's supervisor and admins
  redis.call('PUBLISH', P .. 'ch:conv:' .. id, 's|-|' .. frame)
  redis.call('PUBLISH', P .. 'ch:presence', 'a|' .. (redis.call('HGET', P .. 'agent:' .. c[2], 'supervisor_id') or '') .. '|' .. frame)
  return {'ok', 'active'}
end

local old = c[2]
local old_key = P .. 'agent:' .. old
local function release_old()
  if redis.call('SREM', old_key .. ':convs', id) == 1 then
    local active = redis.call('HINCRBY', old_key, 'active', -1)
    local a = redis.call('HMGET', old_key, 'status', 'capacity', 'connected')
    if a[1] == 'online' and a[3] == '1' and active < tonumber(a[2] or '0') then redis.call('ZADD', P .. 'agents:available', now, old) end
    publish_presence(old)
  end
end

if target ~= '' then
  if target == old then return {'err', 'already_picked'} end
  local t_key = P .. 'agent:' .. target
  local t = redis.call('HMGET', t_key, 'status', 'capacity', 'active', 'name')
  if t[1] ~= 'online' and t[1] ~= 'away' then return {'err', 'agent_offline'} end
  if tonumber(t[3] or '0') >= tonumber(t[2] or '0') then return {'err', 'at_capacity'} end
  release_old()
  redis.call('SADD', t_key .. ':convs', id)
  local active = redis.call('HINCRBY', t_key, 'active', 1)
  if active >= tonumber(t[2]) then redis.call('ZREM', P .. 'agents:available', target) end
  redis.call('HSET', conv_key, 'agent_id', target, 'agent_name', t[4] or '', 'transferred_at', now)
  redis.call('XADD', conv_key .. ':events', '*', 'type', 'transferred', 'actor_id', actor, 'actor_role', role, 'at', now,
    'data', cjson.encode({from = old, to = target, note = note}))
  local conversation = {id = id, status = 'active', category_id = c[3], subject = c[7], priority = c[8],
    customer = {id = c[5], name = c[6]}, created_at = tonumber(c[9]), enqueued_at = tonumber(c[10]), agent_id = target,
    agent = {id = target, name = t[4] or ''}}
  local transferred = cjson.encode({event = 'CONVERSATION_TRANSFERRED', data = {conversation_id = id, from_agent_id = old,
    agent = {id = target, name = t[4] or ''}, note = note}})
  redis.call('PUBLISH', P .. 'ch:conv:' .. id, 'a|-|' .. transferred)
  redis.call('PUBLISH', P .. 'ch:user:' .. old, 'a|' .. id .. '|' .. transferred)
  redis.call('PUBLISH', P .. 'ch:user:' .. target, 'a|' .. id .. '|' .. cjson.encode({event = 'CONVERSATION_ASSIGNED',
    data = {conversation = conversation, agent = {id = target, name = t[4] or ''}, transferred_from = old, note = note}}))
  publish_presence(target)
  return {'ok', 'active'}
end

-- back to a queue, keeping its place (original score)
local queue = category ~= '' and category or c[3]
release_old()
redis.call('HSET', conv_key, 'status', 'waiting', 'agent_id', '', 'agent_name', '', 'assigned_at', '', 'category_id', queue)
redis.call('ZADD', P .. 'queue:' .. queue, c[4], id)
redis.call('SADD', P .. 'queues', queue)
redis.call('ZADD', P .. 'customers:seen', now, id)
redis.call('XADD', conv_key .. ':events', '*', 'type', 'transferred', 'actor_id', actor, 'actor_role', role, 'at', now,
  'data', cjson.encode({from = old, to_queue = queue, note = note}))
local conversation = {id = id, status = 'waiting', category_id = queue, subject = c[7], priority = c[8],
  customer = {id = c[5], name = c[6]}, created_at = tonumber(c[9]), enqueued_at = tonumber(c[10])}
local transferred = cjson.encode({event = 'CONVERSATION_TRANSFERRED', data = {conversation_id = id, from_agent_id = old, category_id = queue, note = note}})
redis.call('PUBLISH', P .. 'ch:conv:' .. id, 'a|-|' .. transferred)
redis.call('PUBLISH', P .. 'ch:user:' .. old, 'a|' .. id .. '|' .. transferred)
redis.call('PUBLISH', P .. 'ch:queue', 'a|' .. queue .. '|' .. cjson.encode({event = 'QUEUE_UPDATED', data = {op = 'added', conversation = conversation}}))
return {'ok', 'waiting'}
