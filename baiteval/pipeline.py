"""``kudos bait-eval``: the comment-bait detector measured through the real pipeline.

Starts its own Valkey and Tansu on free ports (under ``KUDOS_HOME/bait-eval``), and for each run a
real ``kudos worker`` on a fresh topic and key prefix; produces the log in envelopes, waits until
the worker's fences reach the end, and reads back what the detector did from Redis (the ``alerts``
stream and the ``withheld:<member>`` hashes), exactly as an operator would see it.

Runs:
- the labelled streams of :mod:`baiteval.synthesis` (one per ``--seed``): real background traffic,
  injected campaigns of eight shapes and organic posts, scored against the issue's targets;
- the full Higgs and MathOverflow logs (``--real``): every throttle found there, with its reasons
  and the points withheld, against all points scored.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from baiteval.metrics import Throttle, report
from baiteval.report import format_report
from baiteval.synthesis import build_eval
from broker.formats import Item, open_input, read_items
from broker.producer import Progress, produce, wait_applied
from kudos import servers
from leaderboard.scoring import ScoringRules
from leaderboard.settings import Settings, load_settings, settings_env
from leaderboard.store import Store

#: Events per produced message (the envelope path, as `kudos replay --envelope` uses).
ENVELOPE = 200
#: The real logs replayed in full, with their `kudos replay` format.
REAL_LOGS = (
    ("higgs", "higgs/higgs-activity_time.txt.gz", "higgs"),
    ("mathoverflow", "mathoverflow/sx-mathoverflow-typed.DERIVED.txt.gz", "sx"),
)


@dataclass
class RunResult:
    """What one replay through the pipeline left in Redis."""

    name: str
    events: int
    seconds: float
    throttles: list[Throttle] = field(default_factory=list)
    #: every alert (throttles started and ended) as the API lists them, oldest first
    alerts: list[dict[str, Any]] = field(default_factory=list)
    points_mp: int = 0
    withheld_mp: int = 0


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

    async def run(self, name: str, items: Iterable[Item], total: int | None) -> RunResult:
        """Replay ``items`` through a fresh worker and read back the detector's work."""
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
            bar = Progress(f"{name}: produced", total, tty)
            out = await produce(settings, items, envelope=ENVELOPE, on_progress=bar.update)
            bar.close(out.events)
            applied = Progress(f"{name}: applied (messages)", None, tty)
            await wait_applied(store, out.end_offsets, on_progress=applied.update_with_total)
            applied.close(sum(o + 1 for o in out.end_offsets.values()))
            seconds = time.perf_counter() - started
            result = RunResult(name, out.events, seconds)
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
        raw = cast("dict[str, str]", await store.client.hgetall(store.key("withheld", target)))
        withheld[target] = {g: int(v) for g, v in raw.items()}
    counted: set[str] = set()
    for a in alerts:
        if a["state"] != "throttled":
            continue
        group = a["group"]
        # a group's withheld points are one total over all its throttles: count them once
        w = 0 if group in counted else withheld.get(a["target"], {}).get(group, 0)
        counted.add(group)
        result.throttles.append(
            Throttle(
                group,
                a["post"],
                a["target"],
                a["detected_at"],
                a["multiplier"],
                tuple(a["reasons"]),
                w,
            )
        )
    result.withheld_mp = sum(sum(v.values()) for v in withheld.values())
    total = 0
    async for _, _, score in store.export("all"):
        total += round(float(score) * 1000)
    result.points_mp = total


def format_real(r: RunResult) -> str:
    share = r.withheld_mp / max(r.points_mp + r.withheld_mp, 1)
    lines = [
        f"{r.name}: {r.events:,} events replayed in {r.seconds:.0f} s; "
        f"{len(r.throttles)} throttles; {r.withheld_mp / 1000:,.3f} points withheld of "
        f"{(r.points_mp + r.withheld_mp) / 1000:,.3f} ({100 * share:.4f} %)"
    ]
    for t in r.throttles:
        lines.append(
            f"  {t.group} (author {t.target}): x{t.multiplier:g} at {t.detected_at:.0f}, "
            f"withheld {t.withheld_mp / 1000:.3f}; reasons: {', '.join(t.reasons)}"
        )
    return "\n".join(lines)


async def evaluate(
    data: Path, home: Path, seeds: list[int], real: bool, scale: float
) -> tuple[list[str], bool]:
    """Run everything; the report sections and whether every labelled stream met its targets."""
    pipe = Pipeline(home)
    pipe.start()
    sections: list[str] = []
    passed = True
    try:
        for seed in seeds:
            say(f"building the labelled stream, seed {seed}")
            stream = build_eval(
                data,
                seed=seed,
                campaigns_per_shape=max(2, round(12 * scale)),
                organic_posts=max(20, round(240 * scale)),
                background=max(2000, round(150_000 * scale)),
            )
            result = await pipe.run(f"eval-seed{seed}", stream.events, len(stream.events))
            r = report(stream, result.throttles)
            passed = passed and r.passed
            sections.append(
                format_report(r) + f"\n(replayed {result.events:,} events through the worker in "
                f"{result.seconds:.0f} s)"
            )
        if real:
            for name, rel, fmt in REAL_LOGS:
                path = data / rel
                with open_input(str(path)) as f:
                    total = sum(1 for _ in f)
                with open_input(str(path)) as f:
                    result = await pipe.run(name, read_items(f, fmt), total)
                sections.append(format_real(result))
    finally:
        pipe.stop()
    return sections, passed
