-- Webhooks: move dead-lettered jobs back to due (`kudos webhooks replay`) with a fresh schedule.
-- Jobs of a disabled endpoint stay dead unless `enable` is '1', which re-enables the endpoint.
-- KEYS: wh:dead, wh:due, wh:disabled. ARGV: the job hashes' key prefix ("<prefix>:wh:job:"; the
-- jobs are found in the dead set: same hash tag), now, endpoint ('' = every endpoint), enable
-- ('1' or '0')
-- Returns {replayed jobs, jobs left (endpoint disabled), endpoints re-enabled}
local job_prefix, now, only, enable = ARGV[1], ARGV[2], ARGV[3], ARGV[4] == '1'
local dead, due, disabled = KEYS[1], KEYS[2], KEYS[3]
local replayed, left, enabled = {}, {}, {}
if enable then
  local names = {}
  if only ~= '' then names = {only} else names = redis.call('HKEYS', disabled) end
  for _, e in ipairs(names) do
    if redis.call('HDEL', disabled, e) == 1 then enabled[#enabled + 1] = e end
  end
end
for _, job in ipairs(redis.call('ZRANGE', dead, 0, -1)) do
  local key = job_prefix .. job
  local endpoint = redis.call('HGET', key, 'endpoint')
  if not endpoint then
    redis.call('ZREM', dead, job)
  elseif only == '' or endpoint == only then
    if redis.call('HEXISTS', disabled, endpoint) == 1 then
      left[#left + 1] = job
    else
      redis.call('HSET', key, 'state', 'pending', 'attempts', 0, 'replayed_at', now)
      redis.call('HDEL', key, 'dead_at')
      redis.call('ZREM', dead, job)
      redis.call('ZADD', due, now, job)
      replayed[#replayed + 1] = job
    end
  end
end
return {replayed, left, enabled}
