-- Read everything a member's explanation shows atomically (no writes): the explain hash, the best
-- posts, the comment-bait throttles on the member's posts, the member's place on each base board
-- and on the boards of each of the member's communities, the clock (W, L) and the member's points
-- in each live bucket of the hourly window, all from one moment.
-- KEYS: explain hash, the member's posts key prefix ("<prefix>:posts:<member>|": one sorted set
--       per period of event time, named by appending the period), watermark, landmark, throttle
--       hash, the withheld key prefix (one hash per period, as posts), the member's communities
--       set (mcomm), then one board key per base board, then hidden, then live.
-- A hidden member (lua/hidden.lua) is on no board; the others' ranks leave hidden members out.
-- ARGV: member, top posts, hourly bucket key prefix ('' for none: "<prefix>:bucket:<window>|"),
--       bucket seconds, bucket count, seconds per posts period, board key prefix
--       ("<prefix>:board:"), then the base board ids (in KEYS order; a community board is
--       "<base>:<community>"), then the generation assumed.
-- Only the member's own communities are read (not every community board of the namespace), so
-- the cost is the member's, whatever the number of boards.
-- the generation: the last KEY is the pointer, the last ARGV the generation the caller named the
-- keys in ('' : pinned, no check); 'stale' (nothing read) when a rebuild switch moved it
if ARGV[#ARGV] ~= '' and (redis.call('GET', KEYS[#KEYS]) or '0') ~= ARGV[#ARGV] then
  return 'stale'
end
local member = ARGV[1]
local explain = redis.call('HGETALL', KEYS[1])
local wm = redis.call('GET', KEYS[3]) or ''
-- top posts: the points of the current and the previous period of W, summed per post. The
-- exact top n of the sums without reading either set whole (a member may have many posts): read
-- both from the top, d rows each, sum every post seen there, and stop once the n-th best sum
-- beats what any post not seen could reach (the d-th scores of the two sets added: Fagin's
-- threshold algorithm); else look 4 times deeper.
local posts = {}
local function top_of(a, b, n)
  local depth = n
  while true do
    local ra = redis.call('ZREVRANGE', a, 0, depth - 1, 'WITHSCORES')
    local rb = redis.call('ZREVRANGE', b, 0, depth - 1, 'WITHSCORES')
    local seen, rows = {}, {}
    local function take(list, other)
      for r = 1, #list, 2 do
        local m = list[r]
        if not seen[m] then
          seen[m] = true
          local s = tonumber(list[r + 1]) + tonumber(redis.call('ZSCORE', other, m) or '0')
          rows[#rows + 1] = {m, s}
        end
      end
    end
    take(ra, b)
    take(rb, a)
    -- (best first; ties by post id descending, as ZREVRANGE orders one set)
    table.sort(rows, function(x, y) if x[2] ~= y[2] then return x[2] > y[2] end return x[1] > y[1] end)
    local done_a, done_b = #ra < 2 * depth, #rb < 2 * depth
    local bound = (done_a and 0 or tonumber(ra[#ra])) + (done_b and 0 or tonumber(rb[#rb]))
    if (done_a and done_b) or (#rows >= n and rows[n][2] > bound) then
      local out = {}
      for r = 1, math.min(n, #rows) do
        out[#out + 1] = rows[r][1]
        out[#out + 1] = string.format('%d', rows[r][2])
      end
      return out
    end
    depth = depth * 4
  end
end
if wm ~= '' then
  local k = math.floor(tonumber(wm) / tonumber(ARGV[6]))
  posts = top_of(KEYS[2] .. string.format('%d', k), KEYS[2] .. string.format('%d', k - 1),
                 tonumber(ARGV[2]))
end
local lm = redis.call('GET', KEYS[4]) or ''
local throttles = redis.call('HGETALL', KEYS[5])
-- withheld per group: the current and the previous period of W, summed
local withheld = {}
if wm ~= '' then
  local k = math.floor(tonumber(wm) / tonumber(ARGV[6]))
  local sums, order = {}, {}
  for _, key in ipairs({KEYS[6] .. string.format('%d', k - 1), KEYS[6] .. string.format('%d', k)}) do
    local rows = redis.call('HGETALL', key)
    for r = 1, #rows, 2 do
      if sums[rows[r]] == nil then order[#order + 1] = rows[r]; sums[rows[r]] = 0 end
      sums[rows[r]] = sums[rows[r]] + tonumber(rows[r + 1])
    end
  end
  for _, g in ipairs(order) do
    withheld[#withheld + 1] = g
    withheld[#withheld + 1] = string.format('%d', sums[g])
  end
end
local hidden_ids = HID.ids(KEYS[#KEYS - 1])
local function place(key)
  local score = redis.call('ZSCORE', key, member)
  if not score then return '' end
  local view = HID.view(key, hidden_ids)
  if HID.hidden(view, member) then return '' end
  -- competition rank: 1 + members with a strictly higher score (scores are exact strings)
  local rank = redis.call('ZCOUNT', key, '(' .. score, '+inf') + 1 - HID.above(view, score)
  return {score, rank, HID.size(view, key)}
end
local boards = {}
for j = 8, #KEYS - 2 do boards[#boards + 1] = place(KEYS[j]) end
-- {community board id, place} for each board of the member's communities the member is on
local communities = {}
local board_prefix = ARGV[7]
for _, c in ipairs(redis.call('SMEMBERS', KEYS[7])) do
  for j = 8, #ARGV - 1 do
    local id = ARGV[j] .. ':' .. c
    local row = place(board_prefix .. id)
    if row ~= '' then communities[#communities + 1] = {id, row} end
  end
end
-- the live buckets are exactly those with i > floor(W / b) - n (apply.lua expires the rest)
local hourly = {}
local bucket_prefix = ARGV[3]
if bucket_prefix ~= '' and wm ~= '' then
  local size, count = tonumber(ARGV[4]), tonumber(ARGV[5])
  local last = math.floor(tonumber(wm) / size)
  for i = last - count + 1, last do
    hourly[#hourly + 1] = redis.call('ZSCORE', bucket_prefix .. string.format('%d', i), member) or '0'
  end
end
return {explain, posts, wm, lm, boards, hourly, throttles, withheld, communities}
