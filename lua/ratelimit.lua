-- ratelimit.lua: fixed-window counters, checked (and in "hit" mode counted) atomically.
-- KEYS[i]: one counter per limited subject (e.g. an e-mail, an IP).
-- ARGV[1]: "hit" (count this attempt, then check) or "peek" (check only)
-- ARGV[2]: window length in ms
-- ARGV[2+i]: the limit for KEYS[i]
-- Returns 0 when every counter is within its limit, else the ms until the fullest counter resets.
local mode, window = ARGV[1], tonumber(ARGV[2])
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[i + 2])
  local count
  if mode == 'hit' then
    count = redis.call('INCR', key)
    if count == 1 then redis.call('PEXPIRE', key, window) end
  else
    count = tonumber(redis.call('GET', key) or '0')
  end
  local over = (mode == 'hit' and count > limit) or (mode ~= 'hit' and count >= limit)
  if over then
    local ttl = redis.call('PTTL', key)
    -- a counter left without expiry (should not happen) would block forever: give it one window
    if ttl < 0 then redis.call('PEXPIRE', key, window); ttl = window end
    if ttl > wait then wait = ttl end
  end
end
return wait
