-- categories_sync.lua: mirrors categories from PostgreSQL into Redis, where the routing scripts
-- read them (parent, routing, wrap-up). A row replaces the mirrored one only if it is not older
-- (updated_ms), so nodes syncing at the same time never go back in time. Category '0' is the
-- uncategorised queue. Field '_' marks a complete load (nodes load again when it is missing).
-- Nodes are told on the queue channel (CATEGORIES_UPDATED, key '-') to refresh their own copy.
-- KEYS: 1 categories  2 ch:queue
-- ARGV: now override, complete (1 | 0), then per category: id, parent id ('' none), routing, wrap_up_s, updated_ms
-- Returns the ids whose entry changed
local now = hd.now(ARGV[1])
local changed = {}
for i = 3, #ARGV, 5 do
  local id, updated = ARGV[i], tonumber(ARGV[i + 4])
  local value = ARGV[i + 1] .. '|' .. ARGV[i + 2] .. '|' .. ARGV[i + 3] .. '|' .. ARGV[i + 4]
  local old = redis.call('HGET', KEYS[1], id)
  local old_updated = old and tonumber(string.match(old, '([^|]*)$')) or -1
  if old ~= value and updated >= old_updated then
    redis.call('HSET', KEYS[1], id, value)
    changed[#changed + 1] = id
  end
end
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], '_', now) end
if #changed > 0 then hd.publish(KEYS[2], 'queue', 'a', '-', 'CATEGORIES_UPDATED', {category_ids = changed}) end
return changed
