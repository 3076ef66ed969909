-- agent_status.lua: a connected agent chooses online or away (away takes it out of routing).
-- KEYS: 1 agent:<agent>  2 agents:available  3 ch:presence
-- ARGV: now override, agent_id, online|away
-- Returns {'ok', status} or {'err', 'not_connected'}
local now = hd.now(ARGV[1])
local agent_id, status = ARGV[2], ARGV[3]
if redis.call('EXISTS', KEYS[1]) == 0 then return {'err', 'not_connected'} end
if redis.call('HGET', KEYS[1], 'status') ~= status then redis.call('HSET', KEYS[1], 'status', status, 'since', now) end
hd.refresh_available(KEYS[2], KEYS[1], agent_id, now)
hd.publish_presence(KEYS[3], KEYS[1], agent_id)
return {'ok', status}
