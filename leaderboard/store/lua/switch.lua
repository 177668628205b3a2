-- `kudos rebuild`: make the rebuilt generation the live one by moving the pointer, in one short
-- atomic step whatever the number of keys: readers see the old boards or the new ones, never a
-- mix or a gap (they name their keys after the pointer, and the atomic reads check it).
-- Refused while the new generation is behind the live fences: the live workers would otherwise
-- skip the messages between the two (they resume after the fence they find).
-- The old generation's keys stay; the rebuild drops them afterwards, in bounded steps.
-- KEYS: rebuilding (the lock), live (the pointer), the live generation's fence and boards,
--       the new generation's fence, boards and alerts, changes, the new generation's meta, then
--       archives:<unit> of the live and the new generation for each calendar unit.
-- ARGV: the rebuild lock's token, the live generation, the new one, the outbox consumer group,
--       the scoring identity the new generation was built with.
local token, live, new, group, identity = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
-- only the rebuild holding the lock may switch (another may have taken over an expired lock)
if redis.call('GET', KEYS[1]) ~= token then return {'lock'} end
local now = redis.call('GET', KEYS[2]) or '0'
if now ~= live then return {'moved', now} end

local fences = redis.call('HGETALL', KEYS[3])
for j = 1, #fences, 2 do
  local s = redis.call('HGET', KEYS[5], fences[j])
  if not s or tonumber(s) < tonumber(fences[j + 1]) then
    return {'behind', fences[j], fences[j + 1], s or '-1'}
  end
end

redis.call('SET', KEYS[2], new)
-- (the rebuild claimed it when it started; said again so no worker on other rules can apply)
redis.call('HSET', KEYS[9], 'scoring_version', identity)
-- every board before and after changes: web processes must re-read each one (both sets are
-- bounded by the base boards times the community cap, not by the number of members)
local boards = {}
for _, b in ipairs(redis.call('SMEMBERS', KEYS[4])) do boards[b] = true end
for _, b in ipairs(redis.call('SMEMBERS', KEYS[6])) do boards[b] = true end
-- and the archived calendar periods of both (KEYS[10..]: archives:<unit>, bounded by retention)
for k = 10, #KEYS do
  for _, b in ipairs(redis.call('ZRANGE', KEYS[k], 0, -1)) do boards[b] = true end
end
local n = 0
for b in pairs(boards) do
  redis.call('HINCRBY', KEYS[8], b, 1)
  n = n + 1
end
-- the alerts outbox is the new generation's now (GET /api/alerts lists its history); the
-- deliverer's group starts at its end: a rebuild does not announce past throttles again as news
if redis.call('EXISTS', KEYS[7]) == 1 then redis.call('XGROUP', 'DESTROY', KEYS[7], group) end
redis.call('XGROUP', 'CREATE', KEYS[7], group, '$', 'MKSTREAM')
return {'ok', n}
