-- presence.lua: agent presence and the sweep that acts on absence. The one place that decides
-- who is online, which agents can take work, and what happens to the conversations of an agent
-- or a waiting customer who is gone.
-- KEYS[1]: <prefix>presence (routing)
-- ARGV[1]: prefix, ARGV[2]: operation, ARGV[3]: now_ms, then per operation:
--   connect    agent_id node name capacity categories supervisor_id   an agent's first socket on a node ('-' = keep)
--   disconnect agent_id node                            an agent's last socket on a node closed
--   status     agent_id online|away
--   heartbeat  node node_ttl_ms n_agents agent_ids... conv_ids...   sockets this node holds
--   sweep      agent_grace_ms node_ttl_ms customer_grace_ms
local P, op, now = ARGV[1], ARGV[2], tonumber(ARGV[3])

-- the same PRESENCE_UPDATED shape is built in pick.lua and close.lua; the channel key is the
-- agent's supervisor id, so nodes show it to that supervisor (and admins) only
local function publish_presence(agent_id)
  local a = redis.call('HMGET', P .. 'agent:' .. agent_id, 'status', 'active', 'capacity', 'node', 'connected', 'since', 'name', 'supervisor_id')
  redis.call('PUBLISH', P .. 'ch:presence', 'a|' .. (a[8] or '') .. '|' .. cjson.encode({event = 'PRESENCE_UPDATED', data = {
    agent_id = agent_id, name = a[7] or '', status = a[1] or 'offline', active = tonumber(a[2] or '0'),
    capacity = tonumber(a[3] or '0'), node_id = a[4] or '', connected = a[5] == '1', since = tonumber(a[6] or '0')}}))
end

-- an agent can be routed new work when online, connected and under capacity
local function refresh_available(agent_id)
  local a = redis.call('HMGET', P .. 'agent:' .. agent_id, 'status', 'active', 'capacity', 'connected')
  if a[1] == 'online' and a[4] == '1' and tonumber(a[2] or '0') < tonumber(a[3] or '0') then
    redis.call('ZADD', P .. 'agents:available', 'NX', now, agent_id)
  else
    redis.call('ZREM', P .. 'agents:available', agent_id)
  end
end

local function requeue(conv_id, agent_id)
  local conv_key = P .. 'conv:' .. conv_id
  local c = redis.call('HMGET', conv_key, 'status', 'agent_id', 'category_id', 'queue_score', 'subject', 'priority',
    'customer_id', 'customer_name', 'created_at', 'enqueued_at')
  if c[1] ~= 'active' or c[2] ~= agent_id then return end
  redis.call('HSET', conv_key, 'status', 'waiting', 'agent_id', '', 'agent_name', '', 'assigned_at', '')
  -- back in line with its original score: ahead of everyone who came after it
  redis.call('ZADD', P .. 'queue:' .. c[3], c[4], conv_id)
  redis.call('SADD', P .. 'queues', c[3])
  redis.call('ZADD', P .. 'customers:seen', now, conv_id)
  redis.call('XADD', conv_key .. ':events', '*', 'type', 'requeued', 'actor_id', agent_id, 'actor_role', 'agent', 'at', now,
    'data', cjson.encode({reason = 'agent_offline'}))
  local conversation = {id = conv_id, status = 'waiting', category_id = c[3], subject = c[5], priority = c[6],
    customer = {id = c[7], name = c[8]}, created_at = tonumber(c[9]), enqueued_at = tonumber(c[10])}
  redis.call('PUBLISH', P .. 'ch:queue', 'a|' .. c[3] .. '|' .. cjson.encode({event = 'QUEUE_UPDATED', data = {op = 'added', conversation = conversation}}))
  redis.call('PUBLISH', P .. 'ch:conv:' .. conv_id, 'a|-|' .. cjson.encode({event = 'CONVERSATION_REQUEUED', data = {conversation_id = conv_id, reason = 'agent_offline'}}))
end

local function abandon(conv_id)
  local conv_key = P .. 'conv:' .. conv_id
  local c = redis.call('HMGET', conv_key, 'status', 'category_id', 'customer_email', 'customer_id')
  if c[1] ~= 'waiting' then return false end
  redis.call('ZREM', P .. 'queue:' .. c[2], conv_id)
  redis.call('HSET', conv_key, 'status', 'abandoned', 'closed_at', now, 'resolution', 'abandoned')
  redis.call('ZREM', P .. 'convs:live', conv_id)
  local customer_key = P .. 'customer:' .. (c[3] or '')
  if redis.call('HGET', customer_key, 'conv') == conv_id then redis.call('HDEL', customer_key, 'conv') end
  redis.call('PEXPIRE', customer_key, 30 * 86400 * 1000)
  redis.call('XADD', conv_key .. ':events', '*', 'type', 'abandoned', 'actor_id', c[4] or '', 'actor_role', 'customer', 'at', now, 'data', '')
  redis.call('XADD', P .. 'outbox', '*', 'conversation_id', conv_id)
  redis.call('PUBLISH', P .. 'ch:queue', 'a|' .. c[2] .. '|' .. cjson.encode({event = 'QUEUE_UPDATED', data = {op = 'removed', conversation = {id = conv_id, category_id = c[2]}}}))
  redis.call('PUBLISH', P .. 'ch:conv:' .. conv_id, 'a|-|' .. cjson.encode({event = 'CONVERSATION_CLOSED', data = {
    conversation_id = conv_id, resolution = 'abandoned', closed_at = now}}))
  return true
