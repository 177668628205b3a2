"""The `kudos rebuild` switch: the old RENAME-every-key script against the pointer flip, and the
background drop of the old generation (issue 14, "an O(1) switch").

    python -m bench.switch [--sizes 60000,1000000] [--step 1000]

Starts its own Valkey on a free port (127.0.0.1). For each size N it fills, by pipelined writes,
a live namespace and a rebuilt one of N keys each (per-member hashes and sorted sets of the
rebuilt families, as the explain / posts / throttle keys of N members, plus the base boards):

- *old*: the live prefix and a shadow prefix (``<prefix>~rebuild-<token>``), switched by the
  script this module keeps a copy of (before generations: SCAN both, RENAME every shadow key);
- *new*: generation 0 and generation 1 of one prefix, switched by ``Store.switch_from``
  (``lua/switch.lua``), then generation 0 dropped by ``Store.drop_steps``.

Reported per size: the switch's wall time and its Redis time (``INFO commandstats``, the script
call), the ratio old / new, the drop's total time, steps and longest step.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from kudos import servers
from leaderboard.scoring import ScoringRules
from leaderboard.store import REBUILT_FAMILIES, Store
from leaderboard.store.keys import Keys, glob_escape
from leaderboard.store.scripts import SOURCES

#: The switch before generations (leaderboard/store/lua/switch.lua until issue 14, part 5).
OLD_SWITCH = """
local live, shadow, live_match, shadow_match = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local identity, group, token = ARGV[5], ARGV[6], ARGV[7]
local families = {}
for j = 8, #ARGV do families[ARGV[j]] = true end
if redis.call('GET', live .. ':rebuilding') ~= token then return {'lock'} end
local fences = redis.call('HGETALL', live .. ':fence')
for j = 1, #fences, 2 do
  local s = redis.call('HGET', shadow .. ':fence', fences[j])
  if not s or tonumber(s) < tonumber(fences[j + 1]) then
    return {'behind', fences[j], fences[j + 1], s or '-1'}
  end
