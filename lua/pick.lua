-- pick.lua: one agent takes one waiting conversation. The only place a conversation is assigned,
-- so the invariants live here: a conversation is assigned once, however many agents on however
-- many nodes race for it, and no agent holds more than its capacity.
-- KEYS[1]: <prefix>agent:<agent_id> (routing)
-- ARGV: prefix, agent_id, conv_id or '' (= the fairest: the oldest head among the agent's queues),
--       mode ('pick': the agent itself, must be online | 'assign': a supervisor, agent online or away),
--       actor_id, now_ms
-- Returns {'ok', conv_id} or {'err', code}
local P = ARGV[1]
local agent_id, wanted, mode, actor = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
-- assignment time from Redis's clock, not the caller's: assignments on many nodes then order
-- exactly as they happened (ARGV[6], the node's time, is kept for the interface)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local agent_key = P .. 'agent:' .. agent_id
local a = redis.call('HMGET', agent_key, 'status', 'capacity', 'active', 'categories', 'name')
local status, capacity, active = a[1], tonumber(a[2] or '0'), tonumber(a[3] or '0')
if mode == 'pick' and status ~= 'online' then return {'err', 'not_online'} end
if mode == 'assign' and status ~= 'online' and status ~= 'away' then return {'err', 'agent_offline'} end
if active >= capacity then return {'err', 'at_capacity'} end

-- the queues this agent serves: its categories, or every queue when it has none
local queues = {}
if a[4] and a[4] ~= '' then
  for c in string.gmatch(a[4], '[^,]+') do queues[#queues + 1] = c end
else
  queues = redis.call('SMEMBERS', P .. 'queues')
end

local id
if wanted ~= '' then
  local c = redis.call('HMGET', P .. 'conv:' .. wanted, 'status', 'category_id')
  if not c[1] then return {'err', 'not_found'} end
  if c[1] ~= 'waiting' then return {'err', 'already_picked'} end
  if mode == 'pick' and a[4] and a[4] ~= '' then
    local serves = false
    for _, q in ipairs(queues) do if q == c[2] then serves = true end end
    if not serves then return {'err', 'forbidden'} end
  end
  id = wanted
else
  local best_score
  for _, q in ipairs(queues) do
    local head = redis.call('ZRANGE', P .. 'queue:' .. q, 0, 0, 'WITHSCORES')
    if head[1] and (not best_score or tonumber(head[2]) < best_score) then
      id, best_score = head[1], tonumber(head[2])
    end
  end
  if not id then return {'err', 'queue_empty'} end
end

local conv_key = P .. 'conv:' .. id
local category = redis.call('HGET', conv_key, 'category_id')
redis.call('ZREM', P .. 'queue:' .. category, id)
redis.call('ZREM', P .. 'customers:seen', id)
redis.call('HSET', conv_key, 'status', 'active', 'agent_id', agent_id, 'agent_name', a[5] or '', 'assigned_at', now)
redis.call('SADD', agent_key .. ':convs', id)
active = redis.call('HINCRBY', agent_key, 'active', 1)
if active >= capacity then
  redis.call('ZREM', P .. 'agents:available', agent_id)
end
redis.call('XADD', conv_key .. ':events', '*', 'type', 'assigned', 'actor_id', actor, 'actor_role', mode == 'pick' and 'agent' or 'supervisor',
  'at', now, 'data', cjson.encode({agent_id = agent_id}))

local h = redis.call('HGETALL', conv_key)
local c = {}
for i = 1, #h, 2 do c[h[i]] = h[i + 1] end
local conversation = {
  id = id, status = 'active', category_id = c.category_id, subject = c.subject, priority = c.priority,
  customer = {id = c.customer_id, name = c.customer_name}, created_at = tonumber(c.created_at),
  enqueued_at = tonumber(c.enqueued_at), assigned_at = now, agent_id = agent_id, agent = {id = agent_id, name = a[5] or ''},
}
local assigned = cjson.encode({event = 'CONVERSATION_ASSIGNED', data = {conversation = conversation, agent = {id = agent_id, name = a[5] or ''}}})
redis.call('PUBLISH', P .. 'ch:conv:' .. id, 'a|-|' .. assigned)
redis.call('PUBLISH', P .. 'ch:user:' .. agent_id, 'a|' .. id .. '|' .. assigned)
redis.call('PUBLISH', P .. 'ch:queue',
  'a|' .. category .. '|' .. cjson.encode({event = 'QUEUE_UPDATED', data = {op = 'removed', conversation = conversation}}))
local pa = redis.call('HMGET', agent_key, 'status', 'active', 'capacity', 'node', 'connected', 'since', 'name', 'supervisor_id')
redis.call('PUBLISH', P .. 'ch:presence', 'a|' .. (pa[8] or '') .. '|' .. cjson.encode({event = 'PRESENCE_UPDATED', data = {
  agent_id = agent_id, name = pa[7] or '', status = pa[1] or 'offline', active = tonumber(pa[2] or '0'),
  capacity = tonumber(pa[3] or '0'), node_id = pa[4] or '', connected = pa[5] == '1', since = tonumber(pa[6] or '0')}}))
return {'ok', id}
