-- pick.lua: one agent takes one waiting conversation. The only place a conversation is assigned,
-- so the invariants live here: a conversation is assigned once, however many agents on however
-- many nodes race for it, and no agent holds more than its capacity.
-- "Fairest" = the oldest head among the queues of the agent's categories (all queues if none).
-- KEYS: 1 agent:<agent>  2 agent:<agent>:convs  3 agents:available  4 customers:seen  5 ch:queue
--       6 ch:presence  7 ch:user:<agent>  8 queues
--       8+1 .. 8+nq          queue:<category> of each category in ARGV (the agent's queues as the
--                            node read them; for a wanted conversation, its one queue)
--       then per candidate:  conv:<id>, conv:<id>:events, ch:conv:<id>   (a wanted conversation,
--                            or the first few of each queue as the node read them)
-- ARGV: 1 now override, 2 agent_id, 3 wanted conv_id or '' (= the fairest), 4 mode ('pick': the
--       agent itself, must be online | 'assign': a supervisor, agent online or away), 5 actor_id,
--       6 the agent's categories field as read, 7 nq, 8 .. 7+nq the categories of the queue keys,
--       then the candidates' ids
-- Returns {'ok', conv_id, [conv hash as HGETALL gives it]} or {'err', code} (code 'stale': read again)
local now = hd.now(ARGV[1])
local agent_id, wanted, mode, actor, categories = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local nq = tonumber(ARGV[7])
local agent_key, convs_key, available_key = KEYS[1], KEYS[2], KEYS[3]
local first_candidate = 9 + nq

local a = redis.call('HMGET', agent_key, 'status', 'capacity', 'active', 'categories', 'name')
if (a[4] or '') ~= categories then return hd.STALE end
local status, capacity, active = a[1], tonumber(a[2] or '0'), tonumber(a[3] or '0')
if mode == 'pick' and status ~= 'online' then return {'err', 'not_online'} end
if mode == 'assign' and status ~= 'online' and status ~= 'away' then return {'err', 'agent_offline'} end
if active >= capacity then return {'err', 'at_capacity'} end

-- candidate id -> index of its first key
local candidates = {}
for i = 8 + nq, #ARGV do candidates[ARGV[i]] = first_candidate + (i - 8 - nq) * 3 end

local id, queue_index
if wanted ~= '' then
  local k = candidates[wanted]
  local c = redis.call('HMGET', KEYS[k], 'status', 'category_id')
  if not c[1] then return {'err', 'not_found'} end
  if c[1] ~= 'waiting' then return {'err', 'already_picked'} end
  if c[2] ~= ARGV[8] then return hd.STALE end
  if mode == 'pick' and categories ~= '' then
    local serves = false
    for cat in string.gmatch(categories, '[^,]+') do if cat == c[2] then serves = true end end
    if not serves then return {'err', 'forbidden'} end
  end
  id, queue_index = wanted, 1
else
  -- an agent without categories serves every queue: the node must have passed all of them
  if categories == '' and redis.call('SCARD', KEYS[8]) ~= nq then return hd.STALE end
  local best_score
  for q = 1, nq do
    if categories == '' and redis.call('SISMEMBER', KEYS[8], ARGV[7 + q]) == 0 then return hd.STALE end
    local head = redis.call('ZRANGE', KEYS[8 + q], 0, 0, 'WITHSCORES')
    if head[1] and (not best_score or tonumber(head[2]) < best_score) then
      id, queue_index, best_score = head[1], q, tonumber(head[2])
    end
  end
  if not id then return {'err', 'queue_empty'} end
  -- the head moved past what the node read: read again
  if not candidates[id] then return hd.STALE end
end

local k = candidates[id]
local conv_key, events_key, channel = KEYS[k], KEYS[k + 1], KEYS[k + 2]
local category = ARGV[7 + queue_index]
redis.call('ZREM', KEYS[8 + queue_index], id)
redis.call('ZREM', KEYS[4], id)
redis.call('HSET', conv_key, 'status', 'active', 'agent_id', agent_id, 'agent_name', a[5] or '', 'assigned_at', now)
redis.call('SADD', convs_key, id)
active = redis.call('HINCRBY', agent_key, 'active', 1)
if active >= capacity then redis.call('ZREM', available_key, agent_id) end
hd.log(events_key, 'assigned', actor, mode == 'pick' and 'agent' or 'supervisor', now, {agent_id = agent_id})

local h = redis.call('HGETALL', conv_key)
local c = {}
for i = 1, #h, 2 do c[h[i]] = h[i + 1] end
local conversation = hd.conversation(c)
local assigned = {conversation_id = id, conversation = conversation, agent = conversation.agent}
hd.publish(channel, 'assigned', 'a', agent_id, 'CONVERSATION_ASSIGNED', assigned)
hd.publish(KEYS[7], 'user', 'a', '-', 'CONVERSATION_ASSIGNED', assigned)
hd.publish(KEYS[5], 'queue', 'a', category, 'QUEUE_UPDATED', {op = 'removed', conversation = conversation})
hd.publish_presence(KEYS[6], agent_key, agent_id)
return {'ok', id, h}
