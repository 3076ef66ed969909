-- call_expire.lua: ends one ringing call past its deadline as missed (both sides get CALL_END).
-- The node finds candidates in calls:ringing; this decides by Redis's clock.
-- KEYS: 1 calls:ringing  2 conv:<id>:call  3 conv:<id>:events  4 ch:conv:<id>
-- ARGV: now override, conv_id
-- Returns 1 (ended) or 0
local now = hd.now(ARGV[1])
local conv = ARGV[2]
local deadline = tonumber(redis.call('ZSCORE', KEYS[1], conv) or '')
if not deadline or deadline > now then return 0 end
if redis.call('HGET', KEYS[2], 'state') ~= 'ringing' then
  redis.call('ZREM', KEYS[1], conv)
  return 0
end
hd.end_call(KEYS[2], KEYS[1], KEYS[3], KEYS[4], conv, 'missed', '', 'system', '', now)
return 1
