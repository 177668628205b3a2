-- Webhooks: claim up to `limit` due jobs for one deliverer. A claimed job stays in the due zset
-- with its lease end as the score, so a deliverer that dies mid-attempt loses nothing: the job is
-- due again when the lease runs out. Each claim bumps the job's lease token; only the holder of
-- the current token may record the attempt's outcome (lua/webhook_finish.lua).
-- KEYS: wh:due, wh:disabled. ARGV: the job hashes' key prefix ("<prefix>:wh:job:"; the jobs are
-- found in the due set, so their keys cannot be named before the call: same hash tag), now,
-- lease_until, limit
-- Returns {{job, token, endpoint, unlock, body, attempts, disabled record or ''} ..., next due}
local job_prefix, now, lease_until, limit = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local due = KEYS[1]
local claimed = {}
if limit > 0 then
  local ids = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, limit)
  for _, job in ipairs(ids) do
    local key = job_prefix .. job
    local f = redis.call('HMGET', key, 'endpoint', 'unlock', 'body', 'attempts', 'state')
    if not f[1] or f[5] ~= 'pending' then
      redis.call('ZREM', due, job)  -- gone or dead-lettered meanwhile: nothing to send
    else
      local token = redis.call('HINCRBY', key, 'lease', 1)
      redis.call('ZADD', due, lease_until, job)
      local disabled = redis.call('HGET', KEYS[2], f[1]) or ''
      claimed[#claimed + 1] = {job, token, f[1], f[2], f[3], f[4], disabled}
    end
  end
end
local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
return {claimed, first[2] or ''}
