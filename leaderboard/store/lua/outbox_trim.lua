-- Trim an outbox stream (KEYS[1]: perkbox or alerts) to its newest ARGV[1] entries, removing only
-- entries every consumer group on it has acknowledged, at most ARGV[2] of them per call, and the
-- fan-out marks of the entries it removes (KEYS[2]: perkfanout or alertfanout): a mark only stops
-- a redelivered entry from fanning out twice, and a trimmed entry is never delivered again. The
-- entry's id is its field ARGV[3] ('id'), or the "id" of the JSON record in that field ('r').
-- Returns {removed, more, ids}: more = 1 when entries past the keep may still be trimmed (call
-- again); ids, the entries' ids whose marks it deleted (a namespace kept as shards keeps its marks
-- in another slot than the shard's outbox: the caller deletes them there).
-- An entry a group has not read yet (after its last-delivered-id) or has read but not acknowledged
-- (its oldest pending entry onwards) is never removed: that would lose an unlock or an alert no
-- deliverer has fanned out. A stream with no group is left alone: the first deliverer's group
-- reads it from the start.
local key, marks, keep, step = KEYS[1], KEYS[2], tonumber(ARGV[1]), tonumber(ARGV[2])
local id_field = ARGV[3]
local len = redis.call('XLEN', key)
if len <= keep then return {0, 0, {}} end
local groups = redis.call('XINFO', 'GROUPS', key)
if #groups == 0 then return {0, 0, {}} end

-- stream ids as {ms, seq, text}; ms (13 digits) and seq are exact in a double
local function id(text, bump)
  local ms, seq = string.match(text, '^(%d+)-(%d+)$')
  seq = tonumber(seq) + (bump or 0)
  return {tonumber(ms), seq, ms .. '-' .. tostring(seq)}
end
local function before(a, b)
  return a[1] < b[1] or (a[1] == b[1] and a[2] < b[2])
end

-- the first entry some group still needs
local need = nil
for _, g in ipairs(groups) do
  local f = {}
  for j = 1, #g, 2 do f[g[j]] = g[j + 1] end
  local first = id(f['last-delivered-id'], 1)
  if tonumber(f['pending']) > 0 then
    -- pending entries are at or before last-delivered-id: the oldest is the bound
    first = id(redis.call('XPENDING', key, f['name'])[2])
  end
  if need == nil or before(first, need) then need = first end
end

-- the oldest entries past the keep, a step at a time
local excess = math.min(len - keep, step)
local oldest = redis.call('XRANGE', key, '-', '+', 'COUNT', excess + 1)
local cut
if #oldest > excess then
  cut = id(oldest[excess + 1][1])
else
  cut = id(oldest[#oldest][1], 1)
end
if before(need, cut) then cut = need end
local gone = {}
for _, entry in ipairs(redis.call('XRANGE', key, '-', '(' .. cut[3], 'COUNT', step)) do
  local f = entry[2]
  for j = 1, #f, 2 do
    if f[j] == id_field then
      local uid = f[j + 1]
      if id_field == 'r' then
        -- (an undecodable record has no mark to delete; it must not stop every later trim)
        local ok, rec = pcall(cjson.decode, uid)
        uid = ok and type(rec) == 'table' and rec['id'] or nil
      end
      if type(uid) == 'string' then gone[#gone + 1] = uid end
    end
  end
end
if #gone > 0 then redis.call('HDEL', marks, unpack(gone)) end
local removed = redis.call('XTRIM', key, 'MINID', cut[3])
local more = 0
if removed == excess and len - removed > keep then more = 1 end
return {removed, more, gone}
