-- takeover.lua: a supervisor (of the agent's team) or an admin becomes the assignee of an active
-- conversation. The former agent's capacity is freed, a running or ringing call ends for both
-- sides, and everyone is told with CONVERSATION_TRANSFERRED {taken_over: true}: the former agent
-- (its sockets stop following the conversation: the header key is the new assignee), staff and
-- the customer on the conversation (no note: nothing staff-only in it); the new assignee's own
-- sockets get CONVERSATION_ASSIGNED. The team check is here, atomic with the change.
-- KEYS: 1 conv:<id>  2 conv:<id>:events  3 conv:<id>:call  4 ch:conv:<id>  5 calls:ringing
--       6 agent:<old>  7 agent:<old>:convs  8 agents:available  9 ch:presence  10 ch:user:<old>
--       11 ch:user:<actor>   (old = the conversation's agent as the node read it)
-- ARGV: now override, conv_id, actor_id, actor_role (supervisor | admin), actor_name, old agent_id as read
-- Returns {'ok', old agent id} or {'err', code}: forbidden, not_found, not_active (waiting: assign
-- it instead), conversation_closed, already_yours, stale
local now = hd.now(ARGV[1])
local id, actor, role, name = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local conv_key, events_key, call_key, channel = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if role ~= 'supervisor' and role ~= 'admin' then return {'err', 'forbidden'} end
local c = redis.call('HMGET', conv_key, 'status', 'agent_id')
if not c[1] then return {'err', 'not_found'} end
if (c[2] or '') ~= ARGV[6] then return hd.STALE end
if c[1] == 'closed' or c[1] == 'abandoned' then return {'err', 'conversation_closed'} end
if c[1] ~= 'active' then return {'err', 'not_active'} end
local old = c[2]
if old == actor then return {'err', 'already_yours'} end
-- a supervisor acts within its team: the agent's supervisor_id (what presence is routed by)
if role == 'supervisor' and redis.call('HGET', KEYS[6], 'supervisor_id') ~= actor then return {'err', 'forbidden'} end

hd.end_call(call_key, KEYS[5], events_key, channel, id, 'ended', actor, role, name, now)
hd.release(KEYS[6], KEYS[7], KEYS[8], KEYS[9], old, id, now)
redis.call('HSET', conv_key, 'agent_id', actor, 'agent_name', name, 'transferred_at', now, 'taken_over_at', now)
hd.log(events_key, 'taken_over', actor, role, now, {from = old})
local conversation = hd.conversation(hd.hash(conv_key))
local data = {conversation_id = id, from_agent_id = old, agent = conversation.agent, taken_over = true, at = now}
hd.publish(channel, 'moved', 'a', actor, 'CONVERSATION_TRANSFERRED', data)
hd.publish(KEYS[10], 'user', 'a', '-', 'CONVERSATION_TRANSFERRED', data)
hd.publish(KEYS[11], 'user', 'a', '-', 'CONVERSATION_ASSIGNED',
  {conversation_id = id, conversation = conversation, agent = conversation.agent, transferred_from = old})
return {'ok', old}
