-- Read a slice of a board atomically (no writes): the rows, the competition rank of the first row,
-- the board size and the clock (W, L), all from one moment, so a concurrent apply or landmark move
-- can never mix two states in one answer.
-- KEYS: board, watermark, landmark, hidden, live (the generation pointer).
-- Hidden members (lua/hidden.lua, put in front of this script) are left out: positions, ranks
-- and the size are the visible ones; a hidden member's own read answers as if absent.
-- ARGV: 'page', start, stop  |  'member', member, around  |  'near', score, member, around;
-- then the generation assumed.
-- 'near' (a slice of a board kept as shards, leaderboard.merge.merge_around): the rows around the
-- place where (score, member) is or would be in ZREVRANGE order, whether or not the member is
-- in this slice: ``around`` rows before that place and ``around`` + 1 from it.
-- the generation: the last KEY is the pointer, the last ARGV the generation the caller named the
-- keys in ('' : pinned, no check); 'stale' (nothing read) when a rebuild switch moved it
if ARGV[#ARGV] ~= '' and (redis.call('GET', KEYS[#KEYS]) or '0') ~= ARGV[#ARGV] then
  return 'stale'
end
local key = KEYS[1]
local start, stop
local view = HID.view(key, HID.ids(KEYS[4]))

-- a < b in Redis's member order (memcmp): Lua's own '<' follows the server's LC_COLLATE
local function bytes_lt(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return #a < #b
end
local member_score, member_rank = '', 0
if ARGV[1] == 'member' then
  local pos = redis.call('ZREVRANK', key, ARGV[2])
  if not pos or HID.hidden(view, ARGV[2]) then return false end
  member_score = redis.call('ZSCORE', key, ARGV[2])
  member_rank = redis.call('ZCOUNT', key, '(' .. member_score, '+inf') + 1
    - HID.above(view, member_score)
  pos = pos - HID.before(view, pos)
  local around = tonumber(ARGV[3])
  start = pos - around
  if start < 0 then start = 0 end
  stop = pos + around
elseif ARGV[1] == 'near' then
  -- the place: every row scoring more, then the tied rows whose member sorts after ARGV[3]
  -- (ZREVRANGE puts equal scores in descending member order), found by bisection: log2 of
  -- the tie group's size ZREVRANGE calls of one row, whatever the board's size
  local score, m, around = ARGV[2], ARGV[3], tonumber(ARGV[4])
  local pos = redis.call('ZCOUNT', key, '(' .. score, '+inf')
  local lo, hi = 0, redis.call('ZCOUNT', key, score, score)
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local row = redis.call('ZREVRANGE', key, pos + mid, pos + mid)[1]
    if bytes_lt(m, row) then lo = mid + 1 else hi = mid end
  end
  pos = pos + lo
  pos = pos - HID.before(view, pos)
  start = pos - around
  if start < 0 then start = 0 end
  stop = pos + around
else
  start, stop = tonumber(ARGV[2]), tonumber(ARGV[3])
end
local rows = HID.range(view, key, start, stop)
local first_rank = 0
-- scores come back from Redis as exact strings, so '(' .. score is an exact exclusive bound
if #rows > 0 then
  first_rank = redis.call('ZCOUNT', key, '(' .. rows[2], '+inf') + 1 - HID.above(view, rows[2])
end
return {rows, first_rank, HID.size(view, key), redis.call('GET', KEYS[2]) or '',
        redis.call('GET', KEYS[3]) or '', member_score, member_rank, start}
