-- call_signal.lua: one WebRTC signal (offer, answer, ICE candidate) to the other participant only,
-- in order, through the conversation's channel.
-- KEYS: 1 conv:<id>  2 conv:<id>:call  3 ch:conv:<id>
-- ARGV: now override (unused), conv_id, call_id, user_id, role, name, signal JSON
-- Returns {'ok', call_id} or {'err', code}
local conv, call_id, user, role, name = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local other, err = hd.call_peer(KEYS[1], user, role)
if not other then return {'err', err} end
if redis.call('HGET', KEYS[2], 'call_id') ~= call_id then return {'err', 'not_found'} end
local ok, signal = pcall(cjson.decode, ARGV[7])
if not ok or type(signal) ~= 'table' then return {'err', 'validation_failed'} end
hd.publish(KEYS[3], 'event', 'u', other, 'RTC_SIGNAL',
  {conversation_id = conv, call_id = call_id, signal = signal, from = {id = user, role = role, name = name}})
return {'ok', call_id}
