-- pick.lua: one agent takes one waiting conversation (PICK), or a supervisor assigns one. With
-- offer_accept.lua the only way a conversation gets its agent (both through hd.assign), so the
-- invariants live here: a conversation is assigned once, however many agents on however many
-- nodes race for it, and no agent holds more than its capacity (offers in flight count).
-- An agent picks from the pick-routed queues it serves: its categories and their subcategories,
-- and the uncategorised queue (all queues if it has no categories). Offer-routed categories are
-- offered (offer.lua), not picked; a conversation on offer to someone cannot be taken meanwhile.
-- "Fairest" = the oldest head (not on offer) among those queues.
-- KEYS: 1 agent:<agent>  2 agent:<agent>:convs  3 agents:available  4 customers:seen  5 ch:queue
--       6 ch:presence  7 ch:user:<agent>  8 queues  9 categories  10 offers
--       10+1 .. 10+nq        queue:<category> of each category in ARGV (the agent's pick-routed
--                            queues as the node read them; for a wanted conversation, its one queue)
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
local agent_key, convs_key, available_key, offers_key = KEYS[1], KEYS[2], KEYS[3], KEYS[10]
local first_candidate = 11 + nq
local category_of = hd.categories(KEYS[9])

local a = redis.call('HMGET', agent_key, 'status', 'capacity', 'active', 'categories', 'name', 'offered')
if (a[4] or '') ~= categories then return hd.STALE end
local status, capacity = a[1], tonumber(a[2]) or 0
if mode == 'pick' and status ~= 'online' then return {'err', 'not_online'} end
if mode == 'assign' and status ~= 'online' and status ~= 'away' then return {'err', 'agent_offline'} end
if hd.load(a[3], a[6]) >= capacity then return {'err', 'at_capacity'} end

-- candidate id -> index of its first key
local candidates = {}
for i = 8 + nq, #ARGV do candidates[ARGV[i]] = first_candidate + (i - 8 - nq) * 3 end

local id, queue_index
if wanted ~= '' then
  local k = candidates[wanted]
  local c = redis.call('HMGET', KEYS[k], 'status', 'category_id', 'offered_to')
  if not c[1] then return {'err', 'not_found'} end
  if c[1] ~= 'waiting' then return {'err', 'already_picked'} end
  if c[2] ~= ARGV[8] then return hd.STALE end
  if hd.str(c[3]) then return {'err', 'offered'} end
  if mode == 'pick' then
    if category_of(c[2]).routing == 'offer' then return {'err', 'offer_routing'} end
    if not hd.serves(category_of, categories, c[2]) then return {'err', 'forbidden'} end
  end
  id, queue_index = wanted, 1
else
  -- the node passes exactly the pick-routed queues this agent serves: read again otherwise
  local passed = {}
  for q = 1, nq do
    local category = ARGV[7 + q]
    if not hd.serves(category_of, categories, category) or category_of(category).routing == 'offer' then return hd.STALE end
    passed[category] = true
  end
  for _, category in ipairs(redis.call('SMEMBERS', KEYS[8])) do
    if not passed[category] and hd.serves(category_of, categories, category) and category_of(category).routing ~= 'offer' then
      return hd.STALE
    end
  end
  local best_score
  for q = 1, nq do
    local head, score = hd.first_free(KEYS[10 + q], offers_key)
    if head and (not best_score or score < best_score) then
      id, queue_index, best_score = head, q, score
    end
  end
  if not id then return {'err', 'queue_empty'} end
  -- the head moved past what the node read: read again
  if not candidates[id] then return hd.STALE end
end

local k = candidates[id]
local h = hd.assign({
  conv = KEYS[k], events = KEYS[k + 1], channel = KEYS[k + 2], queue = KEYS[10 + queue_index], seen = KEYS[4],
  agent = agent_key, convs = convs_key, available = available_key, user_channel = KEYS[7], queue_channel = KEYS[5],
  presence_channel = KEYS[6],
}, id, ARGV[7 + queue_index], agent_id, a[5], actor, mode == 'pick' and 'agent' or 'supervisor', now)
return {'ok', id, h}
