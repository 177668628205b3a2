-- `kudos rebuild`: replace the live namespace's scoring state with a rebuilt (shadow) one, in one
-- atomic step, so a reader sees the old boards or the new ones and never a mix or a gap.
-- Refused while the shadow is behind the live fences: the live workers would otherwise skip the
-- messages between the two (they resume after the fence they find).
-- The keys are listed here, inside the atomic step (a list made before it could miss keys a live
-- worker created meanwhile); only the key families in ARGV are touched, so a nested namespace
-- ("<prefix>:staging:...") or serving state is never deleted.
-- ARGV: live prefix, shadow prefix, scoring identity, outbox consumer group, families...
local live, shadow, identity, group = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local families = {}
for j = 5, #ARGV do families[ARGV[j]] = true end

local fences = redis.call('HGETALL', live .. ':fence')
for j = 1, #fences, 2 do
  local s = redis.call('HGET', shadow .. ':fence', fences[j])
  if not s or tonumber(s) < tonumber(fences[j + 1]) then
    return {'behind', fences[j], fences[j + 1], s or '-1'}
  end
end

local function keys_of(prefix)
  local out = {}
  local n = #prefix + 2
  local cursor = '0'
  repeat
    local res = redis.call('SCAN', cursor, 'MATCH', prefix .. ':*', 'COUNT', 1000)
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
for _, suffix in ipairs(keys_of(shadow)) do
  redis.call('RENAME', shadow .. ':' .. suffix, live .. ':' .. suffix)
  renamed[suffix] = true
end
for _, suffix in ipairs(keys_of(live)) do
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

-- the alerts outbox is the rebuilt one now: the deliverer's group reads it from the start again
-- and fans out only the alerts it has not fanned out yet (alertfanout marks are kept)
if redis.call('EXISTS', live .. ':alerts') == 1 then
  redis.call('XGROUP', 'CREATE', live .. ':alerts', group, '0')
end

for b in pairs(boards) do redis.call('HINCRBY', live .. ':changes', b, 1) end
-- workers' in-memory copies of the old state are stale even where fences happen to match
redis.call('INCR', live .. ':generation')
redis.call('HSET', live .. ':meta', 'scoring_version', identity)
return {'ok'}
