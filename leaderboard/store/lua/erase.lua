-- Erase one member (kudos erase, the right to erasure; leaderboard/moderation.py), atomically
-- with the tombstone that keeps them out from then on: an apply planned before this call carries
-- the old erasure count and is refused (apply.lua, section erasures), so no batch can write the
-- member back between the removal and the tombstone.
-- Removes the member's row from every base board and community board of theirs (mcomm), every
-- archived calendar period (periods:<unit> × those communities), every live window bucket
-- (buckets:<window>, index range), a decayed board's rescale copy; and deletes their explain,
-- profile, throttle, communities and unlock hashes and their posts and withheld periods. Bumps
-- the change mark of every board they left (the live feed re-reads it).
-- KEYS: tombstones, erasures, changes, wm, perkfanout, then live (the generation pointer).
-- ARGV: member, tombstone, the generation's key prefix, the serving prefix, seconds per posts
--       period, the number of base boards and their ids, the number of windows and their names,
--       the number of calendar units and their names; then the generation assumed.
-- Returns {rows removed, unlock ids deleted (for the caller's outbox and webhook clean-up),
-- 1 if the tombstone is new (0: erased before)}.
if ARGV[#ARGV] ~= '' and (redis.call('GET', KEYS[#KEYS]) or '0') ~= ARGV[#ARGV] then
  return 'stale'
end
local K_TOMBSTONES, K_ERASURES, K_CHANGES, K_WM, K_FANOUT = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local member, stone, prefix, serving = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local posts_period = tonumber(ARGV[5])
local i = 6
local function list()
  local n = tonumber(ARGV[i])
  local out = {}
  for j = 1, n do out[j] = ARGV[i + j] end
  i = i + n + 1
  return out
end
local base, windows, units = list(), list(), list()

local new = redis.call('SADD', K_TOMBSTONES, stone)
if new == 1 then redis.call('INCR', K_ERASURES) end

local mcomm_key = prefix .. ':mcomm:' .. member
local suffixes = {''}
for _, c in ipairs(redis.call('SMEMBERS', mcomm_key)) do suffixes[#suffixes + 1] = ':' .. c end

local removed = 0
local function drop(key, board)
  if redis.call('ZREM', key, member) == 1 then
    removed = removed + 1
    if board then redis.call('HINCRBY', K_CHANGES, board, 1) end
  end
end

for _, b in ipairs(base) do
  for _, s in ipairs(suffixes) do
    drop(prefix .. ':board:' .. b .. s, b .. s)
    drop(prefix .. ':rescaled:' .. b .. s, nil)
  end
end
for _, unit in ipairs(units) do
  for _, label in ipairs(redis.call('ZRANGE', prefix .. ':periods:' .. unit, 0, -1)) do
    for _, s in ipairs(suffixes) do
      local archive = unit .. '@' .. label .. s
      drop(prefix .. ':board:' .. archive, archive)
    end
  end
end
for _, w in ipairs(windows) do
  local index = prefix .. ':buckets:' .. w
  local lo = redis.call('ZRANGE', index, 0, 0, 'WITHSCORES')
  local hi = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
  if #lo > 0 then
    for k = tonumber(lo[2]), tonumber(hi[2]) do
      for _, s in ipairs(suffixes) do
        drop(prefix .. ':bucket:' .. w .. s .. '|' .. k, nil)
      end
    end
  end
end

-- posts and withheld points, one key per 30-day period of event time: every period up to W's
-- (about 700 since 1970, most of them absent)
local wm = tonumber(redis.call('GET', K_WM) or '0')
for k = 0, math.floor(wm / posts_period) + 1 do
  redis.call('UNLINK', prefix .. ':posts:' .. member .. '|' .. k,
             prefix .. ':withheld:' .. member .. '|' .. k)
end

local perks_key = serving .. ':perks:' .. member
local uids = {}
for _, rec in ipairs(redis.call('HVALS', perks_key)) do
  local ok, r = pcall(cjson.decode, rec)
  if ok and type(r) == 'table' and type(r.id) == 'string' then uids[#uids + 1] = r.id end
end
for _, uid in ipairs(uids) do redis.call('HDEL', K_FANOUT, uid) end
redis.call('UNLINK', prefix .. ':explain:' .. member, prefix .. ':profile:' .. member,
           prefix .. ':throttle:' .. member, mcomm_key, perks_key)
return {removed, uids, new}
