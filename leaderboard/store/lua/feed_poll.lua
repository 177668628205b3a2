-- Live feed: read one channel's shared state in one atomic, read-only call (see web/feed.py).
-- Board channels ('board'): the epoch, the channel's seq, the frames after the caller's seq, and,
-- when the board changed since the last publish (its change counter; for a decayed board also the
-- watermark, since every displayed value moves with it), the current top rows to diff against the
-- published snapshot.
-- Member channels ('members'): per member, seq, snapshot, frames after the caller's seq and, when
-- asked for that member, the current (rank, stored score) on each listed board.
-- KEYS: feedepoch, wm, landmark, then per mode (below), then hidden, then live (the generation
-- pointer). Hidden members (lua/hidden.lua) are left out of the rows, ranks and sizes.
-- ARGV: mode, max_frames, ..., then the generation assumed.
-- the generation: the last KEY is the pointer, the last ARGV the generation the caller named the
-- keys in ('' : pinned, no check); 'stale' (nothing read) when a rebuild switch moved it
if ARGV[#ARGV] ~= '' and (redis.call('GET', KEYS[#KEYS]) or '0') ~= ARGV[#ARGV] then
  return 'stale'
end
local mode, maxf = ARGV[1], tonumber(ARGV[2])
local epoch = redis.call('GET', KEYS[1]) or ''
local wm = redis.call('GET', KEYS[2]) or ''
local lm = redis.call('GET', KEYS[3]) or ''
local hidden_ids = HID.ids(KEYS[#KEYS - 1])

local function frames_after(log, after, seq)
  if after < 0 or after >= seq then return {} end
  return redis.call('XRANGE', log, (after + 1) .. '-0', '+', 'COUNT', maxf)
end
local function first_retained(log)
  local first = redis.call('XRANGE', log, '-', '+', 'COUNT', 1)
  if #first == 0 then return '' end
  return first[1][1]
end

if mode == 'board' then
  -- KEYS[4..]: the channel's feed hash and log, changes, the board
  -- ARGV[3..]: board, depth, after_seq (-1: also return the snapshot), src ('' : the board's
  -- own change mark; else the change mark of a board kept as shards, whose rows the caller
  -- reads from the shards: none are read here)
  local board, depth, after = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
  local log, key = KEYS[5], KEYS[7]
  local st = redis.call('HMGET', KEYS[4], 'seq', 'src', 'snap', 'at')
  local seq = tonumber(st[1] or '0')
  local src = ARGV[6]
  local own = src == ''
  if own then
    src = redis.call('HGET', KEYS[6], board) or '0'
    if string.sub(board, 1, 7) == 'decayed' then src = src .. '@' .. wm end
  end
  local changed = src ~= (st[2] or '')
  local snap = ''
  if after < 0 or changed then snap = st[3] or '' end
  local rows = {}
  local view = HID.view(key, hidden_ids)
  if changed and own then rows = HID.range(view, key, 0, depth - 1) end
  local size = HID.size(view, key)
  return {epoch, wm, lm, seq, src, changed and 1 or 0, snap, frames_after(log, after, seq),
          rows, size, first_retained(log), st[4] or ''}
end

-- 'members': ARGV[3..]: nboards, nmembers, (member, after_seq, want_standing 1/0)...
--            (member '' is the ``alerts`` channel, which has no standing)
--            KEYS[4..]: the nboards boards, then per member its feed hash and log
local nb, nm = tonumber(ARGV[3]), tonumber(ARGV[4])
local i, k = 5, 4 + nb
local out = {epoch, wm, lm}
for _ = 1, nm do
  local member, after, want = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2] == '1'; i = i + 3
  local log = KEYS[k + 1]
  local st = redis.call('HMGET', KEYS[k], 'seq', 'snap')
  k = k + 2
  local seq = tonumber(st[1] or '0')
  local standing = {}
  if want then
    for j = 1, nb do
      local score = redis.call('ZSCORE', KEYS[3 + j], member)
      local view = nil
      if score then view = HID.view(KEYS[3 + j], hidden_ids) end
      if score and not HID.hidden(view, member) then
        standing[#standing + 1] = redis.call('ZCOUNT', KEYS[3 + j], '(' .. score, '+inf') + 1
          - HID.above(view, score)
        standing[#standing + 1] = score
      else
        standing[#standing + 1] = 0
        standing[#standing + 1] = ''
      end
    end
  end
  out[#out + 1] = {seq, st[2] or '', frames_after(log, after, seq), standing,
                   first_retained(log)}
end
return out
