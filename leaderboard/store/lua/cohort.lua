-- A cohort's standings on a board (a peer board: GET /api/boards/{board}/cohort), read atomically
-- (no writes): each member's stored score and competition rank on the whole board, and, for a
-- board kept as shards, the count of rows above each of the other shards' cohort scores (in this
-- shard's units), with the board's size and the clock, all from one moment. At most 1,000
-- members and thresholds (the caller's bound): one ZMSCORE, and one ZCOUNT per distinct score.
-- KEYS: board, watermark, landmark, hidden, live (the generation pointer).
-- Hidden members (lua/hidden.lua) are missing, and the others ranked as if they were not there.
-- ARGV: the number of members, the members, then the thresholds; then the generation assumed
--       ('' : pinned, no check).
-- Returns {scores, ranks, counts, size, W, L}: scores and ranks '' for a member not on the board.
if ARGV[#ARGV] ~= '' and (redis.call('GET', KEYS[#KEYS]) or '0') ~= ARGV[#ARGV] then
  return 'stale'
end
local key, n = KEYS[1], tonumber(ARGV[1])
local scores, ranks, counts = {}, {}, {}
local view = HID.view(key, HID.ids(KEYS[4]))
-- (one count per distinct score: members of a cohort often tie)
local above = {}
local function count_above(s)
  local c = above[s]
  if c == nil then
    c = redis.call('ZCOUNT', key, '(' .. s, '+inf') - HID.above(view, s)
    above[s] = c
  end
  return c
end
local got = {}
if n > 0 then got = redis.call('ZMSCORE', key, unpack(ARGV, 2, 1 + n)) end
for i = 1, n do
  local s = got[i]
  if s and not HID.hidden(view, ARGV[1 + i]) then
    scores[i] = s
    ranks[i] = count_above(s) + 1
  else
    scores[i], ranks[i] = '', ''
  end
end
for i = n + 2, #ARGV - 1 do
  counts[#counts + 1] = count_above(ARGV[i])
end
return {scores, ranks, counts, HID.size(view, key),
        redis.call('GET', KEYS[2]) or '', redis.call('GET', KEYS[3]) or ''}
