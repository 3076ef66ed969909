-- call_end.lua: a participant hangs up. Hanging up a call nobody answered yet is a missed call
-- for the other side. Works once the conversation is no longer active too, so a call can always
-- be ended by its participants (issue 10 #7).
-- KEYS: 1 conv:<id>  2 conv:<id>:call  3 calls:ringing  4 conv:<id>:events  5 ch:conv:<id>
-- ARGV: now override, conv_id, call_id, user_id, role, name
-- Returns {'ok', call_id} or {'err', code}
local now = hd.now(ARGV[1])
local conv, call_id, user, role, name = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local call = redis.call('HMGET', KEYS[2], 'call_id', 'state', 'caller_id', 'callee_id')
if call[1] ~= call_id then return {'err', 'not_found'} end
if user ~= call[3] and user ~= call[4] then return {'err', 'forbidden'} end
hd.end_call(KEYS[2], KEYS[3], KEYS[4], KEYS[5], conv, call[2] == 'ringing' and 'missed' or 'ended', user, role, name, now)
return {'ok', call_id}
