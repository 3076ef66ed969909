-- call_invite.lua: a participant calls the other one. One call per conversation at a time
-- (a second invite gets 'busy'); unanswered, it ends as missed at its deadline (call_expire.lua).
-- KEYS: 1 conv:<id>  2 conv:<id>:call  3 calls:ringing  4 conv:<id>:events  5 ch:conv:<id>
-- ARGV: now override, conv_id, call_id, user_id, role, name, media (audio|video), timeout_ms
-- Returns {'ok', call_id} or {'err', code}
local now = hd.now(ARGV[1])
local conv, call_id, user, role, name, media, timeout = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local other, err = hd.call_peer(KEYS[1], user, role)
if not other then return {'err', err} end
if redis.call('EXISTS', KEYS[2]) == 1 then return {'err', 'busy'} end
redis.call('HSET', KEYS[2], 'call_id', call_id, 'state', 'ringing', 'media', media,
  'caller_id', user, 'caller_role', role, 'callee_id', other, 'started_at', now, 'answered_at', '')
redis.call('ZADD', KEYS[3], now + timeout, conv)
hd.log(KEYS[4], 'call_started', user, role, now, {call_id = call_id, media = media})
hd.publish(KEYS[5], 'event', 'u', other, 'CALL_INVITE',
  {conversation_id = conv, call_id = call_id, media = media, from = {id = user, role = role, name = name}})
return {'ok', call_id}
