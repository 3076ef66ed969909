-- agent_sweep.lua: the sweep for one agent whose heartbeat is older than a node's lifetime.
-- Sockets on nodes that stopped heartbeating are gone with their node; an agent with no socket
-- left is marked disconnected, and once past its grace goes offline: its conversations go back to
-- their queues with their original score (ahead of everyone who came later) and their calls end.
-- The node finds candidates in `presence`; this decides by Redis's clock (safe on every node at once).
-- KEYS: 1 agent:<agent>  2 agent:<agent>:nodes  3 agent:<agent>:convs  4 presence
--       5 agents:available  6 ch:presence  7 queues  8 customers:seen  9 calls:ringing  10 ch:queue
--       then per conversation of the agent (as the node read agent:<agent>:convs):
--       conv:<id>, conv:<id>:events, conv:<id>:call, ch:conv:<id>, queue:<its category as read>
-- ARGV: now override, agent_id, agent grace_ms, node ttl_ms, conv ids..., their categories...
-- Returns {went offline 1|0, conversations requeued} or {'err', 'stale'}
local now = hd.now(ARGV[1])
local agent_id, grace, node_ttl = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local agent_key, nodes_key, convs_key, presence_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local available_key, presence_channel = KEYS[5], KEYS[6]
local n = (#KEYS - 10) / 5

local seen = tonumber(redis.call('ZSCORE', presence_key, agent_id) or '')
if not seen or now - seen < node_ttl then return {0, 0} end

-- what the node read must still hold before anything is written
if redis.call('SCARD', convs_key) ~= n then return hd.STALE end
for i = 1, n do
  local conv_id = ARGV[4 + i]
  if redis.call('SISMEMBER', convs_key, conv_id) == 0 then return hd.STALE end
  if (redis.call('HGET', KEYS[6 + 5 * i], 'category_id') or '') ~= ARGV[4 + n + i] then return hd.STALE end
end

redis.call('ZREMRANGEBYSCORE', nodes_key, '-inf', now - node_ttl)
if redis.call('ZCARD', nodes_key) > 0 then return {0, 0} end
local since = tonumber(redis.call('HGET', agent_key, 'disconnected_at') or '')
if not since then
  since = seen
  redis.call('HSET', agent_key, 'connected', '0', 'disconnected_at', since)
  hd.refresh_available(available_key, agent_key, agent_id, now)
  hd.publish_presence(presence_channel, agent_key, agent_id)
end
if now - since < grace then return {0, 0} end

local requeued = 0
for i = 1, n do
  local conv_id, base = ARGV[4 + i], 6 + 5 * i
  local conv_key, events_key, call_key, channel, queue_key = KEYS[base], KEYS[base + 1], KEYS[base + 2], KEYS[base + 3], KEYS[base + 4]
  local c = redis.call('HMGET', conv_key, 'status', 'agent_id', 'category_id', 'queue_score')
  if c[1] == 'active' and c[2] == agent_id then
    redis.call('HSET', conv_key, 'status', 'waiting', 'agent_id', '', 'agent_name', '', 'assigned_at', '')
    -- the call cannot outlive its agent's chat (issue 10 #7)
    hd.end_call(call_key, KEYS[9], events_key, channel, conv_id, 'ended', '', 'system', '', now)
    -- back in line with its original score: ahead of everyone who came after it
    redis.call('ZADD', queue_key, c[4], conv_id)
    redis.call('SADD', KEYS[7], c[3])
    redis.call('ZADD', KEYS[8], now, conv_id)
    hd.log(events_key, 'requeued', agent_id, 'agent', now, {reason = 'agent_offline'})
    hd.publish(KEYS[10], 'queue', 'a', c[3], 'QUEUE_UPDATED', {op = 'added', conversation = hd.conversation(hd.hash(conv_key))})
    hd.publish(channel, 'moved', 'a', '-', 'CONVERSATION_REQUEUED', {conversation_id = conv_id, reason = 'agent_offline'})
    requeued = requeued + 1
  end
end
redis.call('DEL', convs_key)
redis.call('HSET', agent_key, 'status', 'offline', 'active', 0, 'since', now)
redis.call('ZREM', presence_key, agent_id)
hd.refresh_available(available_key, agent_key, agent_id, now)
hd.publish_presence(presence_channel, agent_key, agent_id)
return {1, requeued}
