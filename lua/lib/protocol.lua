-- lua/lib/protocol.lua: the prelude (its table is `hd`). RedisScripts loads lua/lib/*.lua and then
-- every script of lua/ as one Redis function library: this runs once, when the library loads
-- (so no redis.call at the top level), and every script's function sees its locals. Every
-- published frame and every shared view (conversation, presence, call) is built here, so each
-- object has one shape whichever script sends it (HelpDeskProtocol has the Swift types). The one
-- exception is the chat message: its view is written by the node (MessageView in Swift, which
-- HISTORY uses too), and send.lua only appends the id and time Redis gave it.
--
-- PUB/SUB PAYLOAD: '<kind>|<audience>|<key>\n<frame JSON>'. One header line, then the frame exactly
-- as sockets get it. The header's parts are names and ids, never a newline, so the first '\n' ends it.
-- Nodes route by the header alone and never search or decode the frame.
--   kind      msg       a chat message (NEW_MESSAGE); key = its stream id
--             assigned  CONVERSATION_ASSIGNED; key = the new agent's id
--             closed    CONVERSATION_CLOSED, abandoned included; key '-'
--             moved     CONVERSATION_REQUEUED / _TRANSFERRED / _REOPENED; key = the new agent's id,
--                       '-' when the conversation is back in a queue
--             event     anything else on a conversation channel (typing, calls, escalation);
--                       key '-' unless the audience is 'u'
--             queue     on the queue channel; key = the category id ('-': CATEGORIES_UPDATED)
--             presence  on the presence channel; key = the agent's supervisor id or '-'
--             user      on a user channel (assignments, offers, wrap-up); key '-'
--             msg's key may end in '/<origin>': the socket that sent it with SEND_MESSAGE
--             {echo: false} ('<node token>.<socket id>'); it got the message in its ACK, so its
--             node skips it. Inside the key so that a node of the previous release, during a
--             rolling deploy, still reads the header (and delivers the message to everyone).
--   audience  a  every socket that follows the channel
--             s  staff sockets only (internal notes, transfer notes, escalations)
--             u  only the sockets of the user whose id is the key (call signaling)
-- LiveStore.publishTyping (Swift) writes the same format.
--
-- KEYS: every key a script touches arrives in KEYS, channels included (a sharded PUBLISH declares
-- its channel as a key); no script builds a key name. Names are defined once, in RedisKeys.swift.
-- Where a key can only be learned from data (a conversation's agent, its category) the node reads
-- it first and passes it along with what it read; the script checks that still holds and otherwise
-- answers {'err', 'stale'} (the node reads again and retries).
--
-- TIME: scripts take 'now' from Redis's clock (hd.now), never from a node's. ARGV[1] of every
-- script except ratelimit.lua overrides it when not empty: a hook for tests that move time.
local hd = {}

--- ms since the epoch by Redis's clock, or the caller's override (tests only)
function hd.now(override)
  if override and override ~= '' then
    -- whole ms, as Redis's clock gives: frames and stream entries carry it as an integer
    local ms = tonumber(override)
    if not ms or ms ~= math.floor(ms) or ms < 0 or ms > 9007199254740992 then error('now override: whole ms expected') end
    return ms
  end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

hd.STALE = {'err', 'stale'}

--- a hash as a Lua table (empty when the key does not exist)
function hd.hash(key)
  local h = redis.call('HGETALL', key)
  local t = {}
  for i = 1, #h, 2 do t[h[i]] = h[i + 1] end
  return t
end

local function num(v)
  if v == nil or v == '' then return nil end
  return tonumber(v)
end
local function str(v)
  if v == nil or v == '' then return nil end
  return v
end
hd.num, hd.str = num, str

--- the conversation view, from the fields of a conv hash. No e-mail: frames reach other people.
--- Times are ms since the epoch; absent (not null) when not reached yet.
function hd.conversation(c)
  local view = {
    id = c.id, status = c.status,
    customer = {id = c.customer_id or '', name = c.customer_name or ''},
    category_id = c.category_id or '0', subject = c.subject or '', priority = c.priority or 'normal',
    created_at = num(c.created_at) or 0, enqueued_at = num(c.enqueued_at) or num(c.created_at) or 0,
    assigned_at = num(c.assigned_at), first_response_at = num(c.first_response_at), closed_at = num(c.closed_at),
    resolution = str(c.resolution), escalated = c.escalated == '1',
  }
  if str(c.agent_id) then view.agent = {id = c.agent_id, name = c.agent_name or ''} end
  return view
end

--- the presence view (PRESENCE_UPDATED), from the fields of an agent hash. `offers`: offers in
--- flight (they count against capacity); `wrap_up_until`: set while the agent is in wrap-up.
function hd.presence(agent_id, a)
  return {
    agent_id = agent_id, name = a.name or '', status = str(a.status) or 'offline', active = num(a.active) or 0,
    capacity = num(a.capacity) or 0, node_id = a.node or '', connected = a.connected == '1', since = num(a.since) or 0,
    offers = num(a.offered) or 0, wrap_up_until = num(a.wrap_up_until),
  }
end

--- Redis's log gets at most hd.LOG_LINES_PER_SECOND warnings from the scripts a second (by `now`,
--- the caller's clock reading): a bug that fails every chat message must not write a line per
--- message. The first line of the next second that logs says how many were left out. The count
--- lives in the library's Lua state, so it holds across calls until the library reloads.
hd.LOG_LINES_PER_SECOND = 10
local log_second, log_lines, log_left_out = nil, 0, 0
--- returns whether the line was written
function hd.log_warning(now, message)
  local second = math.floor(now / 1000)
  if second ~= log_second then
    if log_left_out > 0 then
      message = message .. ' (' .. log_left_out .. ' earlier warnings left out)'
    end
    log_second, log_lines, log_left_out = second, 0, 0
  end
  if log_lines >= hd.LOG_LINES_PER_SECOND then
    log_left_out = log_left_out + 1
    return false
  end
  log_lines = log_lines + 1
  redis.log(redis.LOG_WARNING, message)
  return true
end

--- publishes one frame with its routing header (format above); returns the frame's JSON.
--- Always written `{"event":"NAME","data":{...}}`, in that order: a node batching QUEUE_UPDATEDs
--- into one QUEUE_CHANGES frame takes the data object's bytes as they are (QueueChangesFrame).
function hd.publish(channel, kind, audience, key, event, data)
  return hd.publish_frame(channel, kind, audience, key, '{"event":"' .. event .. '","data":' .. cjson.encode(data) .. '}')
end

--- publishes a frame already encoded; `origin` (chat messages only, '' or nil for none) names
--- the socket that sent the message without echo: the header's key ends in '/<origin>'
function hd.publish_frame(channel, kind, audience, key, frame, origin)
  local header = kind .. '|' .. audience .. '|' .. (key or '-')
  if origin and origin ~= '' then header = header .. '/' .. origin end
  redis.call('PUBLISH', channel, header .. '\n' .. frame)
  return frame
end

--- one entry of a conversation's event history (archived to PostgreSQL with it)
function hd.log(events_key, type, actor, role, now, data)
  redis.call('XADD', events_key, '*', 'type', type, 'actor_id', actor or '', 'actor_role', role, 'at', now,
    'data', data and cjson.encode(data) or '')
end

--- an agent's load: its conversations plus the offers it has not answered yet
function hd.load(active, offered)
  return (tonumber(active) or 0) + (tonumber(offered) or 0)
end

--- an agent can be routed new work when online, connected and under capacity (offers in flight
--- count). agents:available orders such agents by idle-since: when it became available, or last
--- got an offer or a conversation, or ended a wrap-up (the longest idle is first).
function hd.refresh_available(available_key, agent_key, agent_id, now)
  local a = redis.call('HMGET', agent_key, 'status', 'active', 'capacity', 'connected', 'offered')
  if a[1] == 'online' and a[4] == '1' and hd.load(a[2], a[5]) < (tonumber(a[3]) or 0) then
    redis.call('ZADD', available_key, 'NX', now, agent_id)
  else
    redis.call('ZREM', available_key, agent_id)
  end
end

--- PRESENCE_UPDATED to the agent's supervisor (the header key) and admins
function hd.publish_presence(presence_channel, agent_key, agent_id)
  local a = hd.hash(agent_key)
  hd.publish(presence_channel, 'presence', 'a', str(a.supervisor_id) or '-', 'PRESENCE_UPDATED', hd.presence(agent_id, a))
end

--- gives back the capacity one conversation took from its agent (close, transfer, requeue)
function hd.release(agent_key, convs_key, available_key, presence_channel, agent_id, conv_id, now)
  if redis.call('SREM', convs_key, conv_id) == 1 then
    redis.call('HINCRBY', agent_key, 'active', -1)
    hd.refresh_available(available_key, agent_key, agent_id, now)
    hd.publish_presence(presence_channel, agent_key, agent_id)
  end
end

--- ends the conversation's call, if there is one, for both participants: CALL_END to each,
--- history written, the call cleared. reason: ended | missed | rejected. Returns true if it did.
function hd.end_call(call_key, ringing_key, events_key, channel, conv_id, reason, actor, role, name, now)
  local call = hd.hash(call_key)
  if not call.call_id then return false end
  local duration = 0
  if str(call.answered_at) then duration = math.floor((now - tonumber(call.answered_at)) / 1000) end
  redis.call('DEL', call_key)
  redis.call('ZREM', ringing_key, conv_id)
  if reason == 'missed' then
    hd.log(events_key, 'call_missed', actor, role, now, {call_id = call.call_id})
  elseif reason == 'rejected' then
    hd.log(events_key, 'call_rejected', actor, role, now, {call_id = call.call_id})
  else
    hd.log(events_key, 'call_ended', actor, role, now, {call_id = call.call_id, duration_s = duration, media = call.media})
  end
  local data = {conversation_id = conv_id, call_id = call.call_id, reason = reason, duration_s = duration}
  if actor and actor ~= '' then data.from = {id = actor, role = role, name = name} end
  hd.publish(channel, 'event', 'u', call.caller_id, 'CALL_END', data)
  hd.publish(channel, 'event', 'u', call.callee_id, 'CALL_END', data)
  return true
end

--- closes out an ended conversation's bookkeeping shared by close and abandon: a new close
--- generation (the flusher archives only what this close produced) and the outbox entry.
function hd.to_outbox(conv_key, outbox_key, conv_id)
  local epoch = redis.call('HINCRBY', conv_key, 'close_epoch', 1)
  return redis.call('XADD', outbox_key, '*', 'conversation_id', conv_id, 'epoch', epoch)
end

--- a waiting conversation ends as abandoned (its customer left: gone past the grace, or asked to
--- leave the queue): out of the queue and the live set, the customer free to start again, the
--- outbox entry, QUEUE_UPDATED removed and CONVERSATION_CLOSED. `closed_by` (an actor view) only
--- when the customer asked. The caller has checked the conversation is waiting in `category`.
function hd.abandon(k, id, category, customer_id, now, closed_by, data)
  redis.call('ZREM', k.queue, id)
  redis.call('ZREM', k.seen, id)
  redis.call('HSET', k.conv, 'status', 'abandoned', 'closed_at', now, 'resolution', 'abandoned')
  if closed_by then redis.call('HSET', k.conv, 'closed_by', closed_by.id) end
  redis.call('ZREM', k.live, id)
  if redis.call('HGET', k.customer, 'conv') == id then redis.call('HDEL', k.customer, 'conv') end
  redis.call('PEXPIRE', k.customer, 30 * 86400 * 1000)
  hd.log(k.events, 'abandoned', customer_id or '', 'customer', now, data)
  hd.to_outbox(k.conv, k.outbox, id)
  hd.publish(k.queue_channel, 'queue', 'a', category, 'QUEUE_UPDATED', {op = 'removed', conversation = hd.conversation(hd.hash(k.conv))})
  hd.publish(k.channel, 'closed', 'a', '-', 'CONVERSATION_CLOSED',
    {conversation_id = id, resolution = 'abandoned', closed_at = now, closed_by = closed_by})
end

--- call scripts: the other participant of `user` in an active conversation, or nil and an error
--- code. Only the conversation's customer and its assigned agent may call, only while active.
function hd.call_peer(conv_key, user, role)
  local c = redis.call('HMGET', conv_key, 'status', 'customer_id', 'agent_id')
  if not c[1] then return nil, 'not_found' end
  local other
  if role == 'customer' and user == c[2] then other = c[3]
  elseif role == 'agent' and user == c[3] then other = c[2]
  else return nil, 'forbidden' end
  if c[1] ~= 'active' or not other or other == '' then return nil, 'conversation_closed' end
  return other
end

--- a call that `user` may answer (accept or reject): this call, ringing, with `user` its callee;
--- returns nil and the error code otherwise
function hd.answerable_call(call_key, call_id, user)
  local call = redis.call('HMGET', call_key, 'call_id', 'state', 'callee_id')
  if call[1] ~= call_id then return nil, 'not_found' end
  if user ~= call[3] or call[2] ~= 'ringing' then return nil, 'forbidden' end
  return true
end

-- ROUTING (issue 11). Categories are mirrored from PostgreSQL into one hash (RedisKeys.categories:
-- id -> 'parent|routing|wrap_up_s|updated_ms'; category '0' is the uncategorised queue). A category
-- missing from it routes by pick, without wrap-up, at the top level.

--- a lookup of mirrored categories, read once per script run: category_of(id) -> {parent, routing, wrap_up_s}
function hd.categories(categories_key)
  local cache = {}
  return function(id)
    id = id or '0'
    local entry = cache[id]
    if not entry then
      local v = redis.call('HGET', categories_key, id)
      entry = {parent = '', routing = 'pick', wrap_up_s = 0}
      if v then
        local p, r, w = string.match(v, '^([^|]*)|([^|]*)|([^|]*)')
        entry.parent = p or ''
        if r == 'offer' then entry.routing = 'offer' end
        entry.wrap_up_s = tonumber(w) or 0
      end
      cache[id] = entry
    end
    return entry
  end
end

--- whether an agent with `agent_categories` (its categories as a comma list, '' = all) serves the
--- queue of `category`: its own categories and everything below them; the uncategorised queue
--- ('0') is served by every agent. The node's CategoryTree (Swift) answers the same.
function hd.serves(category_of, agent_categories, category)
  if agent_categories == '' or category == '0' or category == '' then return true end
  local mine = {}
  for c in string.gmatch(agent_categories, '[^,]+') do mine[c] = true end
  local c, depth = category, 0
  while c ~= '' and c ~= '0' and depth < 16 do
    if mine[c] then return true end
    c = category_of(c).parent
    depth = depth + 1
  end
  return false
end

--- the oldest conversation of a queue not being offered right now: id, score (nil when none).
--- An offered conversation keeps its place in its queue; at most ZCARD(offers) are passed over.
function hd.first_free(queue_key, offers_key)
  local n = redis.call('ZCARD', offers_key)
  local items = redis.call('ZRANGE', queue_key, 0, n, 'WITHSCORES')
  for i = 1, #items, 2 do
    if not redis.call('ZSCORE', offers_key, items[i]) then return items[i], tonumber(items[i + 1]) end
  end
  return nil
end

--- gives a waiting conversation its agent: the one place this happens (pick.lua, offer_accept.lua),
--- so a conversation is assigned once and the agent's load and idle order are kept here.
--- k: conv, events, channel, queue, seen (customers:seen), agent, convs, available, user_channel,
--- queue_channel, presence_channel. Returns the conversation hash as HGETALL gives it.
function hd.assign(k, id, category, agent_id, agent_name, actor, role, now)
  redis.call('ZREM', k.queue, id)
  redis.call('ZREM', k.seen, id)
  redis.call('HSET', k.conv, 'status', 'active', 'agent_id', agent_id, 'agent_name', agent_name or '', 'assigned_at', now)
  redis.call('SADD', k.convs, id)
  redis.call('HINCRBY', k.agent, 'active', 1)
  -- to the back of the longest-idle order (and out of it at capacity)
  redis.call('ZADD', k.available, 'XX', now, agent_id)
  hd.refresh_available(k.available, k.agent, agent_id, now)
  hd.log(k.events, 'assigned', actor, role, now, {agent_id = agent_id})
  local h = redis.call('HGETALL', k.conv)
  local c = {}
  for i = 1, #h, 2 do c[h[i]] = h[i + 1] end
  local conversation = hd.conversation(c)
  local assigned = {conversation_id = id, conversation = conversation, agent = conversation.agent}
  hd.publish(k.channel, 'assigned', 'a', agent_id, 'CONVERSATION_ASSIGNED', assigned)
  hd.publish(k.user_channel, 'user', 'a', '-', 'CONVERSATION_ASSIGNED', assigned)
  hd.publish(k.queue_channel, 'queue', 'a', category, 'QUEUE_UPDATED', {op = 'removed', conversation = conversation})
  hd.publish_presence(k.presence_channel, k.agent, agent_id)
  return h
end

--- ends the offer of a waiting conversation without an assignment (declined, expired, closed):
--- the conversation keeps its place in its queue, the agent's capacity is given back and its
--- sockets get OFFER_REVOKED. `away`: the agent let it time out and is set away (if online).
--- Returns the agent's new status when it changed, else nil.
function hd.end_offer(k, id, agent_id, reason, away, now)
  redis.call('HSET', k.conv, 'offered_to', '', 'offer_expires_at', '')
  redis.call('ZREM', k.offers, id)
  if (tonumber(redis.call('HGET', k.agent, 'offered')) or 0) > 0 then redis.call('HINCRBY', k.agent, 'offered', -1) end
  local status
  if away and redis.call('HGET', k.agent, 'status') == 'online' then
    redis.call('HSET', k.agent, 'status', 'away', 'since', now)
    status = 'away'
  end
  hd.refresh_available(k.available, k.agent, agent_id, now)
  hd.log(k.events, 'offer_' .. reason, agent_id, reason == 'declined' and 'agent' or 'system', now, {agent_id = agent_id})
  local data = {conversation_id = id, reason = reason}
  if status then data.status = status end
  hd.publish(k.user_channel, 'user', 'a', '-', 'OFFER_REVOKED', data)
  hd.publish_presence(k.presence_channel, k.agent, agent_id)
  return status
end
