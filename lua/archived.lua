-- archived.lua: after a flush, lets the archived conversation's live keys expire, but only if the
-- close that was archived is still the current one. A reopen since then (status no longer closed,
-- or a later close with a higher close_epoch) keeps the keys: that chat is live again and will be
-- archived again at its next close.
-- KEYS: <prefix>conv:<id>, its :msgs, :events, :dedupe, :call
-- ARGV: close epoch of the archived outbox entry, retention ms
-- Returns 1 when the keys now expire, 0 when they were left alone.
local c = redis.call('HMGET', KEYS[1], 'status', 'close_epoch')
if (c[1] ~= 'closed' and c[1] ~= 'abandoned') or c[2] ~= ARGV[1] then return 0 end
local ms = tonumber(ARGV[2])
for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ms) end
return 1
