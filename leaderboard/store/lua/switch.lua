-- `kudos rebuild`: replace the live namespace's scoring state with a rebuilt (shadow) one, in one
-- atomic step, so a reader sees the old boards or the new ones and never a mix or a gap.
-- Refused while the shadow is behind the live fences: the live workers would otherwise skip the
-- messages between the two (they resume after the fence they find).
-- The keys are listed here, inside the atomic step (a list made before it could miss keys a live
-- worker created meanwhile); only the key families in ARGV are touched, so a nested namespace
-- ("<prefix>:staging:...") or serving state is never deleted.
-- ARGV: live prefix, shadow prefix, their SCAN patterns (glob-escaped), scoring identity, outbox
--       consumer group, the rebuild lock's token, families...
local live, shadow, live_match, shadow_match = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local identity, group, token = ARGV[5], ARGV[6], ARGV[7]
local families = {}
for j = 8, #ARGV do families[ARGV[j]] = true end
-- only the rebuild holding the lock may switch (another may have taken over an expired lock)
if redis.call('GET', live .. ':rebuilding') ~= token then return {'lock'} end

local fences = redis.call('HGETALL', live .. ':fence')
for j = 1, #fences, 2 do
  local s = redis.call('HGET', shadow .. ':fence', fences[j])
  if not s or tonumber(s) < tonumber(fences[j + 1]) then
    return {'behind', fences[j], fences[j + 1], s or '-1'}
  end
end

local function keys_of(prefix, match)
  local out = {}
  local n = #prefix + 2
  local cursor = '0'
  repeat
    local res = redis.call('SCAN', cursor, 'MATCH', match, 'COUNT', 1000)
    cursor = res[1]
    for _, key in ipairs(res[2]) do
      local suffix = string.sub(key, n)
      local family = string.match(suffix, '^[^:]+')
      if family and families[family] then out[#out + 1] = suffix end
    end
  until cursor == '0'
  return out
end

-- every board before and after changes: web processes must re-read each one
local boards = {}
for _, b in ipairs(redis.call('SMEMBERS', live .. ':boards')) do boards[b] = true end
for _, b in ipairs(redis.call('SMEMBERS', shadow .. ':boards')) do boards[b] = true end

local renamed = {}
for _, suffix in ipairs(keys_of(shadow, shadow_match)) do
  redis.call('RENAME', shadow .. ':' .. suffix, live .. ':' .. suffix)
  renamed[suffix] = true
end
for _, suffix in ipairs(keys_of(live, live_match)) do
  if not renamed[suffix] then redis.call('UNLINK', live .. ':' .. suffix) end
end

-- decayed_boards holds full key names (apply.lua rescales them when the landmark moves)
local dkey = live .. ':decayed_boards'
local names = redis.call('SMEMBERS', dkey)
if #names > 0 then
  redis.call('DEL', dkey)
  local from = shadow .. ':'
  for _, name in ipairs(names) do
    if string.sub(name, 1, #from) == from then name = live .. ':' .. string.sub(name, #from + 1) end
    redis.call('SADD', dkey, name)
  end
end

-- the alerts outbox is the rebuilt one now (GET /api/alerts lists its history); the deliverer's
-- group starts at its end: a rebuild does not announce past throttles again as news
redis.call('XGROUP', 'CREATE', live .. ':alerts', group, '$', 'MKSTREAM')

for b in pairs(boards) do redis.call('HINCRBY', live .. ':changes', b, 1) end
-- workers' in-memory copies of the old state are stale even where fences happen to match
redis.call('INCR', live .. ':generation')
redis.call('HSET', live .. ':meta', 'scoring_version', identity)
return {'ok'}
