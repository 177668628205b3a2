-- `kudos rebuild`: replace the live namespace's scoring state with a rebuilt (shadow) one, in one
-- atomic step, so a reader sees the old boards or the new ones and never a mix or a gap.
-- Refused while the shadow is behind the live fences: the live workers would otherwise skip the
-- messages between the two (they resume after the fence they find).
-- ARGV: live prefix, shadow prefix, scoring version, n, suffix * n (renamed from shadow to live),
--       m, suffix * m (live keys with no rebuilt counterpart: deleted)
local live, shadow, version = ARGV[1], ARGV[2], ARGV[3]
local fences = redis.call('HGETALL', live .. ':fence')
for j = 1, #fences, 2 do
  local s = redis.call('HGET', shadow .. ':fence', fences[j])
  if not s or tonumber(s) < tonumber(fences[j + 1]) then
    return {'behind', fences[j], fences[j + 1], s or '-1'}
  end
end
local n = tonumber(ARGV[4])
local i = 5
local renamed = {}
for _ = 1, n do
  local suffix = ARGV[i]; i = i + 1
  if redis.call('EXISTS', shadow .. ':' .. suffix) == 1 then
    redis.call('RENAME', shadow .. ':' .. suffix, live .. ':' .. suffix)
    renamed[suffix] = true
  end
end
local m = tonumber(ARGV[i]); i = i + 1
for _ = 1, m do
  local suffix = ARGV[i]; i = i + 1
  if not renamed[suffix] then redis.call('UNLINK', live .. ':' .. suffix) end
end
-- every board changed: make every web process re-read each one (the feed keys are kept)
for _, board in ipairs(redis.call('SMEMBERS', live .. ':boards')) do
  redis.call('HINCRBY', live .. ':changes', board, 1)
end
redis.call('HSET', live .. ':meta', 'scoring_version', version)
return {'ok', n}
