-- call_reject.lua: the callee declines a ringing call: CALL_REJECT to the caller, then CALL_END to both.
-- KEYS: 1 conv:<id>  2 conv:<id>:call  3 calls:ringing  4 conv:<id>:events  5 ch:conv:<id>
-- ARGV: now override, conv_id, call_id, user_id, role, name
-- Returns {'ok', call_id} or {'err', code}
local now = hd.now(ARGV[1])
local conv, call_id, user, role, name = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local other, err = hd.call_peer(KEYS[1], user, role)
if not other then return {'err', err} end
local answerable, answer_err = hd.answerable_call(KEYS[2], call_id, user)
if not answerable then return {'err', answer_err} end
hd.publish(KEYS[5], 'event', 'u', other, 'CALL_REJECT', {conversation_id = conv, call_id = call_id, from = {id = user, role = role, name = name}})
hd.end_call(KEYS[2], KEYS[3], KEYS[4], KEYS[5], conv, 'rejected', user, role, name, now)
return {'ok', call_id}
