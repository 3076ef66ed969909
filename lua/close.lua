-- close.lua: ends a conversation. Marks it closed, frees the agent's capacity, ends its call,
-- tells both sides, and hands it to the flushers through the outbox stream with a new close
-- generation (close_epoch): the flusher archives only what this close produced. A waiting
-- conversation on offer ends its offer (OFFER_REVOKED, reason closed). The agent of an active one
-- goes into wrap-up for its category's wrap_up_s (no offers meanwhile; WRAP_UP_STARTED to it).
-- KEYS: 1 conv:<id>  2 conv:<id>:events  3 conv:<id>:call  4 ch:conv:<id>  5 customer:<email>
--       6 queue:<category>  7 customers:seen  8 convs:live  9 calls:ringing  10 outbox  11 stats
--       12 ch:queue  13 agent:<agent>  14 agent:<agent>:convs  15 agents:available  16 ch:presence
--       17 offers  18 agent:<the agent it is offered to>  19 ch:user:<that agent>  20 categories
--       21 agents:wrapup  22 ch:user:<agent>
--       (email, category, agent and offered agent as the node read them from the conversation)
-- ARGV: now override, conv_id, actor_id, actor_role, resolution, email, category_id, agent_id as
--       read, offered_to as read
-- Returns {'ok', outbox entry id, the agent's wrap-up end ms or 0} or {'err', code}
local now = hd.now(ARGV[1])
local id, actor, role, resolution = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local conv_key, events_key, channel = KEYS[1], KEYS[2], KEYS[4]
local c = redis.call('HMGET', conv_key, 'status', 'agent_id', 'category_id', 'customer_email', 'assigned_at', 'offered_to')
if not c[1] then return {'err', 'not_found'} end
if (c[4] or '') ~= ARGV[6] or (c[3] or '') ~= ARGV[7] or (c[2] or '') ~= ARGV[8] or (c[6] or '') ~= (ARGV[9] or '') then
  return hd.STALE
end
if c[1] == 'closed' or c[1] == 'abandoned' then return {'err', 'conversation_closed'} end
if role == 'agent' and (c[1] ~= 'active' or c[2] ~= actor) then return {'err', 'forbidden'} end
if role ~= 'agent' and role ~= 'supervisor' and role ~= 'admin' then return {'err', 'forbidden'} end

redis.call('HSET', conv_key, 'status', 'closed', 'closed_at', now, 'closed_by', actor, 'resolution', resolution)
if c[1] == 'waiting' then
  redis.call('ZREM', KEYS[6], id)
  if c[6] and c[6] ~= '' then
    hd.end_offer({conv = conv_key, events = events_key, offers = KEYS[17], agent = KEYS[18], available = KEYS[15],
      user_channel = KEYS[19], presence_channel = KEYS[16]}, id, c[6], 'closed', false, now)
  end
  hd.publish(KEYS[12], 'queue', 'a', c[3], 'QUEUE_UPDATED', {op = 'removed', conversation = hd.conversation(hd.hash(conv_key))})
end
redis.call('ZREM', KEYS[7], id)
redis.call('ZREM', KEYS[8], id)
if redis.call('HGET', KEYS[5], 'conv') == id then redis.call('HDEL', KEYS[5], 'conv') end
-- the customer's id is kept for a returning customer, not forever
redis.call('PEXPIRE', KEYS[5], 30 * 86400 * 1000)

local wrap_until = 0
if c[2] and c[2] ~= '' then
  -- wrap-up first, so the presence update of the release shows it
  local wrap = hd.categories(KEYS[20])(c[3] or '0').wrap_up_s
  if wrap > 0 then
    wrap_until = now + wrap * 1000
    local current = tonumber(redis.call('HGET', KEYS[13], 'wrap_up_until')) or 0
    if wrap_until > current then
      redis.call('HSET', KEYS[13], 'wrap_up_until', wrap_until)
      redis.call('ZADD', KEYS[21], wrap_until, c[2])
      hd.publish(KEYS[22], 'user', 'a', '-', 'WRAP_UP_STARTED', {conversation_id = id, wrap_up_until = wrap_until})
    else
      wrap_until = current
    end
  end
  hd.release(KEYS[13], KEYS[14], KEYS[15], KEYS[16], c[2], id, now)
  -- handle time feeds the customers' estimated wait
  if c[5] and c[5] ~= '' then
    local handle = now - tonumber(c[5])
    local avg = tonumber(redis.call('HGET', KEYS[11], 'handle_ms_avg') or '0')
    if avg == 0 then avg = handle else avg = math.floor(avg * 0.9 + handle * 0.1) end
    redis.call('HSET', KEYS[11], 'handle_ms_avg', avg)
  end
end
-- a call still ringing or running ends with the conversation, for both sides
hd.end_call(KEYS[3], KEYS[9], events_key, channel, id, 'ended', actor, role, '', now)
hd.log(events_key, 'closed', actor, role, now, {resolution = resolution})
hd.publish(channel, 'closed', 'a', '-', 'CONVERSATION_CLOSED', {
  conversation_id = id, closed_by = {id = actor, role = role}, resolution = resolution, closed_at = now})
return {'ok', hd.to_outbox(conv_key, KEYS[10], id), wrap_until}