end

if op == 'connect' then
  local agent_id, node, name, capacity, categories, supervisor = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
  local key = P .. 'agent:' .. agent_id
  local status = redis.call('HGET', key, 'status')
  redis.call('HSET', key, 'id', agent_id, 'name', name, 'node', node, 'connected', '1', 'last_seen', now, 'disconnected_at', '')
  -- '-' keeps what Redis has (the node could not read the account from PostgreSQL just now)
  if capacity ~= '-' then redis.call('HSET', key, 'capacity', capacity) end
  if categories ~= '-' then redis.call('HSET', key, 'categories', categories) end
  if supervisor and supervisor ~= '-' then redis.call('HSET', key, 'supervisor_id', supervisor) end
  redis.call('HSETNX', key, 'capacity', 1)
  redis.call('SADD', P .. 'agents', agent_id)
  redis.call('HSETNX', key, 'active', 0)
  if not status or status == 'offline' then redis.call('HSET', key, 'status', 'online', 'since', now) end
  redis.call('ZADD', key .. ':nodes', now, node)
  redis.call('ZADD', P .. 'presence', now, agent_id)
  refresh_available(agent_id)
  publish_presence(agent_id)
  return redis.call('HGET', key, 'status')

elseif op == 'disconnect' then
  local agent_id, node = ARGV[4], ARGV[5]
  local key = P .. 'agent:' .. agent_id
  redis.call('ZREM', key .. ':nodes', node)
  if redis.call('ZCARD', key .. ':nodes') == 0 and redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'connected', '0', 'disconnected_at', now)
    refresh_available(agent_id)
    publish_presence(agent_id)
  end
  return 'ok'

elseif op == 'status' then
  local agent_id, status = ARGV[4], ARGV[5]
  local key = P .. 'agent:' .. agent_id
  if redis.call('EXISTS', key) == 0 then return redis.error_reply('not_connected') end
  if redis.call('HGET', key, 'status') ~= status then redis.call('HSET', key, 'status', status, 'since', now) end
  refresh_available(agent_id)
  publish_presence(agent_id)
  return status

elseif op == 'heartbeat' then
  local node, n_agents = ARGV[4], tonumber(ARGV[6])
  redis.call('ZADD', P .. 'nodes', now, node)
  local lost = {}
  for i = 7, 6 + n_agents do
    local agent_id = ARGV[i]
    local key = P .. 'agent:' .. agent_id
    local status = redis.call('HGET', key, 'status')
    if not status or status == 'offline' or redis.call('ZSCORE', key .. ':nodes', node) == false then
      -- Redis lost or swept this agent while we still hold its socket: the node must connect it again
      lost[#lost + 1] = agent_id
    else
      redis.call('ZADD', key .. ':nodes', now, node)
      redis.call('ZADD', P .. 'presence', now, agent_id)
      redis.call('HSET', key, 'last_seen', now)
    end
  end
  for i = 7 + n_agents, #ARGV do
    if redis.call('HGET', P .. 'conv:' .. ARGV[i], 'status') == 'waiting' then
      redis.call('ZADD', P .. 'customers:seen', now, ARGV[i])
    end
  end
  return lost

elseif op == 'sweep' then
  local agent_grace, node_ttl, customer_grace = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
  redis.call('ZREMRANGEBYSCORE', P .. 'nodes', '-inf', now - node_ttl)
  local offline, requeued, abandoned = 0, 0, 0
  for _, agent_id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'presence', '-inf', now - node_ttl, 'LIMIT', 0, 200)) do
    local key = P .. 'agent:' .. agent_id
    -- sockets on nodes that stopped heartbeating are gone with their node
    redis.call('ZREMRANGEBYSCORE', key .. ':nodes', '-inf', now - node_ttl)
    if redis.call('ZCARD', key .. ':nodes') == 0 then
      local since = tonumber(redis.call('HGET', key, 'disconnected_at') or '')
      if not since then
        since = tonumber(redis.call('ZSCORE', P .. 'presence', agent_id))
        redis.call('HSET', key, 'connected', '0', 'disconnected_at', since)
        refresh_available(agent_id)
        publish_presence(agent_id)
      end
      if now - since >= agent_grace then
        for _, conv_id in ipairs(redis.call('SMEMBERS', key .. ':convs')) do
          requeue(conv_id, agent_id)
          requeued = requeued + 1
        end
        redis.call('DEL', key .. ':convs')
        redis.call('HSET', key, 'status', 'offline', 'active', 0, 'since', now)
        redis.call('ZREM', P .. 'presence', agent_id)
        refresh_available(agent_id)
        publish_presence(agent_id)
        offline = offline + 1
      end
    end
  end
  for _, conv_id in ipairs(redis.call('ZRANGEBYSCORE', P .. 'customers:seen', '-inf', now - customer_grace, 'LIMIT', 0, 200)) do
    if abandon(conv_id) then abandoned = abandoned + 1 end
    redis.call('ZREM', P .. 'customers:seen', conv_id)
  end
  return {offline, requeued, abandoned}
end
return redis.error_reply('unknown presence operation ' .. tostring(op))
