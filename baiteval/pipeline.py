"""``kudos bait-eval``: the comment-bait detector measured through the real pipeline.

Starts its own Valkey and Tansu on free ports (under ``KUDOS_HOME/bait-eval``), and for each run a
real ``kudos worker`` on a fresh topic and key prefix; produces the log in envelopes, a few
thousand events at a time, each time waiting until the worker's fences reach them (so evidence
between partitions arrives as it would live, see :meth:`Pipeline.run`), and reads back what the
detector did from Redis (the ``alerts`` stream and the ``withheld:<member>`` hashes), exactly as
an operator would see it.

:class:`Pipeline` runs the labelled streams of :mod:`baiteval.synthesis` and the full Higgs and
MathOverflow logs (:data:`baiteval.suite.REAL_LOGS`) for :func:`baiteval.suite.run_suite`, each through a fresh
worker. This is the only module of the package that starts servers.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, cast

from baiteval.metrics import Throttle
from baiteval.report import RunResult
from broker.formats import Item
from broker.producer import Progress, produce, wait_applied
from kudos import servers
from leaderboard.scoring import ScoringRules
from leaderboard.settings import Settings, load_settings, settings_env
from leaderboard.store import Store
from leaderboard.store.keys import glob_escape

#: Events per produced message (the envelope path, as `kudos replay --envelope` uses).
ENVELOPE = 200


#: Items produced before waiting for the worker (see :meth:`Pipeline.run`).
PACE = 2_000


def _chunks(items: Iterable[Item], n: int | None) -> Iterator[list[Item]]:
    chunk: list[Item] = []
    for item in items:
        chunk.append(item)
        if n is not None and len(chunk) >= n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class Pipeline:
    """Valkey + Tansu on free ports; one worker process and namespace per run."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.redis_port = servers.free_port()
        self.broker_port = servers.free_port()
        self._procs: list[Any] = []
        self._runs = 0

    def start(self) -> None:
        if self.home.exists():
            shutil.rmtree(self.home)
        self.home.mkdir(parents=True)
        say(f"starting Valkey on 127.0.0.1:{self.redis_port} and Tansu on {self.broker_port}")
        self._procs.append(servers.start_redis(self.redis_port, self.home / "redis"))
        self._procs.append(servers.start_broker(self.broker_port, self.home / "broker"))

    def stop(self) -> None:
        for proc in reversed(self._procs):
            servers.stop(proc, timeout=5)

    def settings(self, name: str) -> Settings:
        self._runs += 1
        tag = f"{name}-{self._runs}-{int(time.time())}"
        return load_settings(
            {
                **os.environ,
                "KUDOS_HOME": str(self.home / name),
                "KUDOS_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
                "KUDOS_REDIS_PREFIX": f"bait_{tag}",
                "KUDOS_BROKER_URL": f"kafka://127.0.0.1:{self.broker_port}",
                "KUDOS_BROKER_TOPIC": f"bait.{tag}",
                "KUDOS_BROKER_DLQ_TOPIC": f"bait.{tag}.dlq",
                "KUDOS_BROKER_PERKS_TOPIC": f"bait.{tag}.perks",
                "KUDOS_BROKER_ALERTS_TOPIC": f"bait.{tag}.alerts",
                "KUDOS_WORKER_APP_ID": f"bait-{tag}",
                "KUDOS_BAIT_ENABLED": "true",
            }
        )

    async def run(
        self, name: str, items: Iterable[Item], total: int | None, *, pace: int | None = PACE
    ) -> RunResult:
        """Replay ``items`` through a fresh worker and read back the detector's work.

        ``pace``: produce that many items, wait until the worker has applied them, produce the
        next ones (None: everything at once). A worker sends the evidence of a throttle to the
        other partitions through the log, behind what is already there: produced all at once,
        the log would hold the whole stream ahead of it, and no partition would hear of a
        throttle elsewhere until the stream had ended. Paced, it is heard within ``pace`` items,
        some twenty minutes of the labelled streams' event time (live: within seconds). Each
        pause costs ~0.1 s.
        """
        settings = self.settings(name)
        (self.home / name).mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
        worker = servers.spawn(
            [sys.executable, "-m", "kudos", "worker"], self.home / name / "worker.log", env=env
        )
        store = Store.connect(settings.redis.url, settings.redis.prefix, ScoringRules.load())
        started = time.perf_counter()
        try:
            tty = sys.stderr.isatty()
            bar = Progress(f"{name}: produced and applied", total, tty)
            events = 0
            for chunk in _chunks(items, pace):
                out = await produce(settings, chunk, envelope=ENVELOPE)
                await wait_applied(store, out.end_offsets)
                events += out.events
                bar.update(events)
            bar.close(events)
            seconds = time.perf_counter() - started
            result = RunResult(name, events, seconds)
            await _read_back(store, result)
        finally:
            servers.stop(worker, timeout=8)
            await store.close()
        say(
            f"{name}: {result.events:,} events in {result.seconds:.1f} s; "
            f"{len(result.throttles)} throttles"
        )
        return result


async def _read_back(store: Store, result: RunResult) -> None:
    alerts = list(reversed(await store.alerts(10**7)))
    result.alerts = alerts
    withheld: dict[str, dict[str, int]] = {}
    for target in {a["target"] for a in alerts}:
        # (one hash per 30-day period of the interactions' time: every one still kept)
        sums: dict[str, int] = {}
        pattern = glob_escape(store.key("withheld", target) + "|") + "*"
        async for key in store.client.scan_iter(match=pattern):
            raw = cast("dict[str, str]", await store.client.hgetall(key))
            for g, mp in raw.items():
                sums[g] = sums.get(g, 0) + int(mp)
        withheld[target] = sums
    # the worker keeps withheld points per group: ``t:<target>`` without a post, else
    # ``<kind>:<post>`` (its comments, its engagement…); the report counts a post once
    by_subject: dict[tuple[str, str], int] = {}
    for target, groups in withheld.items():
        for g, v in groups.items():
            subject = g if g.startswith("t:") else g.partition(":")[2]
            by_subject[(target, subject)] = by_subject.get((target, subject), 0) + v
    counted: set[tuple[str, str]] = set()
    for a in alerts:
        if a["state"] != "throttled":
            continue
        group = a["group"]
        # one total per post (or target) over all its throttles and groups: count it once
        where = (a["target"], a["post"] if a["post"] is not None else group)
        w = 0 if where in counted else by_subject.get(where, 0)
        counted.add(where)
        result.throttles.append(
            Throttle(
                group,
                a["post"],
                a["target"],
                a["detected_at"],
                a["multiplier"],
                tuple(a["reasons"]),
                w,
                "retroactive_at" in a,
                tuple(a.get("clawed_back", ())),
            )
        )
    result.withheld_mp = sum(sum(v.values()) for v in withheld.values())
    total = 0
    async for _, _, score in store.export("all"):
        total += round(float(score) * 1000)
    result.points_mp = total
