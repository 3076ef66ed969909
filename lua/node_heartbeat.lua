-- node_heartbeat.lua: a node says it is alive and which sockets it holds. Refreshes its agents'
-- presence on this node and its waiting customers' last-seen time; forgets nodes that stopped
-- heartbeating. Returns the agents Redis no longer has as connected here (lost or swept): the
-- node connects them again.
-- KEYS: 1 nodes  2 presence  3 customers:seen
--       then per agent: agent:<agent>, agent:<agent>:nodes; then per customer: conv:<id>
-- ARGV: now override, node_id, node ttl_ms, n_agents, agent ids..., conversation ids...
local now = hd.now(ARGV[1])
local node, node_ttl, n_agents = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
redis.call('ZADD', KEYS[1], now, node)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - node_ttl)
local lost = {}
for i = 1, n_agents do
  local agent_id, key, nodes_key = ARGV[4 + i], KEYS[2 + 2 * i], KEYS[3 + 2 * i]
  local status = redis.call('HGET', key, 'status')
  if not status or status == 'offline' or redis.call('ZSCORE', nodes_key, node) == false then
    lost[#lost + 1] = agent_id
  else
    redis.call('ZADD', nodes_key, now, node)
    redis.call('ZADD', KEYS[2], now, agent_id)
    redis.call('HSET', key, 'last_seen', now)
  end
end
for i = 1, #ARGV - 4 - n_agents do
  local conv_id = ARGV[4 + n_agents + i]
  if redis.call('HGET', KEYS[3 + 2 * n_agents + i], 'status') == 'waiting' then
    redis.call('ZADD', KEYS[3], now, conv_id)
  end
end
return lost
