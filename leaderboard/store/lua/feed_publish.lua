-- Live feed: publish one channel's next frame with a compare-and-set on its seq, so that several
-- web processes polling the same board append each change exactly once and agree on the numbers.
-- Also appends rank events to the member channels they concern (each its own next seq), but only
-- for members someone is watching (the ``watched`` zset, refreshed by web processes): the others'
-- channels would be written for nobody and never pruned.
-- KEYS: feedepoch, watched, the channel's feed hash and log, then (feed hash, log) of each
--       member channel and of each board channel below, in ARGV order.
-- ARGV: channel ('' = member events only), expected_seq, epoch the plan was made in,
--       src, snapshot, record ('' = no frame: only remember that the board was looked at),
--       maxlen, member_maxlen, now (unix seconds), n, (member, record) * n,
--       [nb, (board, record) * nb]
local channel, expected, epoch = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local src, snap, record, maxlen, mmax = ARGV[4], ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local seq = 0
if channel ~= '' then  -- '': only member events (perks, alerts), no channel of its own
  -- a diff made before Redis lost the feed (new epoch) must not land in the new history
  if (redis.call('GET', KEYS[1]) or '') ~= epoch then return {'conflict', -1} end
  local fkey = KEYS[3]
  local cur = tonumber(redis.call('HGET', fkey, 'seq') or '0')
  if cur ~= expected then return {'conflict', cur} end
  seq = cur
  if record ~= '' then
    seq = cur + 1
    local log = KEYS[4]
    local last = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)
    if #last > 0 and tonumber(string.match(last[1][1], '^%d+')) >= seq then
      redis.call('DEL', log)  -- frames of a lost history (the seq went back): not resumable
    end
    redis.call('XADD', log, 'MAXLEN', '~', maxlen, seq .. '-1',
               'r', record)
  end
  redis.call('HSET', fkey, 'seq', seq, 'src', src, 'snap', snap, 'at', ARGV[9])
end
local now = tonumber(ARGV[9])
local n = tonumber(ARGV[10])
local i, k = 11, 5
for _ = 1, n do
  local member, rec = ARGV[i], ARGV[i + 1]; i = i + 2
  -- member '' is the bait alerts channel: always written (capped like any member channel)
  local watched = member == '' or redis.call('ZSCORE', KEYS[2], member)
  if watched == true or (watched and tonumber(watched) >= now) then
    local s = redis.call('HINCRBY', KEYS[k], 'seq', 1)
    redis.call('XADD', KEYS[k + 1], 'MAXLEN', '~', mmax, s .. '-1', 'r', rec)
  end
  k = k + 2
end
-- events for board channels (perk unlocks): each the board channel's next frame, a record with no
-- changes; the snapshot stays as it is, so a web process publishing meanwhile just retries
n = tonumber(ARGV[i] or '0')
i = i + 1
for _ = 1, n do
  local board, rec = ARGV[i], ARGV[i + 1]; i = i + 2
  local s = redis.call('HINCRBY', KEYS[k], 'seq', 1)
  redis.call('XADD', KEYS[k + 1], 'MAXLEN', '~', maxlen, s .. '-1', 'r', rec)
  k = k + 2
end
return {'ok', seq}
