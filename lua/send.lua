-- send.lua: one chat message. Checks the sender belongs to the conversation, drops a repeated
-- client_msg_id, appends to the conversation's stream and publishes, all in one step.
-- KEYS: 1 conv:<id>  2 conv:<id>:msgs  3 conv:<id>:dedupe  4 ch:conv:<id>
-- ARGV: now override, conv_id, sender_id, sender_role, sender_name, text, client_msg_id, internal (0|1),
--       max messages in the conversation ('' = no cap),
--       the sender's budget in this conversation as GCRA: ms between messages, burst tolerance in ms
--       ('' = no budget), the message's attachments as a JSON array of {id, name, size, content_type}
--       built by the node from PostgreSQL ('' = none), the sending socket's origin when it asked for
--       no echo ('' = echo; see the prelude's header format)
-- Returns {'ok', message_id, duplicate 0|1} or {'err', code} ('conversation_full' past
-- the cap, 'rate_limited' past the sender's budget); with an origin, a 4th element: the message
-- view's JSON, for the ACK (a duplicate's is read back from the stream; '' when it is gone)
local id, sender, role, name, text, client_id, internal = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local conv_key, msgs_key, dedupe_key, channel = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local origin = ARGV[13] or ''
-- the sender's budget lives in the conversation's hash: one budget across every node, no extra key
local budget_field = 'budget:' .. sender
local c = redis.call('HMGET', conv_key, 'status', 'customer_id', 'agent_id', 'first_response_at', budget_field)
if not c[1] then return {'err', 'not_found'} end
-- a retry of a message this sender already stored gets its id back, even after a close
local dedupe_field = sender .. '|' .. client_id
local seen = redis.call('HGET', dedupe_key, dedupe_field)
if seen then
  if origin == '' then return {'ok', seen, 1} end
  local entry = redis.call('XRANGE', msgs_key, seen, seen)[1]
  return {'ok', seen, 1, entry and cjson.encode(hd.stream_message(seen, entry[2])) or ''}
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
local cap = tonumber(ARGV[9] or '')
if cap and redis.call('XLEN', msgs_key) >= cap then return {'err', 'conversation_full'} end

local now = hd.now(ARGV[1])
-- GCRA: the theoretical arrival time may run ahead of now by at most the burst tolerance
local interval, tolerance = tonumber(ARGV[10] or ''), tonumber(ARGV[11] or '')
local budget_at = nil
if interval and tolerance then
  local tat = math.max(tonumber(c[5] or '') or 0, now)
  if tat - now > tolerance then return {'err', 'rate_limited'} end
  budget_at = tat + interval
end
local attachments_json = ARGV[12] or ''
local msg_id
if attachments_json ~= '' then
  msg_id = redis.call('XADD', msgs_key, '*',
    'sender_id', sender, 'sender_role', role, 'sender_name', name, 'text', text,
    'client_msg_id', client_id, 'internal', internal, 'sent_at', now, 'attachments', attachments_json)
else
  msg_id = redis.call('XADD', msgs_key, '*',
    'sender_id', sender, 'sender_role', role, 'sender_name', name, 'text', text,
    'client_msg_id', client_id, 'internal', internal, 'sent_at', now)
end
redis.call('HSET', dedupe_key, dedupe_field, msg_id)
if budget_at then
  redis.call('HSET', conv_key, 'last_message_id', msg_id, budget_field, budget_at)
else
  redis.call('HSET', conv_key, 'last_message_id', msg_id)
end
-- first response = the first reply the customer sees: internal notes do not count
if role == 'agent' and internal ~= '1' and (not c[4] or c[4] == '') then
  redis.call('HSET', conv_key, 'first_response_at', now)
end
local message = hd.message(msg_id, sender, role, name, text, now, client_id, internal == '1',
  attachments_json ~= '' and cjson.decode(attachments_json) or nil)
local message_json = cjson.encode(message)
-- internal notes reach staff sockets only
hd.publish_frame(channel, 'msg', internal == '1' and 's' or 'a', msg_id, hd.new_message_frame(id, message_json), origin)
-- the message went out in the frame: the node needs only its id, unless its ACK carries it
if origin == '' then return {'ok', msg_id, 0} end
return {'ok', msg_id, 0, message_json}
