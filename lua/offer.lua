-- offer.lua: offer routing. Makes at most one offer: the oldest waiting customer of the
-- offer-routed queues (priority first: the queue score holds it) that an eligible agent can take,
-- to the longest-idle such agent (agents:available order). Eligible: online, connected, under
-- capacity counting its offers in flight, not in wrap-up, serving the customer's category (its
-- categories and their subcategories; the uncategorised queue is everyone's), and not one that
-- declined or let this customer's offer run out within the last decline_memory ms. A conversation
-- is offered to one agent at a time (it has `offered_to`) and keeps its place in its queue.
-- Nodes run it after every event that can make a match (enqueue, requeue, agent online, capacity
-- freed, an offer or a wrap-up ended, routing changed), again after each offer, until 'none'.
-- KEYS: 1 agents:available  2 queues  3 categories  4 offers  5 ch:presence
--       5+1 .. 5+nq         queue:<category> of every offer-routed queue (as the node read them)
--       then per candidate: conv:<id>, conv:<id>:events   (each queue's oldest conversation not on offer)
--       then per agent:     agent:<id>, ch:user:<id>      (every member of agents:available, in its order)
-- ARGV: 1 now override, 2 offer timeout ms, 3 decline memory ms, 4 nq, then nq categories,
--       then nc, nc candidate ids, then na, na agent ids
-- Returns {'offered', conv_id, agent_id, expires_at, now}, {'none'} or {'err', 'stale'}
local now = hd.now(ARGV[1])
local timeout, memory = tonumber(ARGV[2]), tonumber(ARGV[3])
local available_key, offers_key, presence_channel = KEYS[1], KEYS[4], KEYS[5]
local category_of = hd.categories(KEYS[3])

local i = 4
local nq = tonumber(ARGV[i]); i = i + 1
local queues = {}
for q = 1, nq do queues[ARGV[i]] = KEYS[5 + q]; i = i + 1 end
local nc = tonumber(ARGV[i]); i = i + 1
local candidates = {}
for n = 1, nc do candidates[ARGV[i]] = 5 + nq + (n - 1) * 2 + 1; i = i + 1 end
local na = tonumber(ARGV[i]); i = i + 1
local agent_keys = {}
for n = 1, na do agent_keys[ARGV[i]] = 5 + nq + nc * 2 + (n - 1) * 2 + 1; i = i + 1 end

-- what the node read must still hold: every offer-routed queue (and only those), every available agent
for category in pairs(queues) do
  if category_of(category).routing ~= 'offer' then return hd.STALE end
end
for _, category in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if not queues[category] and category_of(category).routing == 'offer' then return hd.STALE end
end
local available = redis.call('ZRANGE', available_key, 0, -1)
if #available ~= na then return hd.STALE end
for _, agent_id in ipairs(available) do
  if not agent_keys[agent_id] then return hd.STALE end
end
if na == 0 then return {'none'} end

-- each queue's oldest customer not on offer, oldest first
local heads = {}
for category, queue_key in pairs(queues) do
  local id, score = hd.first_free(queue_key, offers_key)
  if id then
    if not candidates[id] then return hd.STALE end
    heads[#heads + 1] = {id = id, score = score, category = category}
  end
end
if #heads == 0 then return {'none'} end
table.sort(heads, function(x, y)
  if x.score ~= y.score then return x.score < y.score end
  return x.id < y.id
end)

local states = {}
local function eligible(agent_id)
  local s = states[agent_id]
  if not s then
    local a = redis.call('HMGET', KEYS[agent_keys[agent_id]], 'status', 'connected', 'active', 'offered', 'capacity',
      'categories', 'wrap_up_until')
    s = {
      free = a[1] == 'online' and a[2] == '1' and hd.load(a[3], a[4]) < (tonumber(a[5]) or 0) and (tonumber(a[7]) or 0) <= now,
      categories = a[6] or '',
    }
    states[agent_id] = s
  end
  return s
end

for _, head in ipairs(heads) do
  local k = candidates[head.id]
  local conv_key, events_key = KEYS[k], KEYS[k + 1]
  local declined = {}
  for agent_id, at in string.gmatch(redis.call('HGET', conv_key, 'declined_by') or '', '([^:,]+):(%d+)') do
    if now - tonumber(at) < memory then declined[agent_id] = true end
  end
  for _, agent_id in ipairs(available) do
    local s = eligible(agent_id)
    if s.free and not declined[agent_id] and hd.serves(category_of, s.categories, head.category) then
      local a = agent_keys[agent_id]
      local agent_key, user_channel = KEYS[a], KEYS[a + 1]
      local expires = now + timeout
      redis.call('HSET', conv_key, 'offered_to', agent_id, 'offer_expires_at', expires)
      redis.call('ZADD', offers_key, expires, head.id)
      redis.call('HINCRBY', agent_key, 'offered', 1)
      -- to the back of the longest-idle order (and out of it at capacity)
      redis.call('ZADD', available_key, 'XX', now, agent_id)
      hd.refresh_available(available_key, agent_key, agent_id, now)
      hd.log(events_key, 'offered', '', 'system', now, {agent_id = agent_id, expires_at = expires})
      hd.publish(user_channel, 'user', 'a', '-', 'CONVERSATION_OFFERED',
        {conversation = hd.conversation(hd.hash(conv_key)), expires_at = expires})
      hd.publish_presence(presence_channel, agent_key, agent_id)
      return {'offered', head.id, agent_id, expires, now}
    end
  end
end
return {'none'}
