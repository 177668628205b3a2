-- Hidden members (kudos hide; leaderboard/moderation.py): a library, not a script. It is put in
-- front of every script that reads board rows or ranks (leaderboard/store/scripts.py), which pass
-- the ``hidden`` hash in KEYS. A hidden member's points stay on the boards, exact; every read
-- leaves them out and ranks the others as if they were not there.
-- HID.view(key, ids): the hidden members on board ``key`` (nil when none of ``ids`` is on it,
-- the usual case: one ZMSCORE). The rest take that view (nil: nothing hidden) and answer in
-- visible terms: rows, positions, ranks and the size without the hidden rows.
-- Cost: one ZMSCORE of the hidden ids and one ZREVRANK per hidden member on the board
-- (at most MAX_HIDDEN, leaderboard/moderation.py); a rank is then a bisection of their scores.
local HID = {}

function HID.ids(hidden_key)
  return redis.call('HKEYS', hidden_key)
end

function HID.view(key, ids)
  if #ids == 0 then return nil end
  local got = redis.call('ZMSCORE', key, unpack(ids))
  local view = {n = 0, set = {}, scores = {}, pos = {}}
  for j, s in ipairs(got) do
    if s then
      local m = ids[j]
      view.n = view.n + 1
      view.set[m] = true
      view.scores[#view.scores + 1] = tonumber(s)
      view.pos[#view.pos + 1] = redis.call('ZREVRANK', key, m)
    end
  end
  if view.n == 0 then return nil end
  table.sort(view.pos)
  table.sort(view.scores)
  return view
end

-- how many hidden scores are <= s (``le``) or < s: bisection of the scores, ascending
local function count_below(view, s, le)
  local lo, hi = 0, #view.scores
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local h = view.scores[mid + 1]
    if h < s or (le and h == s) then lo = mid + 1 else hi = mid end
  end
  return lo
end

-- hidden rows scoring strictly more than ``s`` (a number or an exact score string)
function HID.above(view, s)
  if not view then return 0 end
  return #view.scores - count_below(view, tonumber(s), true)
end

-- hidden rows scoring exactly ``s``
function HID.equal(view, s)
  if not view then return 0 end
  s = tonumber(s)
  return count_below(view, s, true) - count_below(view, s, false)
end

-- hidden rows before raw position ``p`` (ZREVRANGE order)
function HID.before(view, p)
  if not view then return 0 end
  local c = 0
  for _, q in ipairs(view.pos) do if q < p then c = c + 1 end end
  return c
end

-- the raw position of the visible row at position ``v``
function HID.raw(view, v)
  if not view then return v end
  local r = v
  for _, q in ipairs(view.pos) do
    if q <= r then r = r + 1 else break end
  end
  return r
end

-- the visible rows start..stop (positions, ZREVRANGE order), flat member, score
function HID.range(view, key, start, stop)
  if not view then return redis.call('ZREVRANGE', key, start, stop, 'WITHSCORES') end
  if stop < start then return {} end
  local from = HID.raw(view, start)
  local rows = redis.call('ZREVRANGE', key, from, from + (stop - start) + view.n, 'WITHSCORES')
  local out = {}
  for r = 1, #rows, 2 do
    if #out >= 2 * (stop - start + 1) then break end
    if not view.set[rows[r]] then
      out[#out + 1] = rows[r]
      out[#out + 1] = rows[r + 1]
    end
  end
  return out
end

-- ``members`` (a list) without the hidden ones
function HID.drop(view, members)
  if not view then return members end
  local out = {}
  for _, m in ipairs(members) do if not view.set[m] then out[#out + 1] = m end end
  return out
end

function HID.size(view, key)
  return redis.call('ZCARD', key) - (view and view.n or 0)
end

function HID.hidden(view, m)
  return view ~= nil and view.set[m] == true
end
