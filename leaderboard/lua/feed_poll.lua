-- Live feed: read one channel's shared state in one atomic, read-only call (see web/feed.py).
-- Board channels ('board'): the epoch, the channel's seq, the frames after the caller's seq, and,
-- when the board changed since the last publish (its change counter; for a decayed board also the
-- watermark, since every displayed value moves with it), the current top rows to diff against the
-- published snapshot.
-- Member channels ('members'): per member, seq, snapshot, frames after the caller's seq and, when
-- asked for that member, the current (rank, stored score) on each listed board.
-- ARGV: prefix, mode, max_frames, ...
local prefix, mode, maxf = ARGV[1], ARGV[2], tonumber(ARGV[3])
local epoch = redis.call('GET', prefix .. ':feedepoch') or ''
local wm = redis.call('GET', prefix .. ':wm') or ''
local lm = redis.call('GET', prefix .. ':landmark') or ''

local function frames_after(channel, after, seq)
  if after < 0 or after >= seq then return {} end
  return redis.call('XRANGE', prefix .. ':feedlog:' .. channel, (after + 1) .. '-0', '+',
                    'COUNT', maxf)
end
local function first_retained(channel)
  local first = redis.call('XRANGE', prefix .. ':feedlog:' .. channel, '-', '+', 'COUNT', 1)
  if #first == 0 then return '' end
  return first[1][1]
end

if mode == 'board' then
  -- ARGV[4..]: board, depth, after_seq (-1: also return the snapshot)
  local board, depth, after = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
  local channel = 'board:' .. board
  local st = redis.call('HMGET', prefix .. ':feed:' .. channel, 'seq', 'src', 'snap', 'at')
  local seq = tonumber(st[1] or '0')
  local src = redis.call('HGET', prefix .. ':changes', board) or '0'
  if string.sub(board, 1, 7) == 'decayed' then src = src .. '@' .. wm end
  local changed = src ~= (st[2] or '')
  local snap = ''
  if after < 0 or changed then snap = st[3] or '' end
  local key = prefix .. ':board:' .. board
  local rows = {}
  if changed then rows = redis.call('ZREVRANGE', key, 0, depth - 1, 'WITHSCORES') end
  local size = redis.call('ZCARD', key)
  return {epoch, wm, lm, seq, src, changed and 1 or 0, snap, frames_after(channel, after, seq),
          rows, size, first_retained(channel), st[4] or ''}
end

-- 'members': ARGV[4..]: nboards, boards..., nmembers, (member, after_seq, want_standing 1/0)...
--            (member '' is the ``alerts`` channel, which has no standing)
local i = 4
local nb = tonumber(ARGV[i]); i = i + 1
local boards = {}
for j = 1, nb do boards[j] = ARGV[i]; i = i + 1 end
local nm = tonumber(ARGV[i]); i = i + 1
local out = {epoch, wm, lm}
for _ = 1, nm do
  local member, after, want = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2] == '1'; i = i + 3
  local channel = 'member:' .. member
  if member == '' then channel = 'alerts' end  -- the bait alerts channel: events only
  local st = redis.call('HMGET', prefix .. ':feed:' .. channel, 'seq', 'snap')
  local seq = tonumber(st[1] or '0')
  local standing = {}
  if want then
    for j = 1, nb do
      local score = redis.call('ZSCORE', prefix .. ':board:' .. boards[j], member)
      if score then
        standing[#standing + 1] = redis.call('ZCOUNT', prefix .. ':board:' .. boards[j],
                                             '(' .. score, '+inf') + 1
        standing[#standing + 1] = score
      else
        standing[#standing + 1] = 0
        standing[#standing + 1] = ''
      end
    end
  end
  out[#out + 1] = {seq, st[2] or '', frames_after(channel, after, seq), standing,
                   first_retained(channel)}
end
return out
