-- escalate.lua: flags an active conversation and tells staff: its sockets (staff only) and, like
-- presence, the agent's supervisor and admins.
-- KEYS: 1 conv:<id>  2 conv:<id>:events  3 ch:conv:<id>  4 agent:<its agent, as the node read it>  5 ch:presence
-- ARGV: now override, conv_id, actor_id, actor_role, note, agent_id as read
-- Returns {'ok', 'active'} or {'err', code}
local now = hd.now(ARGV[1])
local id, actor, role, note = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local conv_key = KEYS[1]
local c = redis.call('HMGET', conv_key, 'status', 'agent_id')
if not c[1] then return {'err', 'not_found'} end
if (c[2] or '') ~= ARGV[6] then return hd.STALE end
if c[1] ~= 'active' then return {'err', c[1] == 'waiting' and 'forbidden' or 'conversation_closed'} end
if role == 'agent' and c[2] ~= actor then return {'err', 'forbidden'} end
if role ~= 'agent' and role ~= 'supervisor' and role ~= 'admin' then return {'err', 'forbidden'} end
redis.call('HSET', conv_key, 'escalated', '1', 'escalation_note', note, 'escalated_at', now)
hd.log(KEYS[2], 'escalated', actor, role, now, {note = note})
local conversation = hd.conversation(hd.hash(conv_key))
local data = {conversation_id = id, note = note, by = {id = actor, role = role}, customer = conversation.customer,
  subject = conversation.subject, conversation = conversation}
hd.publish(KEYS[3], 'event', 's', '-', 'CONVERSATION_ESCALATED', data)
hd.publish(KEYS[5], 'presence', 'a', hd.str(redis.call('HGET', KEYS[4], 'supervisor_id')) or '-', 'CONVERSATION_ESCALATED', data)
return {'ok', 'active'}
