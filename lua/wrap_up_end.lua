-- wrap_up_end.lua: an agent's wrap-up ends: early (END_WRAP_UP: the agent is ready) or because its
-- time is up (any node may ask, any number at once: Redis's clock decides). The agent's idle time
-- starts now; its sockets get WRAP_UP_ENDED; the node routes again after.
-- KEYS: 1 agent:<agent>  2 agents:wrapup  3 agents:available  4 ch:user:<agent>  5 ch:presence
-- ARGV: now override, agent_id, mode (early | due)
-- Returns 1 (ended), 0 (not in wrap-up) or {'not_due', until, now}
local now = hd.now(ARGV[1])
local agent_id, mode = ARGV[2], ARGV[3]
if mode == 'due' then
  local due = tonumber(redis.call('ZSCORE', KEYS[2], agent_id) or '')
  if not due then return 0 end
  if due > now then return {'not_due', due, now} end
end
redis.call('ZREM', KEYS[2], agent_id)
if not tonumber(redis.call('HGET', KEYS[1], 'wrap_up_until')) then return 0 end
redis.call('HSET', KEYS[1], 'wrap_up_until', '')
redis.call('ZADD', KEYS[3], 'XX', now, agent_id)
hd.publish(KEYS[4], 'user', 'a', '-', 'WRAP_UP_ENDED', {reason = mode == 'early' and 'ready' or 'elapsed'})
hd.publish_presence(KEYS[5], KEYS[1], agent_id)
return 1
