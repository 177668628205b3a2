-- Live feed: publish one channel's next frame with a compare-and-set on its seq, so that several
-- web processes polling the same board append each change exactly once and agree on the numbers.
-- Also appends rank events to the member channels they concern (each its own next seq), but only
-- for members someone is watching (the ``watched`` zset, refreshed by web processes): the others'
-- channels would be written for nobody and never pruned.
-- ARGV: prefix, channel ('' = member events only), expected_seq, epoch the plan was made in,
--       src, snapshot, record ('' = no frame: only remember that the board was looked at),
--       maxlen, member_maxlen, now (unix seconds), n, (member, record) * n,
--       [nb, (board, record) * nb]
local prefix, channel, expected, epoch = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local src, snap, record, maxlen, mmax = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9]
local seq = 0
if channel ~= '' then  -- '': only member events (perks, alerts), no channel of its own
  -- a diff made before Redis lost the feed (new epoch) must not land in the new history
  if (redis.call('GET', prefix .. ':feedepoch') or '') ~= epoch then return {'conflict', -1} end
  local fkey = prefix .. ':feed:' .. channel
  local cur = tonumber(redis.call('HGET', fkey, 'seq') or '0')
  if cur ~= expected then return {'conflict', cur} end
  seq = cur
  if record ~= '' then
    seq = cur + 1
    local log = prefix .. ':feedlog:' .. channel
    local last = redis.call('XREVRANGE', log, '+', '-', 'COUNT', 1)
    if #last > 0 and tonumber(string.match(last[1][1], '^%d+')) >= seq then
      redis.call('DEL', log)  -- frames of a lost history (the seq went back): not resumable
    end
    redis.call('XADD', log, 'MAXLEN', '~', maxlen, seq .. '-1',
               'r', record)
  end
  redis.call('HSET', fkey, 'seq', seq, 'src', src, 'snap', snap, 'at', ARGV[10])
end
local now = tonumber(ARGV[10])
local n = tonumber(ARGV[11])
local i = 12
for _ = 1, n do
  local member, rec = ARGV[i], ARGV[i + 1]; i = i + 2
  -- member '' is the bait alerts channel: always written (capped like any member channel)
  local watched = member == '' or redis.call('ZSCORE', prefix .. ':watched', member)
  if watched == true or (watched and tonumber(watched) >= now) then
    local mchan = 'member:' .. member
    if member == '' then mchan = 'alerts' end
    local s = redis.call('HINCRBY', prefix .. ':feed:' .. mchan, 'seq', 1)
    redis.call('XADD', prefix .. ':feedlog:' .. mchan, 'MAXLEN', '~', mmax, s .. '-1', 'r', rec)
  end
end
-- events for board channels (perk unlocks): each the board channel's next frame, a record with no
-- changes; the snapshot stays as it is, so a web process publishing meanwhile just retries
n = tonumber(ARGV[i] or '0')
i = i + 1
for _ = 1, n do
  local board, rec = ARGV[i], ARGV[i + 1]; i = i + 2
  local bchan = 'board:' .. board
  local s = redis.call('HINCRBY', prefix .. ':feed:' .. bchan, 'seq', 1)
  redis.call('XADD', prefix .. ':feedlog:' .. bchan, 'MAXLEN', '~', maxlen, s .. '-1', 'r', rec)
end
return {'ok', seq}