end
local function keys_of(prefix, match)
  local out = {}
  local n = #prefix + 2
  local cursor = '0'
  repeat
    local res = redis.call('SCAN', cursor, 'MATCH', match, 'COUNT', 1000)
    cursor = res[1]
    for _, key in ipairs(res[2]) do
      local suffix = string.sub(key, n)
      local family = string.match(suffix, '^[^:]+')
      if family and families[family] then out[#out + 1] = suffix end
    end
  until cursor == '0'
  return out
end
local boards = {}
for _, b in ipairs(redis.call('SMEMBERS', live .. ':boards')) do boards[b] = true end
for _, b in ipairs(redis.call('SMEMBERS', shadow .. ':boards')) do boards[b] = true end
local renamed = {}
for _, suffix in ipairs(keys_of(shadow, shadow_match)) do
  redis.call('RENAME', shadow .. ':' .. suffix, live .. ':' .. suffix)
  renamed[suffix] = true
end
for _, suffix in ipairs(keys_of(live, live_match)) do
  if not renamed[suffix] then redis.call('UNLINK', live .. ':' .. suffix) end
end
redis.call('XGROUP', 'CREATE', live .. ':alerts', group, '$', 'MKSTREAM')
for b in pairs(boards) do redis.call('HINCRBY', live .. ':changes', b, 1) end
redis.call('INCR', live .. ':generation')
redis.call('HSET', live .. ':meta', 'scoring_version', identity)
return {'ok'}
"""

TOKEN = "bench-switch"
BATCH = 10_000


async def fill(client: aioredis.Redis, keys: Keys, n: int, rules: ScoringRules) -> None:
    """``n`` keys of the rebuilt families under ``keys``' generation, pipelined."""
    boards = list(rules.base_boards)
    pipe = client.pipeline(transaction=False)
    for b in boards:
        pipe.sadd(keys.key("boards"), b)
    pipe.hset(keys.key("fence"), "0", "100")
    for i in range(n - len(boards) - 2):
        m = f"m{i:07d}"
        match i % 3:
            case 0:
                pipe.hset(keys.key("explain", m), "n:share", 1)
            case 1:
                pipe.zadd(keys.key("posts", m) + "|0", {"p1": 1000})
            case _:
                pipe.hset(keys.key("withheld", m) + "|0", "p:p1", 1000)
        if i % 1000 == 0:
            pipe.zadd(keys.key("board", boards[i // 1000 % len(boards)]), {m: i})
        if len(pipe) >= BATCH:
            await pipe.execute()
    await pipe.execute()


async def script_usec(client: aioredis.Redis) -> dict[str, int]:
    info: dict[str, Any] = await client.info("commandstats")
    return {k: int(v["usec"]) for k, v in info.items() if k in ("cmdstat_eval", "cmdstat_evalsha")}


async def server_time(client: aioredis.Redis, before: dict[str, int]) -> float:
    after = await script_usec(client)
    return sum(after[k] - before.get(k, 0) for k in after) / 1e6


async def old_switch(url: str, n: int, rules: ScoringRules) -> tuple[float, float]:
    client = aioredis.Redis.from_url(url, decode_responses=True, socket_timeout=600)
    try:
        await client.flushdb()
        live, shadow = "old", f"old~rebuild-{TOKEN}"
        await fill(client, Keys(live), n, rules)
        await fill(client, Keys(shadow), n, rules)
        await client.set(f"{live}:rebuilding", TOKEN)
        script = client.register_script(OLD_SWITCH)
        args = [live, shadow, glob_escape(live) + ":*", glob_escape(shadow) + ":*"]
        args += ["id", "deliver", TOKEN, *REBUILT_FAMILIES]
        await client.script_load(OLD_SWITCH)
        before = await script_usec(client)
        t = time.perf_counter()
        res = await script(args=args)
        wall = time.perf_counter() - t
        assert res == ["ok"], res
        return wall, await server_time(client, before)
    finally:
        await client.aclose()


async def new_switch(
    url: str, n: int, rules: ScoringRules, step: int
) -> tuple[float, float, float, int, float]:
    live = Store.connect(url, "new", rules)
    try:
        client = live.client
        await client.flushdb()
        await fill(client, Keys("new", 0), n, rules)
        await fill(client, Keys("new", 1), n, rules)
        new = Store(client, "new", rules, scoring_id="id", generation=1)
        assert await live.lock_rebuild(TOKEN, 600) is None
        await live.follow(force=True)
        await client.script_load(SOURCES["switch"])
        before = await script_usec(client)
        t = time.perf_counter()
        outcome = await live.switch_from(new, "deliver", TOKEN)
        wall = time.perf_counter() - t
        assert outcome == "ok", outcome
        redis_s = await server_time(client, before)
        steps: list[float] = []
        removed = 0
        t0 = time.perf_counter()
        t = t0
        async for k in live.drop_steps(0, step):
            now = time.perf_counter()
            steps.append(now - t)
            removed += k
            t = now
        total = time.perf_counter() - t0
        assert removed >= n - len(rules.base_boards), (removed, n)  # (all of generation 0)
        return wall, redis_s, total, len(steps), max(steps)
    finally:
        await live.close()


async def main(sizes: list[int], step: int) -> None:
    rules = ScoringRules.load()
    port = servers.free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = servers.start_redis(port, Path(tmp) / "redis")
        url = f"redis://127.0.0.1:{port}/0"
        rows = []
        try:
            for n in sizes:
                old_wall, old_redis = await old_switch(url, n, rules)
                print(f"  old switch, {n:,} keys: {old_wall * 1000:.1f} ms", flush=True)
                wall, redis_s, drop_s, steps, longest = await new_switch(url, n, rules, step)
                print(f"  new switch, {n:,} keys: {wall * 1000:.2f} ms", flush=True)
                rows.append((n, old_wall, old_redis, wall, redis_s, drop_s, steps, longest))
        finally:
            servers.stop(proc)
    head = (
        f"{'keys':>10} | {'old switch ms':>13} | {'(redis)':>9} | {'new switch ms':>13} | "
        f"{'(redis)':>8} | {'old/new':>8} | {'drop s':>7} | {'steps':>6} | {'longest step ms':>15}"
    )
    print(head)
    print("-" * len(head))
    for n, ow, orr, nw, nr, ds, st, lg in rows:
        print(
            f"{n:>10,} | {ow * 1000:>13.1f} | {orr * 1000:>9.1f} | {nw * 1000:>13.2f} | "
            f"{nr * 1000:>8.3f} | {ow / nw:>8.0f} | {ds:>7.2f} | {st:>6} | {lg * 1000:>15.2f}"
        )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="60000,1000000")
    ap.add_argument("--step", type=int, default=1000)
    a = ap.parse_args()
    asyncio.run(main([int(s) for s in a.sizes.split(",")], a.step))
