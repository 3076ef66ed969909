-- send.lua: chat messages, one or several. A node sends the messages its sockets hand it within
-- one event-loop tick as one call (RedisConnection.submitBatched): Redis then pays the call's own
-- cost and TIME once for all of them. Each message is checked on its own (the sender belongs to
-- the conversation, a repeated client_msg_id is dropped), appended to its conversation's stream and
-- published, all in one step.
-- KEYS: 4 per message, in order: conv:<id>  conv:<id>:msgs  conv:<id>:dedupe (the senders' hash:
--       each client_msg_id's message id, each sender's budget)  ch:conv:<id>
-- ARGV: 1 now override; then 12 per message, in order: the NEW_MESSAGE frame up to the message's
--       id (the node writes the message's view but its id and time: ServerFrame.newMessagePrefix
--       and MessageView.writeFields in Swift), sender_id, sender_role,
--       sender_name, text, client_msg_id, internal (0|1), max messages in the conversation
--       ('' = no cap), the sender's budget in this conversation as GCRA: ms between messages,
--       burst tolerance in ms ('' = no budget), the message's attachments as a JSON array of
--       {id, name, size, content_type} built by the node from PostgreSQL ('' = none), the sending
--       socket's origin when it asked for no echo ('' = echo; see the prelude's header format)
-- Returns one reply per message, in order: {'ok', message_id, duplicate 0|1} or {'err', code}
-- ('conversation_full' past the cap, 'rate_limited' past the sender's budget); with an origin, a
-- 4th element for the ACK's message: the time the message was stored (ms), or for a duplicate its
-- stream entry as XRANGE gives it ('' when it is gone)
local FIELDS = 12
-- how the node's frame head (a message's first argument: the frame up to the message's id) starts;
-- ServerFrame.newMessagePrefix in Swift
local NEW_MESSAGE_PREFIX = '{"event":"NEW_MESSAGE","data":{'
if #ARGV ~= 1 + FIELDS * (#KEYS / 4) or #KEYS % 4 ~= 0 then
  return redis.error_reply('send: 4 keys and ' .. FIELDS .. ' arguments per message, after ARGV[1]')
end
-- one clock reading for the whole call: its messages arrived within one tick of one node
local now = hd.now(ARGV[1])
-- its digits, formatted once: XADD and the frame take the text
local now_text = string.format('%d', now)

-- a sender's client_msg_id in the senders' hash: its field holds the stored message's id
local function dedupe_field(sender, client_id) return sender .. '|' .. client_id end

-- message with keys KEYS[k + 1..k + 4] and fields ARGV[a + 1..a + FIELDS]
local function send(k, a)
  local frame_head, sender, role, name, text, client_id, internal = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
  local conv_key, msgs_key, senders_key, channel = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local origin = ARGV[a + 12]
  -- the node's frame is published as given: refuse one that is not a NEW_MESSAGE's start (a node
  -- and a lua/ directory from different releases), rather than send every socket broken JSON
  if frame_head:sub(1, #NEW_MESSAGE_PREFIX) ~= NEW_MESSAGE_PREFIX then return {'err', 'internal'} end
  local c = redis.call('HMGET', conv_key, 'status', 'customer_id', 'agent_id', 'first_response_at')
  if not c[1] then return {'err', 'not_found'} end
  -- What a sender has sent in this conversation lives in one hash (conv:<id>:dedupe): the id
  -- of each client_msg_id, and the sender's budget. A message reads both in one HMGET and writes
  -- both in one HSET; the conversation's own hash (a listpack that each HSET rewrites) is only
  -- read, but for first_response_at once.
  local dedupe, budget_field = dedupe_field(sender, client_id), 'budget:' .. sender
  local s = redis.call('HMGET', senders_key, dedupe, budget_field)
  -- a retry of a message this sender already stored gets its id back, even after a close
  local seen = s[1]
  if seen then
    if origin == '' then return {'ok', seen, 1} end
    return {'ok', seen, 1, redis.call('XRANGE', msgs_key, seen, seen)[1] or ''}
  end
  if c[1] == 'closed' or c[1] == 'abandoned' then return {'err', 'conversation_closed'} end
  if role == 'customer' then
    if sender ~= c[2] or internal == '1' then return {'err', 'forbidden'} end
  elseif role == 'agent' then
    if c[1] ~= 'active' or sender ~= c[3] then return {'err', 'forbidden'} end
  elseif role ~= 'supervisor' and role ~= 'admin' then
    return {'err', 'forbidden'}
  end
  -- a conversation's stream is bounded: one client must not fill Redis's memory
  local cap = tonumber(ARGV[a + 8])
  if cap and redis.call('XLEN', msgs_key) >= cap then return {'err', 'conversation_full'} end

  -- GCRA: the theoretical arrival time may run ahead of now by at most the burst tolerance. One
  -- budget per sender and conversation across every node.
  local interval, tolerance = tonumber(ARGV[a + 9]), tonumber(ARGV[a + 10])
  local budget_at = nil
  if interval and tolerance then
    local tat = math.max(tonumber(s[2] or '') or 0, now)
    if tat - now > tolerance then return {'err', 'rate_limited'} end
    budget_at = tat + interval
  end
  local attachments_json = ARGV[a + 11]
  if attachments_json == '' then
    attachments_json = nil
  else
    -- checked before anything is written: past the XADD nothing may fail (the message would be
    -- stored but not published)
    cjson.decode(attachments_json)
  end
  local msg_id
  if attachments_json then
    msg_id = redis.call('XADD', msgs_key, '*',
      'sender_id', sender, 'sender_role', role, 'sender_name', name, 'text', text,
      'client_msg_id', client_id, 'internal', internal, 'sent_at', now_text, 'attachments', attachments_json)
  else
    msg_id = redis.call('XADD', msgs_key, '*',
      'sender_id', sender, 'sender_role', role, 'sender_name', name, 'text', text,
      'client_msg_id', client_id, 'internal', internal, 'sent_at', now_text)
  end
  if budget_at then
    redis.call('HSET', senders_key, dedupe, msg_id, budget_field, budget_at)
  else
    redis.call('HSET', senders_key, dedupe, msg_id)
  end
  -- first response = the first reply the customer sees: internal notes do not count
  if role == 'agent' and internal ~= '1' and (not c[4] or c[4] == '') then
    redis.call('HSET', conv_key, 'first_response_at', now_text)
  end
  -- the view's id and time (MessageView.writeIDAndTime in Swift writes the same), then the ends
  -- of the message, data and frame objects. The id is digits and '-', the time digits: nothing to escape.
  local frame = frame_head .. ',"id":"' .. msg_id .. '","sent_at":' .. now_text .. '}}}'
  -- internal notes reach staff sockets only
  hd.publish_frame(channel, 'msg', internal == '1' and 's' or 'a', msg_id, frame, origin)
  -- the message went out in the frame: the node needs only its id, and its time for an ACK that
  -- carries the message
  if origin == '' then return {'ok', msg_id, 0} end
  return {'ok', msg_id, 0, now_text}
end

local replies = {}
for i = 0, #KEYS / 4 - 1 do
  -- A Lua error in one message (a bug, a key of the wrong type) refuses that message alone: the
  -- call's other messages are other senders', and those before it are stored and published already
  -- (Redis does not undo a function's writes when it fails).
  local ok, reply = pcall(send, 4 * i, 1 + FIELDS * i)
  if not ok then
    hd.log_warning(now, 'send: message ' .. (i + 1) .. ' of the call failed: ' .. tostring(type(reply) == 'table' and reply.err or reply))
    -- stored before it failed: say so, or the sender would send it again under a new id
    local a = 1 + FIELDS * i
    local read, seen = pcall(redis.call, 'HGET', KEYS[4 * i + 3], dedupe_field(ARGV[a + 2], ARGV[a + 6]))
    reply = (read and seen) and {'ok', seen, 1} or {'err', 'internal'}
    if read and seen and ARGV[a + 12] ~= '' then
      -- without echo the ACK is the sender's only copy of its message: its entry, as for a retry
      local got, entries = pcall(redis.call, 'XRANGE', KEYS[4 * i + 2], seen, seen)
      reply[4] = got and entries[1] or ''
    end
  end
  replies[i + 1] = reply
end
return replies
