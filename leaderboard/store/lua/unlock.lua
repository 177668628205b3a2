-- Unlocks of rank rules on a namespace kept as shards: judged by the worker on the merged board
-- after each batch (stream/rank_judge.py), recorded here in the member's shard once per (rule,
-- member), ever, as the apply records its own (lua/apply.lua, "perks"): the perks hash entry and
-- the outbox entry together, only if the member holds no entry for the rule yet.
-- An erased member (kudos erase, since the judge read the board) gets nothing: their tombstone.
-- KEYS: perkbox, tombstones, then perks:<member> of each unlock.
-- ARGV: per unlock, 9 values: rule id, its record (JSON), then the outbox fields id, title,
--       member, board, rank, score, at; then the payloads, one per unlock (JSON); and last the
--       members' tombstones, one per unlock.
-- Returns the ids recorded (an unlock held already is left as it is).
local n = #KEYS - 2
if #ARGV ~= 11 * n then error('unlock protocol: ' .. #ARGV .. ' arguments for ' .. n .. ' unlocks') end
local out = {}
for i = 1, n do
  local a = 9 * (i - 1)
  local rid, record = ARGV[a + 1], ARGV[a + 2]
  if redis.call('HEXISTS', KEYS[i + 2], rid) == 0
      and redis.call('SISMEMBER', KEYS[2], ARGV[10 * n + i]) == 0 then
    redis.call('HSET', KEYS[i + 2], rid, record)
    -- (not capped: one entry per unlock, ever, like the perks hashes themselves)
    redis.call('XADD', KEYS[1], '*',
               'id', ARGV[a + 3], 'rule', rid, 'title', ARGV[a + 4], 'member', ARGV[a + 5],
               'board', ARGV[a + 6], 'rank', ARGV[a + 7], 'score', ARGV[a + 8],
               'at', ARGV[a + 9], 'payload', ARGV[9 * n + i])
    out[#out + 1] = ARGV[a + 3]
  end
end
return out
