-- Apply one batch plan atomically (see leaderboard/plan.py and leaderboard/store.py).
-- Everything the batch writes, its partition fences and the global watermark change together, or
-- nothing does: a fence that moved since planning (another worker, a redelivery) aborts the call.
-- ARGV is a flat list of sections, each "count, then count records"; store.py builds it.
local prefix = ARGV[1]
local i = 4
local function nxt() local v = ARGV[i]; i = i + 1; return v end

-- 0. the namespace's scoring version (set by the first worker, or by `kudos rebuild` when it
--    switches to a rescored log): a worker with other rules must not add to these boards
local version = redis.call('HGET', prefix .. ':meta', 'scoring_version')
if version and version ~= ARGV[2] then return {'conflict', 'scoring', version} end
-- a `kudos rebuild` switch replaced the state the plan was made from (even if fences match)
local generation = redis.call('GET', prefix .. ':generation') or '0'
if generation ~= ARGV[3] then return {'conflict', 'generation', generation} end

-- one call per key with many field/value pairs, chunked below Lua's unpack limit
local function bulk(cmd, key, vals)
  local n = #vals
  for s = 1, n, 4000 do
    redis.call(cmd, key, unpack(vals, s, math.min(s + 3999, n)))
  end
end
local function push(groups, key, a, b)
  local g = groups[key]
  if not g then g = {}; groups[key] = g end
  g[#g + 1] = a
  g[#g + 1] = b
end

local K_FENCE = prefix .. ':fence'
local K_PWM = prefix .. ':pwm'
local K_WM = prefix .. ':wm'
local K_LANDMARK = prefix .. ':landmark'

-- 1. guards: partition fences and the decay landmark must be what the plan was built against
local np = tonumber(nxt())
local parts = {}
for j = 1, np do
  local p, expected, fence, pwm, seen_cut, dr_cut = nxt(), nxt(), nxt(), nxt(), nxt(), nxt()
  local cur = redis.call('HGET', K_FENCE, p) or '-1'
  if cur ~= expected then return {'conflict', 'fence', p, cur} end
  parts[j] = {p, fence, pwm, seen_cut, dr_cut}
end
local expected_landmark, landmark, factor = nxt(), nxt(), nxt()
local cur_landmark = redis.call('GET', K_LANDMARK) or ''
if cur_landmark ~= expected_landmark then return {'conflict', 'landmark', cur_landmark} end

-- 2. watermark W = the largest event time applied so far, across partitions and workers
local max_ts = nxt()
local wm = redis.call('GET', K_WM)
if max_ts ~= '' and (wm == false or tonumber(max_ts) > tonumber(wm)) then
  redis.call('SET', K_WM, max_ts)
  wm = max_ts
end
local W = wm and tonumber(wm) or nil

-- 3. move the decay landmark: rescale every decayed board once, prune what fell below 1e-6 points
local prune_below = nxt()
if landmark ~= '' and landmark ~= cur_landmark then
  if cur_landmark ~= '' then
    for _, key in ipairs(redis.call('SMEMBERS', prefix .. ':decayed_boards')) do
      redis.call('ZUNIONSTORE', key, 1, key, 'WEIGHTS', factor)
      redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. prune_below)
    end
  end
  redis.call('SET', K_LANDMARK, landmark)
end

-- 4. windows: expire buckets that left the window, subtracting their exact contributions
local nw = tonumber(nxt())
local windows = {}
for j = 1, nw do
  local name, size, count = nxt(), tonumber(nxt()), tonumber(nxt())
  local cutoff = nil
  if W then cutoff = math.floor(W / size) - count end
  windows[j] = {name, cutoff}
  if cutoff then
    local index_key = prefix .. ':buckets:' .. name
    local expired = redis.call('ZRANGEBYSCORE', index_key, '-inf', cutoff)
    for _, entry in ipairs(expired) do
      local sep = string.find(entry, '|', 1, true)
      local board = string.sub(entry, 1, sep - 1)
      local bkey = prefix .. ':bucket:' .. entry
      local bkey_board = prefix .. ':board:' .. board
      redis.call('HINCRBY', prefix .. ':changes', board, 1)
      local rows = redis.call('ZRANGE', bkey, 0, -1, 'WITHSCORES')
      for r = 1, #rows, 2 do
        local left = tonumber(redis.call('ZINCRBY', bkey_board, '-' .. rows[r + 1], rows[r]))
        if left <= 0 then redis.call('ZREM', bkey_board, rows[r]) end
      end
      redis.call('DEL', bkey)
    end
    if #expired > 0 then redis.call('ZREMRANGEBYSCORE', index_key, '-inf', cutoff) end
  end
end

-- 5. all-time boards
local n = tonumber(nxt())
for _ = 1, n do
  local board, member, delta = nxt(), nxt(), nxt()
  redis.call('ZINCRBY', prefix .. ':board:' .. board, delta, member)
end

-- 6. window boards: add to the bucket while it is inside the window, and the sum of a batch's
--    live buckets to the board once per (board, member). Deltas are integer milli-points, exact
--    in a double, so summing them here loses nothing.
n = tonumber(nxt())
local registered = {}
local board_sum = {}
local board_order = {}
for _ = 1, n do
  local wi, idx, board, member, delta = tonumber(nxt()), nxt(), nxt(), nxt(), nxt()
  local cutoff = windows[wi + 1][2]
  if cutoff == nil or tonumber(idx) > cutoff then
    local entry = board .. '|' .. idx
    redis.call('ZINCRBY', prefix .. ':bucket:' .. entry, delta, member)
    local bm = board .. '\0' .. member
    local prev = board_sum[bm]
    if prev == nil then
      board_order[#board_order + 1] = {board, member}
      board_sum[bm] = tonumber(delta)
    else
      board_sum[bm] = prev + tonumber(delta)
    end
    if not registered[entry] then
      registered[entry] = true
      redis.call('ZADD', prefix .. ':buckets:' .. windows[wi + 1][1], idx, entry)
    end
  end
end
for _, bm in ipairs(board_order) do
  -- %d: integer milli-points print exactly (Lua's default number format keeps only 14 digits)
  redis.call('ZINCRBY', prefix .. ':board:' .. bm[1],
             string.format('%d', board_sum[bm[1] .. '\0' .. bm[2]]), bm[2])
end

-- 7. decayed boards (forward decay: values are stored against the landmark)
n = tonumber(nxt())
for _ = 1, n do
  local board, member, delta = nxt(), nxt(), nxt()
  redis.call('ZINCRBY', prefix .. ':board:' .. board, delta, member)
end
n = tonumber(nxt())
for _ = 1, n do
  local board = nxt()
  redis.call('SADD', prefix .. ':boards', board)
  -- the live feed's change marks: web processes diff a board only when its counter moved
  redis.call('HINCRBY', prefix .. ':changes', board, 1)
  if string.sub(board, 1, 7) == 'decayed' then
    redis.call('SADD', prefix .. ':decayed_boards', prefix .. ':board:' .. board)
  end
end

-- 8. de-duplication ids and diminishing-returns counters (per partition, pruned by its watermark)
n = tonumber(nxt())
local groups = {}
for _ = 1, n do
  local p, ts, id = nxt(), nxt(), nxt()
  push(groups, prefix .. ':seen:' .. p, ts, id)
end
for key, vals in pairs(groups) do bulk('ZADD', key, vals) end
n = tonumber(nxt())
groups = {}
local days = {}
for _ = 1, n do
  local p, day, f, k = nxt(), nxt(), nxt(), nxt()
  local key = prefix .. ':dr:' .. p .. ':' .. day
  if not groups[key] then push(days, prefix .. ':drdays:' .. p, day, day) end
  push(groups, key, f, k)
end
for key, vals in pairs(groups) do bulk('HSET', key, vals) end
for key, vals in pairs(days) do bulk('ZADD', key, vals) end

-- 9. explain counters, points per post (top posts; only events that name a post) and pipeline stats
n = tonumber(nxt())
for _ = 1, n do
  local member, f, delta = nxt(), nxt(), nxt()
  redis.call('HINCRBY', prefix .. ':explain:' .. member, f, delta)
end
n = tonumber(nxt())
for _ = 1, n do
  local member, post, delta = nxt(), nxt(), nxt()
  redis.call('ZINCRBY', prefix .. ':posts:' .. member, delta, post)
end
n = tonumber(nxt())
for _ = 1, n do
  local f, delta = nxt(), nxt()
  redis.call('HINCRBY', prefix .. ':stats', f, delta)
end

-- 9b. comment-bait: the detector's state (written with the fence it matches), its decisions
--     (the member's throttle record and the alerts stream) and the points it withheld
n = tonumber(nxt())
groups = {}
local deleted = {}
for _ = 1, n do
  local p, tbl, k, v = nxt(), nxt(), nxt(), nxt()
  local key = prefix .. ':bait:' .. tbl .. ':' .. p
  if v == '' then
    local d = deleted[key]
    if not d then d = {}; deleted[key] = d end
    d[#d + 1] = k
  else
    push(groups, key, k, v)
  end
end
for key, vals in pairs(groups) do bulk('HSET', key, vals) end
for key, vals in pairs(deleted) do bulk('HDEL', key, vals) end
local alerts_max = nxt()
n = tonumber(nxt())
for _ = 1, n do
  local member, group, record = nxt(), nxt(), nxt()
  redis.call('HSET', prefix .. ':throttle:' .. member, group, record)
  redis.call('XADD', prefix .. ':alerts', 'MAXLEN', '~', alerts_max, '*', 'r', record)
end
n = tonumber(nxt())
for _ = 1, n do
  local member, group, delta = nxt(), nxt(), nxt()
  redis.call('HINCRBY', prefix .. ':withheld:' .. member, group, delta)
end

-- 10. perks: each rule is checked against the boards as this batch left them, and a member who
--     qualifies is unlocked once, ever (perks:<member> has no entry for the rule yet), in the same atomic step as
--     the scores that earned it, so replays, redeliveries and crashes never unlock twice. Rank
--     rules look at every row scoring at least the Nth row (ties at the edge included), and only
--     when the board changed since the rule last looked (perkseen); score-only rules at the
--     members this batch touched on that board (a score can only rise when its member is touched).
local nr = tonumber(nxt())
local half_life = tonumber(nxt())
if nr > 0 and W then
  local L = tonumber(redis.call('GET', K_LANDMARK) or '0')
  local K_SEEN = prefix .. ':perkseen'
  for _ = 1, nr do
    local rid, board, rank_max, score_min, title, payload = nxt(), nxt(), nxt(), nxt(), nxt(), nxt()
    local nc = tonumber(nxt())
    local cands = {}
    for c = 1, nc do cands[c] = nxt() end
    local key = prefix .. ':board:' .. board
    -- points = stored * scale (decayed values are stored against the landmark L)
    local decayed = string.sub(board, 1, 7) == 'decayed'
    local scale = 0.001
    if decayed then scale = 0.001 * 2 ^ ((L - W) / half_life) end
    local thr = nil  -- the threshold in stored units; milli-point boards compare exact integers
    if score_min ~= '' then
      thr = tonumber(score_min)
      if decayed then thr = thr * 0.001 / scale end
    end
    if rank_max ~= '' then
      cands = {}
      local mark = redis.call('HGET', prefix .. ':changes', board) or '0'
      if redis.call('HGET', K_SEEN, rid) ~= mark then
        redis.call('HSET', K_SEEN, rid, mark)
        local n = tonumber(rank_max)
        local nth = redis.call('ZREVRANGE', key, n - 1, n - 1, 'WITHSCORES')
        local lo = '-inf'
        if #nth > 0 then lo = nth[2] end
        if thr and (lo == '-inf' or thr > tonumber(lo)) then lo = string.format('%.17g', thr) end
        -- every row at or above the Nth score has competition rank <= N
        cands = redis.call('ZREVRANGEBYSCORE', key, '+inf', lo)
      end
    end
    for _, m in ipairs(cands) do
      local pkey = prefix .. ':perks:' .. m
      if redis.call('HEXISTS', pkey, rid) == 0 then
        local s = redis.call('ZSCORE', key, m)
        if s and (thr == nil or tonumber(s) >= thr) then
          local rank = redis.call('ZCOUNT', key, '(' .. s, '+inf') + 1
          local uid = 'unl_' .. redis.sha1hex(rid .. '\31' .. m)
          local points = tonumber(s) * scale
          if not decayed then points = tonumber(s) / 1000 end  -- exact: 12.0, not 12.000000000000002
          redis.call('HSET', pkey, rid, cjson.encode({
            id = uid, rule = rid, title = title, member = m, board = board, rank = rank,
            score = points, at = W, payload = cjson.decode(payload)}))
          -- (not capped: one entry per unlock, ever, like the perks hashes themselves)
          redis.call('XADD', prefix .. ':perkbox', '*',
                     'id', uid, 'rule', rid, 'title', title, 'member', m, 'board', board,
                     'rank', rank, 'score', string.format('%.17g', points), 'at', W,
                     'payload', payload)
        end
      end
    end
  end
end

-- 11. advance fences last (same atomic call), prune what fell behind the dedupe horizon
for _, part in ipairs(parts) do
  local p, fence, pwm, seen_cut, dr_cut = part[1], part[2], part[3], part[4], part[5]
  redis.call('HSET', K_FENCE, p, fence)
  if pwm ~= '' then redis.call('HSET', K_PWM, p, pwm) end
  if seen_cut ~= '' then
    redis.call('ZREMRANGEBYSCORE', prefix .. ':seen:' .. p, '-inf', '(' .. seen_cut)
  end
  if dr_cut ~= '' then
    local days_key = prefix .. ':drdays:' .. p
    local old = redis.call('ZRANGEBYSCORE', days_key, '-inf', '(' .. dr_cut)
    for _, day in ipairs(old) do redis.call('DEL', prefix .. ':dr:' .. p .. ':' .. day) end
    if #old > 0 then redis.call('ZREMRANGEBYSCORE', days_key, '-inf', '(' .. dr_cut) end
  end
end
return {'ok', wm or ''}
