-- close.lua: ends a conversation. Marks it closed, frees the agent's capacity, tells both sides,
-- and hands it to the flushers through the outbox stream (archived to PostgreSQL from there).
-- KEYS[1]: <prefix>conv:<id>
-- ARGV: prefix, conv_id, actor_id, actor_role, resolution, now_ms
-- Returns {'ok', outbox entry id} or {'err', code}
local P = ARGV[1]
local id, actor, role, resolution, now = ARGV[2], ARGV[3], ARGV[4], ARGV[5], tonumber(ARGV[6])
local conv_key = P .. 'conv:' .. id
local c = redis.call('HMGET', conv_key, 'status', 'agent_id', 'category_id', 'customer_email', 'assigned_at')
if not c[1] then return {'err', 'not_found'} end
if c[1] == 'closed' or c[1] == 'abandoned' then return {'err', 'conversation_closed'} end
if role == 'agent' and (c[1] ~= 'active' or c[2] ~= actor) then return {'err', 'forbidden'} end
if role ~= 'agent' and role ~= 'supervisor' and role ~= 'admin' then return {'err', 'forbidden'} end

redis.call('HSET', conv_key, 'status', 'closed', 'closed_at', now, 'closed_by', actor, 'resolution', resolution)
if c[1] == 'waiting' then
  redis.call('ZREM', P .. 'queue:' .. c[3], id)
  redis.call('PUBLISH', P .. 'ch:queue', 'a|' .. c[3] .. '|' .. cjson.encode({event = 'QUEUE_UPDATED', data = {op = 'removed', conversation = {id = id, category_id = c[3]}}}))
end
redis.call('ZREM', P .. 'customers:seen', id)
redis.call('ZREM', P .. 'convs:live', id)
local customer_key = P .. 'customer:' .. (c[4] or '')
if redis.call('HGET', customer_key, 'conv') == id then redis.call('HDEL', customer_key, 'conv') end
-- the customer's id is kept for a returning customer, not forever
redis.call('PEXPIRE', customer_key, 30 * 86400 * 1000)

if c[2] and c[2] ~= '' then
  local agent_key = P .. 'agent:' .. c[2]
  if redis.call('SREM', agent_key .. ':convs', id) == 1 then
    local active = redis.call('HINCRBY', agent_key, 'active', -1)
    local a = redis.call('HMGET', agent_key, 'status', 'capacity', 'connected', 'node')
    if a[1] == 'online' and a[3] == '1' and active < tonumber(a[2] or '0') then
      redis.call('ZADD', P .. 'agents:available', now, c[2])
    end
    local pa = redis.call('HMGET', agent_key, 'status', 'active', 'capacity', 'node', 'connected', 'since', 'name', 'supervisor_id')
    redis.call('PUBLISH', P .. 'ch:presence', 'a|' .. (pa[8] or '') .. '|' .. cjson.encode({event = 'PRESENCE_UPDATED', data = {
      agent_id = c[2], name = pa[7] or '', status = pa[1] or 'offline', active = tonumber(pa[2] or '0'),
      capacity = tonumber(pa[3] or '0'), node_id = pa[4] or '', connected = pa[5] == '1', since = tonumber(pa[6] or '0')}}))
  end
  -- handle time feeds the customers' estimated wait
  if c[5] and c[5] ~= '' then
    local handle = now - tonumber(c[5])
    local stats = P .. 'stats'
    local avg = tonumber(redis.call('HGET', stats, 'handle_ms_avg') or '0')
    if avg == 0 then avg = handle else avg = math.floor(avg * 0.9 + handle * 0.1) end
    redis.call('HSET', stats, 'handle_ms_avg', avg)
  end
end
-- a call still ringing or running ends with the conversation
local call_key = conv_key .. ':call'
local call_id = redis.call('HGET', call_key, 'call_id')
if call_id then
  local call = redis.call('HMGET', call_key, 'caller_id', 'callee_id', 'answered_at', 'media')
  local duration = 0
  if call[3] and call[3] ~= '' then duration = math.floor((now - tonumber(call[3])) / 1000) end
  redis.call('DEL', call_key)
  redis.call('ZREM', P .. 'calls:ringing', id)
  redis.call('XADD', conv_key .. ':events', '*', 'type', 'call_ended', 'actor_id', actor, 'actor_role', role, 'at', now,
    'data', cjson.encode({call_id = call_id, duration_s = duration, media = call[4]}))
  local frame = cjson.encode({event = 'CALL_END', data = {conversation_id = id, call_id = call_id, reason = 'ended', duration_s = duration}})
  redis.call('PUBLISH', P .. 'ch:conv:' .. id, 't|' .. call[1] .. '|' .. frame)
  redis.call('PUBLISH', P .. 'ch:conv:' .. id, 't|' .. call[2] .. '|' .. frame)
end
redis.call('XADD', conv_key .. ':events', '*', 'type', 'closed', 'actor_id', actor, 'actor_role', role, 'at', now,
  'data', cjson.encode({resolution = resolution}))
redis.call('PUBLISH', P .. 'ch:conv:' .. id, 'a|-|' .. cjson.encode({event = 'CONVERSATION_CLOSED', data = {
  conversation_id = id, closed_by = {id = actor, role = role}, resolution = resolution, closed_at = now}}))
return {'ok', redis.call('XADD', P .. 'outbox', '*', 'conversation_id', id)}
