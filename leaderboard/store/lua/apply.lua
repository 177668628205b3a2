-- Apply one batch plan atomically (see leaderboard/plan.py and leaderboard/store.py).
-- Everything the batch writes, its partition fences and the global watermark change together, or
-- nothing does: a fence that moved since planning (another worker, a redelivery) aborts the call.
-- Expiry and rescaling that a jump of W or a landmark move needs run first, in bounded steps
-- (section 2): a call that leaves some returns 'more' without writing the batch, and is repeated.
-- ARGV[1] is a JSON array of strings (cjson decodes it in C: one argument instead of ~17 per event,
-- which the worker packed at ~0.26 us each and Redis parsed one by one), called A below: a flat
-- list of sections, each its name, then "count, then count records"; the board sections (totals,
-- archives, buckets, decayed) and explain are grouped by key instead: "count of groups, then each
-- group's head (what names the key), its row count and its (member or field, delta) rows", so a
-- key is named and checked once per call, not once per row. leaderboard/store/apply.py builds it. ARGV[2..] are the binary fingerprint blobs of the seen and dr records, in order (JSON
-- holds no raw bytes).
-- KEYS: the namespace's fixed keys, in the order of APPLY_KEYS in leaderboard/store/apply.py
--       (fence, fencepart, pwm, wm, landmark, meta, live, communities, rescale,
--       decayed_boards, boards, changes, stats, alerts, perkseen, perkties, perkbox, calendar,
--       perkclosed, erasures, hidden).
-- A[1] is the key prefix (of the plan's generation, "<prefix>:g<N>", or "<prefix>" for N = 0)
-- of the families named per board, member or partition (board:<id>,
-- explain:<member>, seen:<p>, ...; see leaderboard/store/keys.py), the only keys not in KEYS: a
-- batch names thousands of them, and some are found only inside the atomic step (the buckets an
-- expiry walks, the decayed boards a landmark move copies, the members a rank perk finds). On a
-- Redis Cluster they carry the same hash tag as KEYS, so the call stays in one slot.
local A = cjson.decode(ARGV[1])
if type(A) ~= 'table' then error('apply protocol: ARGV[1] is not a JSON array') end
local prefix = A[1]
local K_FENCE, K_FENCEPART, K_PWM, K_WM, K_LANDMARK = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local K_META, K_LIVE, K_COMMUNITIES, K_RESCALE = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local K_DECAYED_BOARDS, K_BOARDS, K_CHANGES, K_STATS, K_ALERTS = KEYS[10], KEYS[11], KEYS[12], KEYS[13], KEYS[14]
local K_PERKSEEN, K_PERKTIES, K_PERKBOX, K_CALENDAR = KEYS[15], KEYS[16], KEYS[17], KEYS[18]
local K_PERKCLOSED, K_ERASURES, K_HIDDEN = KEYS[19], KEYS[20], KEYS[21]
local i = 4
local function nxt() local v = A[i]; i = i + 1; return v end
-- the next fingerprint blob (ARGV[2..], in the order of the seen and dr records)
local blob_at = 1
local function blob() blob_at = blob_at + 1; return ARGV[blob_at] end
-- every section starts with its name (APPLY_SECTIONS in leaderboard/store/apply.py): a builder and
-- a script that disagree on the layout stop at the first section they disagree on, by name
local function section(name)
  local got = nxt()
  if got ~= name then
    error('apply protocol: expected section ' .. name .. ' at A[' .. (i - 1) .. '], got ' ..
          tostring(got))
  end
end

-- The whole layout is checked before anything is written: a script that fails half-way keeps
-- what it wrote (Redis has no rollback), and a retry would add it again. Widths as read below.
do
  local j = 4
  local function expect(name)
    if A[j] ~= name then
      error('apply protocol: expected section ' .. name .. ' at A[' .. j .. '], got ' ..
            tostring(A[j]))
    end
    j = j + 1
  end
  local function count()
    local v = A[j]
    local c = type(v) == 'string' and tonumber(v) or nil
    if c == nil or c < 0 or c ~= math.floor(c) then
      error('apply protocol: no count at A[' .. j .. ']')
    end
    j = j + 1
    return c
  end
  local function records(name, fixed, width)
    expect(name)
    j = j + fixed
    local c = count()
    j = j + c * width
    return c
  end
  local function grouped(name, head, width)
    expect(name)
    for _ = 1, count() do
      j = j + head
      local c = count()
      j = j + c * width
    end
  end
  records('partitions', 0, 8)
  expect('landmark'); j = j + 3
  records('communities', 1, 1)
  local over = count(); j = j + over
  expect('erasures'); j = j + 1
  expect('clock'); j = j + 4
  records('windows', 0, 3)
  records('calendar', 3, 4)
  grouped('totals', 1, 2)
  grouped('archives', 5, 2)
  grouped('buckets', 3, 2)
  grouped('decayed', 1, 2)
  records('boards', 0, 1)
  records('mcomm', 0, 2)
  local blobs = records('seen', 1, 2)
  blobs = blobs + records('dr', 0, 2)
  grouped('explain', 1, 2)
  records('posts', 0, 4)
  records('profiles', 0, 5)
  records('stats', 0, 2)
  records('bait', 0, 4)
  records('alerts', 1, 3)
  records('withheld', 1, 4)
  expect('perks')
  local rules = count()
  j = j + 2  -- half-life, the serving prefix
  for _ = 1, rules do
    j = j + 8
    local c = count()
    j = j + c
  end
  expect('end')
  if j ~= #A + 1 then
    error('apply protocol: ' .. (#A + 1 - j) .. ' arguments after the last section')
  end
  if #ARGV ~= 1 + blobs then
    error('apply protocol: ' .. blobs .. ' fingerprint blobs named, ' .. (#ARGV - 1) .. ' sent')
  end
end

-- 0. the namespace's scoring version (set by the first worker, or by `kudos rebuild` when it
--    switches to a rescored log): a worker with other rules must not add to these boards
local version = redis.call('HGET', K_META, 'scoring_version')
if version and version ~= A[2] then return {'conflict', 'scoring', version} end
-- a `kudos rebuild` switch replaced the state the plan was made from (even if fences match): the
-- pointer moved past the plan's generation. (A plan of a newer generation than the pointer is
-- the rebuild's own, filling the generation it will switch to.)
local generation = redis.call('GET', K_LIVE) or '0'
if tonumber(generation) > tonumber(A[3]) then return {'conflict', 'generation', generation} end

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


-- 1. guards: partition fences and the decay landmark must be what the plan was built against
section('partitions')
local np = tonumber(nxt())
local parts = {}
for j = 1, np do
  local p, expected, fence, pwm, seen_cut, dr_cut = nxt(), nxt(), nxt(), nxt(), nxt(), nxt()
  -- "<offset>:<n>" of a big envelope applied in pieces ('' none): guarded and moved like the fence
  local expected_part, part = nxt(), nxt()
  local cur = redis.call('HGET', K_FENCE, p) or '-1'
  if cur ~= expected then return {'conflict', 'fence', p, cur} end
  local cur_part = redis.call('HGET', K_FENCEPART, p) or ''
  if cur_part ~= expected_part then return {'conflict', 'fencepart', p, cur_part} end
  parts[j] = {p, fence, pwm, seen_cut, dr_cut, part}
end
section('landmark')
local expected_landmark, landmark, factor = nxt(), nxt(), nxt()
local cur_landmark = redis.call('GET', K_LANDMARK) or ''
-- the plan's decayed values are stored against its landmark: the one it read, or the one it moved
-- to when a rescale to exactly that landmark finished meanwhile (by this plan's earlier calls)
if cur_landmark ~= expected_landmark and cur_landmark ~= landmark then
  return {'conflict', 'landmark', cur_landmark}
end
-- the community cap (0: none), the communities the plan admitted and those it refused for the
-- cap, decided against the worker's copy of the admitted set (which may lag: the set only grows).
-- They are what the current set gives unless the admissions would pass the cap or another worker
-- admitted a refused one meanwhile: then the worker re-plans from a fresh copy.
section('communities')
local max_communities = tonumber(nxt())
local admit = {}
for j = 1, tonumber(nxt()) do admit[j] = nxt() end
local n_over = tonumber(nxt())
local over_in = false
for _ = 1, n_over do
  if redis.call('SISMEMBER', K_COMMUNITIES, nxt()) == 1 then over_in = true end
end
if max_communities > 0 and (#admit > 0 or n_over > 0) then
  local size = redis.call('SCARD', K_COMMUNITIES)
  for _, c in ipairs(admit) do
    if redis.call('SISMEMBER', K_COMMUNITIES, c) == 0 then size = size + 1 end
  end
  if over_in or size > max_communities then return {'conflict', 'communities', size} end
end
-- the erasure counter the plan's tombstones were read at: a member erased since (kudos erase)
-- may have rows in this plan, so the worker reloads the tombstones and plans again
section('erasures')
local erasures = redis.call('GET', K_ERASURES) or '0'
if erasures ~= nxt() then return {'conflict', 'erasures', erasures} end
section('clock')
local max_ts, prune_below = nxt(), nxt()
-- maintenance bound: board rows one call may expire or rescale (0: no bound); see below
local budget = tonumber(nxt())
if budget <= 0 then budget = math.huge end
-- '0' for a kudos rebuild filling a generation nobody reads yet: the live feed's change marks
-- (serving state) stay as they are until its switch marks every board at once
local marks = nxt() == '1'
local function changed(board)
  if marks then redis.call('HINCRBY', K_CHANGES, board, 1) end
end
local work = 0
local wm = redis.call('GET', K_WM)
local W = wm and tonumber(wm) or nil
section('windows')
local nw = tonumber(nxt())
local windows = {}
for j = 1, nw do windows[j] = {nxt(), tonumber(nxt()), tonumber(nxt())} end
-- the calendar: the grace for late events before a period's winners are judged, how much
-- longer an idle partition may hold that back (seconds), the topic's partition count (0:
-- unknown), then each unit (leaderboard/calendar.py): name, periods kept (0: all), and
-- the index and label of the period of the plan's newest event time ('' with none)
section('calendar')
local grace, idle = tonumber(nxt()), tonumber(nxt())
local partitions_total = tonumber(nxt())
local units, unit_named = {}, {}
for u = 1, tonumber(nxt()) do
  units[u] = {nxt(), tonumber(nxt()), nxt(), nxt()}
  unit_named[units[u][1]] = units[u]
end

-- 2. maintenance in bounded steps, before anything of this batch is written. A call that leaves
--    work returns {'more', work} having written none of the plan (fences unmoved): the worker
--    sends the same call again until it applies. Readers between the calls see exact boards:
--    a rescale is built on the side and swapped in whole; expiry goes in event-time order.

-- 2a. decay landmark move: every decayed board is copied, rescaled by the factor and pruned, into
--     rescaled:<board> (ZSCAN, so boards may change in between: section 7 writes every new value
--     to the copy too, and a copy row is its board's row × factor at copy time), then all copies
--     replace their boards and L moves, in one call. Readers keep the old boards and L until then.
local function rescale_steps()
  local to = redis.call('HGET', K_RESCALE, 'to')
  if not to then return true end
  local f = tonumber(redis.call('HGET', K_RESCALE, 'factor'))
  local prune = tonumber(redis.call('HGET', K_RESCALE, 'prune'))
  for _, field in ipairs(redis.call('HKEYS', K_RESCALE)) do
    if string.sub(field, 1, 2) == 'c:' then
      if work >= budget then return false end
      local id = string.sub(field, 3)
      local key, copy = prefix .. ':board:' .. id, prefix .. ':rescaled:' .. id
      local cursor = redis.call('HGET', K_RESCALE, field)
      repeat
        local res = redis.call('ZSCAN', key, cursor, 'COUNT', math.min(budget - work, 1000))
        cursor = res[1]
        local rows = res[2]
        local keep, drop = {}, {}
        for r = 1, #rows, 2 do
          local v = tonumber(rows[r + 1]) * f
          if v < prune then
            drop[#drop + 1] = rows[r]
          else
            keep[#keep + 1] = string.format('%.17g', v)
            keep[#keep + 1] = rows[r]
          end
        end
        if #keep > 0 then bulk('ZADD', copy, keep) end
        if #drop > 0 then bulk('ZREM', copy, drop) end
        work = work + #rows / 2 + 1
      until cursor == '0' or work >= budget
      if cursor ~= '0' then
        redis.call('HSET', K_RESCALE, field, cursor)
        return false
      end
      redis.call('HDEL', K_RESCALE, field)
    end
  end
  -- every copy is complete: swap them in (UNLINK frees the old boards off the main thread)
  local skip = #prefix + 8
  for _, key in ipairs(redis.call('SMEMBERS', K_DECAYED_BOARDS)) do
    local id = string.sub(key, skip)
    local copy = prefix .. ':rescaled:' .. id
    redis.call('UNLINK', key)
    if redis.call('EXISTS', copy) == 1 then redis.call('RENAME', copy, key) end
    work = work + 1
  end
  redis.call('SET', K_LANDMARK, to)
  redis.call('DEL', K_RESCALE)
  cur_landmark = to
  return true
end
local rescaled = rescale_steps()
if cur_landmark ~= expected_landmark and cur_landmark ~= landmark then
  -- a rescale another plan started moved L elsewhere: this plan's values are against another L
  return {'conflict', 'landmark', cur_landmark}
end
local moves = landmark ~= '' and cur_landmark ~= '' and landmark ~= cur_landmark
if moves and rescaled then
  -- this plan moves L (from the L it read: its factor is relative to that) and no rescale is
  -- under way: start one
  local start = {'to', landmark, 'factor', factor, 'prune', prune_below}
  local skip = #prefix + 8
  for _, key in ipairs(redis.call('SMEMBERS', K_DECAYED_BOARDS)) do
    start[#start + 1] = 'c:' .. string.sub(key, skip)
    start[#start + 1] = '0'
  end
  bulk('HSET', K_RESCALE, start)
  rescale_steps()
  moves = landmark ~= cur_landmark
end
if moves then return {'more', work} end

-- 2b. window expiry, bucket by bucket in the order they leave the windows: bucket i of a window
--     of n buckets of b seconds leaves it when W reaches (i + n) * b. After expiring all buckets
--     that leave at one such moment T, W is set to T, so every board is exactly the contract at
--     the W readers see with it (the events applied so far, at clock T). A moment's buckets go
--     in one call (so one bucket bigger than the bound is one call); the next waits when the
--     call's work would pass the bound. (A jump past every bucket empties the boards at once.)
local function expire_all(target)
  -- When every live bucket of every window leaves by target (a jump of W longer than the longest
  -- window), the window boards end empty whatever the order: drop their keys (UNLINK frees big
  -- ones off the main thread) instead of subtracting row by row, if the keys fit in the bound.
  local keys = 0
  for j = 1, nw do
    local index_key = prefix .. ':buckets:' .. windows[j][1]
    local last = redis.call('ZRANGE', index_key, -1, -1, 'WITHSCORES')
    if #last > 0 then
      if (tonumber(last[2]) + windows[j][3]) * windows[j][2] > target then return 'no' end
      keys = keys + 2 * redis.call('ZCARD', index_key)
    end
  end
  if keys == 0 or keys > budget then return 'no' end
  if work > 0 and work + keys > budget then return 'later' end  -- (in the next call)
  local dropped = {}
  for j = 1, nw do
    local index_key = prefix .. ':buckets:' .. windows[j][1]
    for _, entry in ipairs(redis.call('ZRANGE', index_key, 0, -1)) do
      redis.call('UNLINK', prefix .. ':bucket:' .. entry)
      local board = string.sub(entry, 1, string.find(entry, '|', 1, true) - 1)
      if not dropped[board] then
        dropped[board] = true
        redis.call('UNLINK', prefix .. ':board:' .. board)
        changed(board)
      end
    end
    redis.call('DEL', index_key)
  end
  work = work + keys
  return 'done'
end
local function expire_steps(target)
  local whole = expire_all(target)
  if whole ~= 'no' then return whole == 'done' end
  while true do
    local at = nil
    for j = 1, nw do
      local first = redis.call('ZRANGE', prefix .. ':buckets:' .. windows[j][1], 0, 0, 'WITHSCORES')
      if #first > 0 then
        local t = (tonumber(first[2]) + windows[j][3]) * windows[j][2]
        if t <= target and (at == nil or t < at) then at = t end
      end
    end
    if at == nil then return true end
    local group, rows = {}, 0
    for j = 1, nw do
      local idx = at / windows[j][2] - windows[j][3]
      if idx == math.floor(idx) then
        local index_key = prefix .. ':buckets:' .. windows[j][1]
        for _, entry in ipairs(redis.call('ZRANGEBYSCORE', index_key, idx, idx)) do
          group[#group + 1] = entry
          rows = rows + redis.call('ZCARD', prefix .. ':bucket:' .. entry) + 1
        end
        group[#group + 1] = {index_key, idx}
      end
    end
    if work > 0 and work + rows > budget then return false end
    for _, entry in ipairs(group) do
      if type(entry) == 'table' then
        redis.call('ZREMRANGEBYSCORE', entry[1], entry[2], entry[2])
      else
        local sep = string.find(entry, '|', 1, true)
        local board = string.sub(entry, 1, sep - 1)
        local bkey = prefix .. ':bucket:' .. entry
        local bkey_board = prefix .. ':board:' .. board
        changed(board)
        local brows = redis.call('ZRANGE', bkey, 0, -1, 'WITHSCORES')
        -- in slices: one ZMSCORE, one ZADD and one ZREM each rather than a call per row (the
        -- same subtraction ZINCRBY does; milli-points are integers, exact in a double)
        for s = 1, #brows, 2000 do
          local e = math.min(s + 1999, #brows)
          local members = {}
          for r = s, e, 2 do members[#members + 1] = brows[r] end
          local cur = redis.call('ZMSCORE', bkey_board, unpack(members))
          local keep, drop = {}, {}
          for k, m in ipairs(members) do
            local left = tonumber(cur[k] or '0') - tonumber(brows[s + 2 * k - 1])
            if left > 0 then
              keep[#keep + 1] = string.format('%.17g', left)
              keep[#keep + 1] = m
            else
              drop[#drop + 1] = m
            end
          end
          if #keep > 0 then redis.call('ZADD', bkey_board, unpack(keep)) end
          if #drop > 0 then redis.call('ZREM', bkey_board, unpack(drop)) end
        end
        redis.call('UNLINK', bkey)
      end
    end
    work = work + rows
    if W == nil or at > W then
      W = at
      wm = string.format('%.17g', at)
      redis.call('SET', K_WM, wm)
    end
  end
end
local target = W
if max_ts ~= '' and (target == nil or tonumber(max_ts) > target) then target = tonumber(max_ts) end
if target and not expire_steps(target) then return {'more', work} end

-- 3. watermark W = the largest event time applied so far, across partitions and workers
if max_ts ~= '' and (W == nil or tonumber(max_ts) > W) then
  redis.call('SET', K_WM, max_ts)
  wm = max_ts
  W = tonumber(max_ts)
end
-- the first landmark (a later move is the rescale above)
if landmark ~= '' and cur_landmark == '' then redis.call('SET', K_LANDMARK, landmark) end

-- 3b. calendar periods. The live day/week/month boards (and <unit>:<community>) are the archives
--     of the period holding W (calendar: unit → "<index>|<label>"). When W enters a new period,
--     the live boards of the old one go and copies of the new one's archives (normally none yet:
--     no event was past W) take their place; the points section 5b adds to both from then on.
--     Retention: a unit keeping k periods drops every archive of index <= current - k, at most
--     1,000 per unit and call (the rest in the next ones), and refuses points for them (5b), as
--     an expired window bucket does. archives:<unit> lists every archive board by index,
--     periods:<unit> the labels of the base archives by their periods' ends (unix seconds; GET
--     /api/boards/<unit>/periods, and the winners' perks, section 10).
local moved_to = max_ts ~= '' and W ~= nil and tonumber(max_ts) == W
for _, u in ipairs(units) do
  local unit, keep, idx, label = u[1], u[2], u[3], u[4]
  local archives_key = prefix .. ':archives:' .. unit
  local stored = redis.call('HGET', K_CALENDAR, unit)
  local cur, cur_label = nil, nil
  if stored then
    local bar = string.find(stored, '|', 1, true)
    cur, cur_label = tonumber(string.sub(stored, 1, bar - 1)), string.sub(stored, bar + 1)
  end
  if moved_to and idx ~= '' and (cur == nil or tonumber(idx) > cur) then
    if cur ~= nil then
      for _, archive in ipairs(redis.call('ZRANGEBYSCORE', archives_key, cur, cur)) do
        local live = unit .. string.sub(archive, #unit + 2 + #cur_label)
        redis.call('UNLINK', prefix .. ':board:' .. live)
        changed(live)
      end
    end
    cur = tonumber(idx)
    for _, archive in ipairs(redis.call('ZRANGEBYSCORE', archives_key, cur, cur)) do
      local live = unit .. string.sub(archive, #unit + 2 + #label)
      redis.call('COPY', prefix .. ':board:' .. archive, prefix .. ':board:' .. live, 'REPLACE')
      changed(live)
    end
    redis.call('HSET', K_CALENDAR, unit, idx .. '|' .. label)
  end
  u[5] = cur
  if keep > 0 and cur ~= nil then
    local old = redis.call('ZRANGEBYSCORE', archives_key, '-inf', cur - keep, 'LIMIT', 0, 1000)
    local labels = {}
    for _, archive in ipairs(old) do
      redis.call('UNLINK', prefix .. ':board:' .. archive)
      if marks then redis.call('HDEL', K_CHANGES, archive) end
      if not string.find(archive, ':', 1, true) then
        labels[#labels + 1] = string.sub(archive, #unit + 2)
      end
    end
    if #old > 0 then bulk('ZREM', archives_key, old) end
    if #labels > 0 then bulk('ZREM', prefix .. ':periods:' .. unit, labels) end
  end
end

-- 4. window cutoffs at W (every bucket at or below them has been expired above)
for j = 1, nw do
  local cutoff = nil
  if W then cutoff = math.floor(W / windows[j][2]) - windows[j][3] end
  windows[j] = {windows[j][1], cutoff}
end
local rescale_factor = nil
if redis.call('EXISTS', K_RESCALE) == 1 then
  rescale_factor = tonumber(redis.call('HGET', K_RESCALE, 'factor'))
end

-- A negative delta is a retroactive bait throttle taking points back: a member it leaves
-- with nothing leaves the sorted set (boards hold members with points; ``eps``: a decayed
-- value's float residue counts as nothing).
local function add(key, delta, member, eps)
  local left = redis.call('ZINCRBY', key, delta, member)
  if string.sub(delta, 1, 1) == '-' and tonumber(left) <= (eps or 0) then
    redis.call('ZREM', key, member)
  end
end

-- 5. all-time boards
section('totals')
for _ = 1, tonumber(nxt()) do
  local key = prefix .. ':board:' .. nxt()
  for _ = 1, tonumber(nxt()) do
    local member, delta = nxt(), nxt()
    add(key, delta, member)
  end
end

-- 5b. archived calendar periods, a group per archive board (unit, period index, label, period
--     end, archive board; then member, delta rows), and the live board of what falls in W's
--     period. A period retention already dropped (or is dropping) gets nothing.
section('archives')
local n
for _ = 1, tonumber(nxt()) do
  local u, idx, label, ends, board = units[tonumber(nxt()) + 1], tonumber(nxt()), nxt(), nxt(), nxt()
  n = tonumber(nxt())
  local cur, keep = u[5], u[2]
  if cur == nil or keep == 0 or idx > cur - keep then
    local key, live_key = prefix .. ':board:' .. board, nil
    redis.call('ZADD', prefix .. ':archives:' .. u[1], 'NX', idx, board)
    if #board == #u[1] + 1 + #label then
      redis.call('ZADD', prefix .. ':periods:' .. u[1], 'NX', ends, label)
    end
    changed(board)
    if idx == cur then
      local live = u[1] .. string.sub(board, #u[1] + 2 + #label)
      live_key = prefix .. ':board:' .. live
      redis.call('SADD', K_BOARDS, live)
      changed(live)
    end
    for _ = 1, n do
      local member, delta = nxt(), nxt()
      add(key, delta, member)
      if live_key then add(live_key, delta, member) end
    end
  else
    i = i + 2 * n
  end
end

-- 6. window boards: add to the bucket while it is inside the window, and the sum of a batch's
--    live buckets to the board once per (board, member). A group per bucket (window index,
--    bucket index, board; then member, delta rows). Deltas are integer milli-points, exact in a
--    double, so summing them here loses nothing.
section('buckets')
local sums = {}  -- board → {board, its members in order, member → points}
local sum_order = {}
for _ = 1, tonumber(nxt()) do
  local wi, idx, board = tonumber(nxt()), nxt(), nxt()
  n = tonumber(nxt())
  local cutoff = windows[wi + 1][2]
  if cutoff == nil or tonumber(idx) > cutoff then
    local entry = board .. '|' .. idx
    local key = prefix .. ':bucket:' .. entry
    redis.call('ZADD', prefix .. ':buckets:' .. windows[wi + 1][1], idx, entry)
    local b = sums[board]
    if b == nil then
      b = {board, {}, {}}
      sums[board] = b
      sum_order[#sum_order + 1] = b
    end
    local members, points = b[2], b[3]
    for _ = 1, n do
      local member, delta = nxt(), nxt()
      add(key, delta, member)
      local prev = points[member]
      if prev == nil then
        members[#members + 1] = member
        points[member] = tonumber(delta)
      else
        points[member] = prev + tonumber(delta)
      end
    end
  else
    i = i + 2 * n
  end
end
for _, b in ipairs(sum_order) do
  local key, points = prefix .. ':board:' .. b[1], b[3]
  for _, member in ipairs(b[2]) do
    -- %d: integer milli-points print exactly (Lua's default number format keeps only 14 digits)
    add(key, string.format('%d', points[member]), member)
  end
end

-- 7. decayed boards (forward decay: values are stored against the landmark)
section('decayed')
for _ = 1, tonumber(nxt()) do
  local board = nxt()
  local key, rescaled = prefix .. ':board:' .. board, prefix .. ':rescaled:' .. board
  for _ = 1, tonumber(nxt()) do
    local member, delta = nxt(), nxt()
    local eps = math.abs(tonumber(delta)) * 1e-9
    add(key, delta, member, eps)
    if rescale_factor then
      -- a rescale is under way: its copy gets the value against the landmark it moves to
      add(rescaled,
          string.format('%.17g', tonumber(delta) * rescale_factor), member, eps * rescale_factor)
    end
  end
end
section('boards')
n = tonumber(nxt())
for _ = 1, n do
  local board = nxt()
  redis.call('SADD', K_BOARDS, board)
  -- the live feed's change marks: web processes diff a board only when its counter moved
  changed(board)
  if string.sub(board, 1, 7) == 'decayed' then
    redis.call('SADD', K_DECAYED_BOARDS, prefix .. ':board:' .. board)
  end
end
-- 7b. communities the plan admitted (within the cap: checked in section 1), and each member's
--     communities (explain reads only those boards)
if #admit > 0 then bulk('SADD', K_COMMUNITIES, admit) end
section('mcomm')
n = tonumber(nxt())
for _ = 1, n do
  local member, community = nxt(), nxt()
  redis.call('SADD', prefix .. ':mcomm:' .. member, community)
end

-- 8. de-duplication ids and diminishing-returns counters, as 16-byte fingerprint records
--    (leaderboard/fingerprint.py) appended to strings per (partition, day): ids:<p>:<day>:<part>
--    one record per id, drc:<p>:<period>:<part> one record per counted event of a pair (its
--    count is how often it occurs). A day's string is split into parts of at most PART_BYTES,
--    far below Redis's cap on a string (512 MB, which one busy partition-day could pass and
--    APPEND would then fail); the index (idparts/drcparts, score day * 1000 + part) lists them
--    for loading and for pruning whole days (section 11).
local PART_BYTES = 0  -- (the first field of the seen section: leaderboard/store/apply.py)
local function append_part(family, index_family, p, day, blob)
  local index = prefix .. ':' .. index_family .. ':' .. p
  local base = tonumber(day) * 1000
  local last = redis.call('ZREVRANGEBYSCORE', index, base + 999, base, 'WITHSCORES', 'LIMIT', 0, 1)
  local part = 0
  if #last > 0 then part = tonumber(last[2]) - base end
  local key = prefix .. ':' .. family .. ':' .. p .. ':' .. day .. ':' .. part
  if redis.call('STRLEN', key) + #blob > PART_BYTES then
    part = part + 1
    key = prefix .. ':' .. family .. ':' .. p .. ':' .. day .. ':' .. part
  end
  redis.call('APPEND', key, blob)
  redis.call('ZADD', index, base + part, day .. ':' .. part)
end
section('seen')
PART_BYTES = tonumber(nxt())
n = tonumber(nxt())
for _ = 1, n do
  local p, day = nxt(), nxt()
  append_part('ids', 'idparts', p, day, blob())
end
section('dr')
n = tonumber(nxt())
for _ = 1, n do
  local p, day = nxt(), nxt()
  append_part('drc', 'drcparts', p, day, blob())
end

-- 9. explain counters, points per post (top posts; only events that name a post) and pipeline stats
section('explain')
for _ = 1, tonumber(nxt()) do
  local key = prefix .. ':explain:' .. nxt()
  for _ = 1, tonumber(nxt()) do
    local f, delta = nxt(), nxt()
    redis.call('HINCRBY', key, f, delta)
  end
end
section('posts')
-- one sorted set per member and period of event time (top posts read the current and the
-- previous one). Writing period k drops period k - 2: no event can land there any more (a
-- period is longer than the dedupe horizon) and no read looks at it, so when the drop happens
-- never changes what anyone sees, and a rebuild gives the same top posts
n = tonumber(nxt())
-- writing period k of a member's per-period key drops period k - 2 (once per key and apply)
local function drop_two_before(family, member, period, dropped)
  local old = family .. member .. '|' .. string.format('%d', tonumber(period) - 2)
  if not dropped[old] then
    dropped[old] = true
    redis.call('UNLINK', prefix .. old)
  end
end
local dropped = {}
for _ = 1, n do
  local member, period, post, delta = nxt(), nxt(), nxt(), nxt()
  add(prefix .. ':posts:' .. member .. '|' .. period, delta, post)
  drop_two_before(':posts:', member, period, dropped)
end
-- 8c. display names and avatars (kind profile, leaderboard/events.py): field by field, the
--     latest by (event time, id) wins whatever the order the events arrive in ('' clears). Ids
--     compare byte by byte, as Python's str order does on UTF-8 (Lua's '>' follows the server's
--     locale: Redis sets LC_COLLATE from its environment).
local function bytes_after(a, b)
  for k = 1, math.min(#a, #b) do
    local x, y = string.byte(a, k), string.byte(b, k)
    if x ~= y then return x > y end
  end
  return #a > #b
end
section('profiles')
n = tonumber(nxt())
for _ = 1, n do
  local member, field, ts, id, value = nxt(), nxt(), nxt(), nxt(), nxt()
  local key = prefix .. ':profile:' .. member
  local at = redis.call('HGET', key, field .. '@')
  local newer = true
  if at then
    local bar = string.find(at, '|', 1, true)
    local at_ts, at_id = tonumber(string.sub(at, 1, bar - 1)), string.sub(at, bar + 1)
    newer = tonumber(ts) > at_ts or (tonumber(ts) == at_ts and bytes_after(id, at_id))
  end
  if newer then
    redis.call('HSET', key, field .. '@', ts .. '|' .. id)
    if value == '' then
      redis.call('HDEL', key, field)
    else
      redis.call('HSET', key, field, value)
    end
  end
end
section('stats')
n = tonumber(nxt())
for _ = 1, n do
  local f, delta = nxt(), nxt()
  redis.call('HINCRBY', K_STATS, f, delta)
end

-- 9b. comment-bait: the detector's state (written with the fence it matches), its decisions
--     (the member's throttle record and the alerts stream) and the points it withheld
section('bait')
n = tonumber(nxt())
local groups = {}
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
section('alerts')
local alerts_max = nxt()
n = tonumber(nxt())
local throttled = {}
for _ = 1, n do
  local member, group, record = nxt(), nxt(), nxt()
  redis.call('HSET', prefix .. ':throttle:' .. member, group, record)
  throttled[member] = true
  redis.call('XADD', K_ALERTS, '*', 'r', record)
end
-- capped here only while no deliverer's group reads the stream; with one, `kudos deliver` trims
-- what it acknowledged (lua/outbox_trim.lua) and never an alert it has not fanned out yet
if n > 0 and #redis.call('XINFO', 'GROUPS', K_ALERTS) == 0 then
  redis.call('XTRIM', K_ALERTS, 'MAXLEN', '~', alerts_max)
end
section('withheld')
-- per member and period of the interactions' event time, as posts (writing k drops k - 2); the
-- throttle records shown are those of the two periods of W, and older ones are dropped when the
-- member's record changes (a record is replaced whole, so when it is dropped changes nothing)
local period_s = tonumber(nxt())
n = tonumber(nxt())
local gone = {}
for _ = 1, n do
  local member, period, group, delta = nxt(), nxt(), nxt(), nxt()
  redis.call('HINCRBY', prefix .. ':withheld:' .. member .. '|' .. period, group, delta)
  drop_two_before(':withheld:', member, period, gone)
end
if W and next(throttled) then
  local k = string.format('%d', math.floor(W / period_s))
  local cutoff = (tonumber(k) - 1) * period_s
  for member, _ in pairs(throttled) do
    local key = prefix .. ':throttle:' .. member
    -- (once per member and period of W: field '~k' remembers the last; records are read whole)
    if redis.call('HGET', key, '~k') ~= k then
      local rows = redis.call('HGETALL', key)
      for r = 1, #rows, 2 do
        if rows[r] ~= '~k' then
          local rec = cjson.decode(rows[r + 1])
          local t = math.max(tonumber(rec['detected_at']) or 0, tonumber(rec['ended_at']) or 0,
                             tonumber(rec['retroactive_at']) or 0)
          if t < cutoff then redis.call('HDEL', key, rows[r]) end
        end
      end
      redis.call('HSET', key, '~k', k)
    end
  end
end

-- 10. perks: each rule is checked against the boards as this batch left them, and a member who
--     qualifies is unlocked once, ever (perks:<member> has no entry for the rule yet), in the same atomic step as
--     the scores that earned it, so replays, redeliveries and crashes never unlock twice. Rank
--     rules look at every row scoring at least the Nth row (ties at the edge included), and only
--     when the board changed since the rule last looked (perkseen); score-only rules at the
--     members this batch touched on that board (a score can only rise when its member is touched).
--     A rank rule's check takes at most cap = N + max_ties rows: a tie at the Nth score that would
--     pass it is left out whole (leaderboard/perks.py, "Ties"), and recorded in perkties.
section('perks')
local nr = tonumber(nxt())
local half_life = tonumber(nxt())
local serving_prefix = nxt()  -- the namespace's own: unlocks (perks:<member>) are serving state
local rules = {}
for r = 1, nr do
  local rule = {nxt(), nxt(), nxt(), nxt(), nxt(), nxt(), tonumber(nxt()), {}, nxt() == 'close'}
  for c = 1, tonumber(nxt()) do rule[8][c] = nxt() end
  rules[r] = rule
end
section('end')
if i ~= #A + 1 then
  error('apply protocol: ' .. (#A + 1 - i) .. ' arguments left after the last section')
end
-- The rows that pass a rank rule on board key ``key`` at one check: every row scoring at least the
-- Nth row (and ``thr``, stored units, if set), at most cap; a tie at the Nth score that would pass
-- cap is left out whole, and recorded in perkties under ``rid``.
-- Hidden members (kudos hide, lua/hidden.lua) neither qualify nor count: the Nth is the Nth visible.
local hidden_ids = nil
local function hidden_view(key)
  if hidden_ids == nil then hidden_ids = HID.ids(K_HIDDEN) end
  return HID.view(key, hidden_ids)
end
local function rank_cands(key, rid, board, n, thr, cap)
  local view = hidden_view(key)
  local nth = HID.range(view, key, n - 1, n - 1)
  local lo = '-inf'
  if #nth > 0 then lo = nth[2] end
  if thr and (lo == '-inf' or thr > tonumber(lo)) then lo = string.format('%.17g', thr) end
  -- every row at or above the Nth score has competition rank <= N
  local extra = view and view.n or 0
  local cands = HID.drop(view, redis.call('ZREVRANGEBYSCORE', key, '+inf', lo, 'LIMIT', 0,
                                          cap + 1 + extra))
  if #cands > cap then
    -- only a tie at the Nth score gets here (fewer than N rows are above it): all or none
    -- of a tie, so no member name or arrival order picks; the rows above it still qualify
    local tied = redis.call('ZCOUNT', key, lo, lo) - (lo == '-inf' and 0 or HID.equal(view, lo))
    cands = HID.drop(view, redis.call('ZREVRANGEBYSCORE', key, '+inf', '(' .. lo))
    redis.call('HSET', K_PERKTIES, rid, cjson.encode({
      at = W, board = board, rank = #cands + 1, tied = tied, cap = cap}))
  end
  return cands
end
-- Unlock rule ``rid`` for each of ``cands`` still qualifying on ``key`` (``thr`` in stored units)
-- that has no unlock under ``field`` yet; ``period``: a winners' perk (its label; '' none).
local function unlock(cands, key, rid, field, board, thr, scale, decayed, title, payload, period)
  local view = hidden_view(key)
  for _, m in ipairs(cands) do
    local pkey = serving_prefix .. ':perks:' .. m
    if redis.call('HEXISTS', pkey, field) == 0 and not HID.hidden(view, m) then
      local s = redis.call('ZSCORE', key, m)
      if s and (thr == nil or tonumber(s) >= thr) then
        local rank = redis.call('ZCOUNT', key, '(' .. s, '+inf') + 1 - HID.above(view, s)
        local ident = rid .. '\31' .. m
        if period ~= '' then ident = ident .. '\31' .. period end
        local uid = 'unl_' .. redis.sha1hex(ident)
        local points = tonumber(s) * scale
        if not decayed then points = tonumber(s) / 1000 end  -- exact: 12.0, not 12.000000000000002
        local record = {
          id = uid, rule = rid, title = title, member = m, board = board, rank = rank,
          score = points, at = W, payload = cjson.decode(payload)}
        if period ~= '' then record.period = period end
        redis.call('HSET', pkey, field, cjson.encode(record))
        -- (not capped: one entry per unlock, ever, like the perks hashes themselves)
        local entry = {'id', uid, 'rule', rid, 'title', title, 'member', m, 'board', board,
                       'rank', rank, 'score', string.format('%.17g', points), 'at', W,
                       'payload', payload}
        if period ~= '' then
          entry[#entry + 1] = 'period'
          entry[#entry + 1] = period
        end
        redis.call('XADD', K_PERKBOX, '*', unpack(entry))
      end
    end
  end
end
-- A period closes for its winners once every partition is past its end plus the grace (a
-- partition catching up must not lose its late events), and at the latest once W is a further
-- ``idle`` seconds past that (a partition with no new events holds it no longer). A partition
-- that has not carried an event yet counts as behind (a worker starting on a backlog may apply
-- one partition far ahead of another before the other's first event); with the count unknown,
-- only the partitions that have carried events count.
-- Looked at whenever W moves or a partition catches up (the last partition to pass a close may
-- do so behind W, and W may never move again: the end of a replay), with winners' rules only.
local closed_at = nil
local has_close, caught_up = false, false
for _, rule in ipairs(rules) do if rule[9] then has_close = true end end
for _, part in ipairs(parts) do if part[3] ~= '' then caught_up = true end end
if has_close and W and (moved_to or caught_up) then
  local low = nil
  local seen = 0
  local pwms = redis.call('HGETALL', K_PWM)
  local mine = {}
  for _, part in ipairs(parts) do if part[3] ~= '' then mine[part[1]] = tonumber(part[3]) end end
  for j = 1, #pwms, 2 do
    local v = mine[pwms[j]] or tonumber(pwms[j + 1])
    mine[pwms[j]] = nil
    seen = seen + 1
    if low == nil or v < low then low = v end
  end
  for _, v in pairs(mine) do
    seen = seen + 1
    if low == nil or v < low then low = v end
  end
  if seen < partitions_total then low = W - idle end
  closed_at = math.max(low or W, W - idle)
end
if nr > 0 and W then
  local L = tonumber(redis.call('GET', K_LANDMARK) or '0')
  for _, rule in ipairs(rules) do
    local rid, board, rank_max, score_min, title, payload = unpack(rule, 1, 6)
    local cap, cands = rule[7], rule[8]
    local thr = nil  -- the threshold in stored units; milli-point boards compare exact integers
    if rule[9] then
      -- a winners' perk: each period of its calendar board closed since it last looked, on that
      -- period's archive, once (at most 50 periods a call: the rest at the next move of W)
      local unit = string.match(board, '^[a-z]+')
      local suffix = string.sub(board, #unit + 1)
      if closed_at and unit_named[unit] then
        if score_min ~= '' then thr = tonumber(score_min) end
        local last = redis.call('HGET', K_PERKCLOSED, rid)
        local from = '-inf'
        if last then from = '(' .. last end
        local found = redis.call('ZRANGEBYSCORE', prefix .. ':periods:' .. unit, from,
                                 closed_at - grace, 'WITHSCORES', 'LIMIT', 0, 50)
        for p = 1, #found, 2 do
          local label = found[p]
          local archive = unit .. '@' .. label .. suffix
          local key = prefix .. ':board:' .. archive
          local winners = rank_cands(key, rid, archive, tonumber(rank_max), thr, cap)
          unlock(winners, key, rid, rid .. '@' .. label, archive, thr, 0.001, false, title,
                 payload, label)
          redis.call('HSET', K_PERKCLOSED, rid, found[p + 1])
        end
      end
    else
      local key = prefix .. ':board:' .. board
      -- points = stored * scale (decayed values are stored against the landmark L)
      local decayed = string.sub(board, 1, 7) == 'decayed'
      local scale = 0.001
      if decayed then scale = 0.001 * 2 ^ ((L - W) / half_life) end
      if score_min ~= '' then
        thr = tonumber(score_min)
        if decayed then thr = thr * 0.001 / scale end
      end
      if rank_max ~= '' then
        cands = {}
        local mark = redis.call('HGET', K_CHANGES, board) or '0'
        if redis.call('HGET', K_PERKSEEN, rid) ~= mark then
          redis.call('HSET', K_PERKSEEN, rid, mark)
          cands = rank_cands(key, rid, board, tonumber(rank_max), thr, cap)
        end
      end
      unlock(cands, key, rid, rid, board, thr, scale, decayed, title, payload, '')
    end
  end
end

-- 11. advance fences last (same atomic call), prune what fell behind the dedupe horizon
for _, part in ipairs(parts) do
  local p, fence, pwm, seen_cut, dr_cut = part[1], part[2], part[3], part[4], part[5]
  redis.call('HSET', K_FENCE, p, fence)
  if part[6] == '' then
    redis.call('HDEL', K_FENCEPART, p)
  else
    redis.call('HSET', K_FENCEPART, p, part[6])
  end
  if pwm ~= '' then redis.call('HSET', K_PWM, p, pwm) end
  local function prune_parts(family, index_family, cut)
    local index = prefix .. ':' .. index_family .. ':' .. p
    local bound = '(' .. string.format('%d', cut * 1000)
    local old = redis.call('ZRANGEBYSCORE', index, '-inf', bound)
    for _, name in ipairs(old) do redis.call('UNLINK', prefix .. ':' .. family .. ':' .. p .. ':' .. name) end
    if #old > 0 then redis.call('ZREMRANGEBYSCORE', index, '-inf', bound) end
  end
  if seen_cut ~= '' then
    -- whole days of ids (the planner's rule); and what is left of a namespace's ids from before
    -- fingerprints (seen:<p>, id → ts), drained by the same whole-day rule
    local cut = math.floor(tonumber(seen_cut) / 86400)
    prune_parts('ids', 'idparts', cut)
    redis.call('ZREMRANGEBYSCORE', prefix .. ':seen:' .. p, '-inf', '(' .. string.format('%d', cut * 86400))
  end
  if dr_cut ~= '' then
    prune_parts('drc', 'drcparts', tonumber(dr_cut))
    -- legacy dr hashes (before fingerprints), listed in drdays
    local days_key = prefix .. ':drdays:' .. p
    local old = redis.call('ZRANGEBYSCORE', days_key, '-inf', '(' .. dr_cut)
    for _, day in ipairs(old) do redis.call('UNLINK', prefix .. ':dr:' .. p .. ':' .. day) end
    if #old > 0 then redis.call('ZREMRANGEBYSCORE', days_key, '-inf', '(' .. dr_cut) end
  end
end
return {'ok', wm or '', work}
