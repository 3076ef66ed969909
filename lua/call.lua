-- call.lua: audio/video call signaling of one conversation. The one place that decides who may
-- call whom: one call per conversation at a time, only between its customer and its assigned
-- agent, and only while the conversation is active. Signals go only to the other participant,
-- in order, through the conversation's channel (audience 't' = that user only).
-- KEYS[1]: <prefix>conv:<id> (routing; for 'expire', <prefix>calls:ringing)
-- ARGV[1]: prefix, ARGV[2]: op, ARGV[3]: now_ms, then:
--   invite conv call_id user role name media timeout_ms
--   accept|reject|end conv call_id user role name
--   signal conv call_id user role name signal_json
--   expire                      ends ringing calls past their deadline (missed)
-- Returns {'ok', ...} or {'err', code}
local P, op, now = ARGV[1], ARGV[2], tonumber(ARGV[3])

local function send_to(conv, target, frame)
  redis.call('PUBLISH', P .. 'ch:conv:' .. conv, 't|' .. target .. '|' .. cjson.encode(frame))
end

local function event(conv, type, actor, role, data)
  redis.call('XADD', P .. 'conv:' .. conv .. ':events', '*', 'type', type, 'actor_id', actor, 'actor_role', role,
    'at', now, 'data', cjson.encode(data))
end

-- ends a call: both participants told, history written
local function finish(conv, call, reason, actor, role, name)
  local duration = 0
  if call.answered_at and call.answered_at ~= '' then duration = math.floor((now - tonumber(call.answered_at)) / 1000) end
  redis.call('DEL', P .. 'conv:' .. conv .. ':call')
  redis.call('ZREM', P .. 'calls:ringing', conv)
  if reason == 'missed' then
    event(conv, 'call_missed', actor, role, {call_id = call.call_id})
  elseif reason == 'rejected' then
    event(conv, 'call_rejected', actor, role, {call_id = call.call_id})
  else
    event(conv, 'call_ended', actor, role, {call_id = call.call_id, duration_s = duration, media = call.media})
  end
  local data = {conversation_id = conv, call_id = call.call_id, reason = reason, duration_s = duration}
  if actor ~= '' then data.from = {id = actor, role = role, name = name} end
  send_to(conv, call.caller_id, {event = 'CALL_END', data = data})
  send_to(conv, call.callee_id, {event = 'CALL_END', data = data})
end

local function load_call(conv)
  local h = redis.call('HGETALL', P .. 'conv:' .. conv .. ':call')
  if #h == 0 then return nil end
  local c = {}
  for i = 1, #h, 2 do c[h[i]] = h[i + 1] end
  return c
end

if op == 'expire' then
  local ended = 0
  for _, conv in ipairs(redis.call('ZRANGEBYSCORE', P .. 'calls:ringing', '-inf', now, 'LIMIT', 0, 100)) do
    local call = load_call(conv)
    if call and call.state == 'ringing' then finish(conv, call, 'missed', '', 'system', ''); ended = ended + 1
    else redis.call('ZREM', P .. 'calls:ringing', conv) end
  end
  return {'ok', ended}
end

local conv, call_id, user, role, name = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local c = redis.call('HMGET', P .. 'conv:' .. conv, 'status', 'customer_id', 'agent_id')
if not c[1] then return {'err', 'not_found'} end
local other
if role == 'customer' and user == c[2] then other = c[3]
elseif role == 'agent' and user == c[3] then other = c[2]
else return {'err', 'forbidden'} end
if c[1] ~= 'active' or not other or other == '' then return {'err', 'conversation_closed'} end
local from = {id = user, role = role, name = name}
local call = load_call(conv)

if op == 'invite' then
  local media, timeout = ARGV[9], tonumber(ARGV[10])
  if call then return {'err', 'busy'} end
  redis.call('HSET', P .. 'conv:' .. conv .. ':call', 'call_id', call_id, 'state', 'ringing', 'media', media,
    'caller_id', user, 'caller_role', role, 'callee_id', other, 'started_at', now, 'answered_at', '')
  redis.call('ZADD', P .. 'calls:ringing', now + timeout, conv)
  event(conv, 'call_started', user, role, {call_id = call_id, media = media})
  send_to(conv, other, {event = 'CALL_INVITE', data = {conversation_id = conv, call_id = call_id, media = media, from = from}})
  return {'ok', call_id}
end

if not call or call.call_id ~= call_id then return {'err', 'not_found'} end

if op == 'accept' then
  if user ~= call.callee_id or call.state ~= 'ringing' then return {'err', 'forbidden'} end
  redis.call('HSET', P .. 'conv:' .. conv .. ':call', 'state', 'active', 'answered_at', now)
  redis.call('ZREM', P .. 'calls:ringing', conv)
  event(conv, 'call_answered', user, role, {call_id = call_id})
  send_to(conv, other, {event = 'CALL_ACCEPT', data = {conversation_id = conv, call_id = call_id, from = from}})
elseif op == 'reject' then
  if user ~= call.callee_id or call.state ~= 'ringing' then return {'err', 'forbidden'} end
  send_to(conv, other, {event = 'CALL_REJECT', data = {conversation_id = conv, call_id = call_id, from = from}})
  finish(conv, call, 'rejected', user, role, name)
elseif op == 'end' then
  -- hanging up a call nobody answered yet is a missed call for the other side
  finish(conv, call, call.state == 'ringing' and 'missed' or 'ended', user, role, name)
elseif op == 'signal' then
  local ok, signal = pcall(cjson.decode, ARGV[9])
  if not ok or type(signal) ~= 'table' then return {'err', 'validation_failed'} end
  send_to(conv, other, {event = 'RTC_SIGNAL', data = {conversation_id = conv, call_id = call_id, signal = signal, from = from}})
else
  return redis.error_reply('unknown call operation ' .. tostring(op))
end
return {'ok', call_id}
