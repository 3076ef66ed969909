-- call_accept.lua: the callee answers a ringing call.
-- KEYS: 1 conv:<id>  2 conv:<id>:call  3 calls:ringing  4 conv:<id>:events  5 ch:conv:<id>
-- ARGV: now override, conv_id, call_id, user_id, role, name
-- Returns {'ok', call_id} or {'err', code}
local now = hd.now(ARGV[1])
local conv, call_id, user, role, name = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local other, err = hd.call_peer(KEYS[1], user, role)
if not other then return {'err', err} end
local answerable, answer_err = hd.answerable_call(KEYS[2], call_id, user)
if not answerable then return {'err', answer_err} end
redis.call('HSET', KEYS[2], 'state', 'active', 'answered_at', now)
redis.call('ZREM', KEYS[3], conv)
hd.log(KEYS[4], 'call_answered', user, role, now, {call_id = call_id})
hd.publish(KEYS[5], 'event', 'u', other, 'CALL_ACCEPT', {conversation_id = conv, call_id = call_id, from = {id = user, role = role, name = name}})
return {'ok', call_id}
