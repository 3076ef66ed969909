-- agent_profile.lua: an admin changed an agent's routing profile (PATCH /users/{id}). A live agent
-- (one whose hash exists: it connected since Redis last lost it) gets the new fields at once, so
-- PICK, offers and the queue changes its sockets get follow them without a reconnect.
-- KEYS: 1 agent:<agent>  2 agents:available  3 ch:presence  4 ch:user:<agent>
-- ARGV: now override, agent_id, capacity, categories (comma-separated ids), supervisor_id
--       ('' = none); '-' leaves a field as it is
-- Returns 1 when the agent was live and changed, 0 when it has no live state (agent_connect.lua
-- writes the fields from the account at its next connect) or nothing changed.
local now = hd.now(ARGV[1])
local agent_id, capacity, categories, supervisor = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local key = KEYS[1]
if redis.call('EXISTS', key) == 0 then return 0 end
-- the admin page sends every field with each save: nothing to tell when none of them changed
local old = redis.call('HMGET', key, 'capacity', 'categories', 'supervisor_id')
if (capacity == '-' or capacity == hd.str(old[1])) and (categories == '-' or categories == (hd.str(old[2]) or ''))
  and (supervisor == '-' or supervisor == (hd.str(old[3]) or '')) then return 0 end
if capacity ~= '-' then redis.call('HSET', key, 'capacity', capacity) end
if supervisor ~= '-' then redis.call('HSET', key, 'supervisor_id', supervisor) end
if categories ~= '-' then redis.call('HSET', key, 'categories', categories) end
-- more or less room: in or out of the routable set
hd.refresh_available(KEYS[2], key, agent_id, now)
hd.publish_presence(KEYS[3], key, agent_id)
local a = redis.call('HMGET', key, 'capacity', 'categories')
local list = hd.str(a[2]) or ''
local ids = {}
for id in string.gmatch(list, '[^,]+') do ids[#ids + 1] = cjson.encode(id) end
-- written out: cjson would encode no categories as {} (an object), not []
local frame = '{"event":"PROFILE_UPDATED","data":{"capacity":' .. string.format('%d', tonumber(a[1]) or 0)
  .. ',"category_ids":[' .. table.concat(ids, ',') .. ']}}'
-- kind 'profile': nodes read the agent's categories again for its sockets' queue changes
hd.publish_frame(KEYS[4], 'profile', 'a', '-', frame)
return 1
