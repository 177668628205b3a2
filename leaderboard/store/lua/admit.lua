-- The community cap of a namespace kept as shards, decided in the namespace's own store: a
-- shard's apply sees only its own admitted communities, so before it admits any (or refuses
-- any for the cap) the worker asks here (stream/processor.py, "community gate"). Admits the
-- plan's new communities in order while the namespace holds fewer than the cap, and answers 0
-- (re-plan from the namespace's set) if one would pass the cap or one the plan refused for the
-- cap has been admitted meanwhile; those admitted before the answer stay (the set only grows).
-- KEYS: the namespace's communities set.
-- ARGV: the cap, the number of new communities, the new ones, then the refused ones.
local cap, n = tonumber(ARGV[1]), tonumber(ARGV[2])
for i = 3, 2 + n do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then
    if cap > 0 and redis.call('SCARD', KEYS[1]) >= cap then return 0 end
    redis.call('SADD', KEYS[1], ARGV[i])
  end
end
for i = 3 + n, #ARGV do
  if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 1 then return 0 end
end
return 1
