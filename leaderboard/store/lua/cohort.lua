-- A cohort's standings on a board (a peer board: GET /api/boards/{board}/cohort), read atomically
-- (no writes): each member's stored score and competition rank on the whole board, and, for a
-- board kept as shards, the count of rows above each of the other shards' cohort scores (in this
-- shard's units), with the board's size and the clock, all from one moment. At most 1,000
-- members and thresholds (the caller's bound): one ZSCORE and one ZCOUNT each.
-- KEYS: board, watermark, landmark, live (the generation pointer).
-- ARGV: the number of members, the members, then the thresholds; then the generation assumed
--       ('' : pinned, no check).
-- Returns {scores, ranks, counts, size, W, L}: scores and ranks '' for a member not on the board.
if ARGV[#ARGV] ~= '' and (redis.call('GET', KEYS[#KEYS]) or '0') ~= ARGV[#ARGV] then
  return 'stale'
end
local key, n = KEYS[1], tonumber(ARGV[1])
local scores, ranks, counts = {}, {}, {}
for i = 1, n do
  local s = redis.call('ZSCORE', key, ARGV[1 + i])
  if s then
    scores[i] = s
    ranks[i] = redis.call('ZCOUNT', key, '(' .. s, '+inf') + 1
  else
    scores[i], ranks[i] = '', ''
  end
end
for i = n + 2, #ARGV - 1 do
  counts[#counts + 1] = redis.call('ZCOUNT', key, '(' .. ARGV[i], '+inf')
end
return {scores, ranks, counts, redis.call('ZCARD', key),
        redis.call('GET', KEYS[2]) or '', redis.call('GET', KEYS[3]) or ''}
