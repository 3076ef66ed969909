-- offer_end.lua: an offer ends unanswered: its agent declines it (DECLINE_OFFER), or its time is
-- up (any node may ask, any number at once: Redis's clock decides, and the offer is ended once).
-- The customer keeps its place in the queue (an offered conversation never leaves it), the agent's
-- capacity is given back, its sockets get OFFER_REVOKED, and one that let the offer run out is set
-- away (as Amazon Connect marks a missed contact). The agent is remembered on the conversation
-- (`declined_by`, agent:ms) so the next offer goes to someone else. The node routes again after.
-- KEYS: 1 conv:<id>  2 conv:<id>:events  3 offers  4 agent:<the offer's agent, as read>
--       5 agents:available  6 ch:user:<that agent>  7 ch:presence
-- ARGV: now override, conv_id, mode (decline | expire), agent_id (decline: the caller; expire: as read)
-- Returns {'ok', reason, new status or ''}, {'not_due', deadline, now} (expire), {'err', 'no_offer'} or {'err', 'stale'}
local now = hd.now(ARGV[1])
local id, mode, agent_id = ARGV[2], ARGV[3], ARGV[4]
local conv_key = KEYS[1]
local offered_to = redis.call('HGET', conv_key, 'offered_to') or ''
if mode == 'expire' then
  local deadline = tonumber(redis.call('ZSCORE', KEYS[3], id) or '')
  if not deadline then return {'err', 'no_offer'} end
  if deadline > now then return {'not_due', deadline, now} end
  if offered_to == '' then
    redis.call('ZREM', KEYS[3], id)
    return {'err', 'no_offer'}
  end
  if offered_to ~= agent_id then return hd.STALE end
elseif offered_to == '' or offered_to ~= agent_id then
  return {'err', 'no_offer'}
end

local kept = {}
for agent, at in string.gmatch(redis.call('HGET', conv_key, 'declined_by') or '', '([^:,]+):(%d+)') do
  if agent ~= agent_id then kept[#kept + 1] = agent .. ':' .. at end
end
kept[#kept + 1] = agent_id .. ':' .. now
redis.call('HSET', conv_key, 'declined_by', table.concat(kept, ','))
local reason = mode == 'expire' and 'expired' or 'declined'
local status = hd.end_offer({
  conv = conv_key, events = KEYS[2], offers = KEYS[3], agent = KEYS[4], available = KEYS[5], user_channel = KEYS[6],
  presence_channel = KEYS[7],
}, id, agent_id, reason, mode == 'expire', now)
return {'ok', reason, status or ''}
