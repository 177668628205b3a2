-- The community cap of a namespace kept as shards, decided in the namespace's own store: a
-- shard's apply sees only its own admitted communities, so before it admits any (or refuses
-- any for the cap) the worker asks here (stream/processor.py, "community gate"). Admits the
-- plan's new communities in order while the namespace holds fewer than the cap, and answers 0
-- (re-plan from the namespace's set) if one would pass the cap or one the plan refused for the
-- cap has been admitted meanwhile; those admitted before the answer stay (the set only grows).
-- KEYS: the namespace's communities set, live (the generation pointer).
-- ARGV: the cap, the number of new communities, the new ones, then the refused ones; then the
--       generation assumed ('' : pinned, no check): 'stale' (nothing written) when a rebuild's
--       switch moved the pointer, so no admission lands in a generation about to be dropped.
if ARGV[#ARGV] ~= '' and (redis.call('GET', KEYS[#KEYS]) or '0') ~= ARGV[#ARGV] then
  return 'stale'
end
local cap, n = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 3, 2 + n do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then
    if cap > 0 and redis.call('SCARD', KEYS[1]) >= cap then return 0 end
    redis.call('SADD', KEYS[1], ARGV[i])
  end
end
for i = 3 + n, #ARGV - 1 do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 then return 0 end
end
return 1
