-- Webhooks: record what one attempt did (or that a job was released or skipped), if the caller
-- still holds the job's lease; the attempt is logged either way (it happened).
-- KEYS: the job's hash, wh:due, wh:dead, wh:disabled, wh:log
-- ARGV: (unused), job, token, action, now, next_due, attempts, reason, disabled record,
--       log maxlen, n, (field, value) * n of the attempts-log entry (n = 0: no entry)
-- action: done (delivered: the job is deleted), retry (due again at next_due), dead (to the
--   dead-letter store), disable (dead, and the endpoint disabled with the record), release
--   (due again now, attempts unchanged: the deliverer is stopping)
local job, token, action = ARGV[2], ARGV[3], ARGV[4]
local now, next_due, attempts, reason = ARGV[5], ARGV[6], ARGV[7], ARGV[8]
local n = tonumber(ARGV[11])
if n > 0 then
  local fields = {}
  for i = 1, 2 * n do fields[i] = ARGV[11 + i] end
  redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[10], '*', unpack(fields))
end
local key, due = KEYS[1], KEYS[2]
if redis.call('HGET', key, 'lease') ~= token then
  return 'stale'  -- the lease ran out and another deliverer holds the job now
end
if action == 'done' then
  redis.call('ZREM', due, job)
  redis.call('DEL', key)
elseif action == 'retry' then
  redis.call('HSET', key, 'attempts', attempts, 'error', reason)
  redis.call('ZADD', due, next_due, job)
elseif action == 'release' then
  redis.call('ZADD', due, now, job)
else
  redis.call('HSET', key, 'attempts', attempts, 'state', 'dead', 'dead_at', now, 'error', reason)
  redis.call('ZREM', due, job)
  redis.call('ZADD', KEYS[3], now, job)
  if action == 'disable' then
    redis.call('HSET', KEYS[4], redis.call('HGET', key, 'endpoint'), ARGV[9])
  end
end
return 'ok'
