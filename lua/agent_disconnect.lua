-- agent_disconnect.lua: an agent's last socket on a node closed. With no socket on any node it is
-- disconnected (not offline: the sweep decides that after its grace).
-- KEYS: 1 agent:<agent>  2 agent:<agent>:nodes  3 agents:available  4 ch:presence
-- ARGV: now override, agent_id, node
local now = hd.now(ARGV[1])
local agent_id, node = ARGV[2], ARGV[3]
redis.call('ZREM', KEYS[2], node)
if redis.call('ZCARD', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'connected', '0', 'disconnected_at', now)
  hd.refresh_available(KEYS[3], KEYS[1], agent_id, now)
  hd.publish_presence(KEYS[4], KEYS[1], agent_id)
end
return 'ok'
