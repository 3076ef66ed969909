-- agent_connect.lua: an agent's first socket on a node. It is connected there, online unless it
-- had chosen away, and routable when under capacity.
-- KEYS: 1 agent:<agent>  2 agent:<agent>:nodes  3 agents  4 presence  5 agents:available  6 ch:presence
-- ARGV: now override, agent_id, node, name, capacity, categories, supervisor_id ('-' = keep what
--       Redis has: the node could not read the account from PostgreSQL just now)
-- Returns the agent's status
local now = hd.now(ARGV[1])
local agent_id, node, name, capacity, categories, supervisor = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
local key = KEYS[1]
local status = redis.call('HGET', key, 'status')
redis.call('HSET', key, 'id', agent_id, 'name', name, 'node', node, 'connected', '1', 'last_seen', now, 'disconnected_at', '')
if capacity ~= '-' then redis.call('HSET', key, 'capacity', capacity) end
if categories ~= '-' then redis.call('HSET', key, 'categories', categories) end
if supervisor and supervisor ~= '-' then redis.call('HSET', key, 'supervisor_id', supervisor) end
redis.call('HSETNX', key, 'capacity', 1)
redis.call('SADD', KEYS[3], agent_id)
redis.call('HSETNX', key, 'active', 0)
if not status or status == 'offline' then redis.call('HSET', key, 'status', 'online', 'since', now) end
redis.call('ZADD', KEYS[2], now, node)
redis.call('ZADD', KEYS[4], now, agent_id)
hd.refresh_available(KEYS[5], key, agent_id, now)
hd.publish_presence(KEYS[6], key, agent_id)
return redis.call('HGET', key, 'status')
