"""`kudos deliver` on real servers: the outbox fanned out to the perk-unlocks topic, member channels
and webhooks, delivered to real HTTP receivers on 127.0.0.1 (allowed through KUDOS_WEBHOOKS_ALLOW)
through failures, 410, Retry-After, dead letters and SIGKILL, each unlock once by webhook-id.

Most tests write outbox entries with ``Store.record_unlock`` (as the worker's apply script does)
and run the deliverer in-process with a compressed retry schedule; the kill test runs the real
`kudos deliver` process, and the end-to-end test a worker with perk rules and the example receiver.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import random
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
import standardwebhooks
from aiohttp import web
from aiokafka import AIOKafkaConsumer

from broker.topics import bootstrap
from deliver.config import load_config
from deliver.deliverer import GROUP, Deliverer
from deliver.outbox import UNLOCK_HEADER
from kudos import servers
from leaderboard import webhooks as wh
from leaderboard.bait import Decision
from leaderboard.perks import unlock_id
from leaderboard.plan import PartitionUpdate, Plan
from leaderboard.settings import PerksSettings, WebhooksSettings
from leaderboard.store import ALERT_MARKS, ALERTS, PERK_MARKS, PERKBOX, Store, alert_id
from leaderboard.store import apply as store_apply
from tests.conftest import Namespace, configure
from tests.eventually import eventually
from tests.web.live import LiveClient, start_web

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
KEY = bytes(range(32))
OLD_KEY = bytes(range(100, 132))
SECRET = wh.format_secret(KEY)
OLD_SECRET = wh.format_secret(OLD_KEY)
T0 = 1_700_000_000

RULES = """
[[rule]]
id = "top10"
title = "Top 10"
board = "all"
when = "rank <= 10"
payload = { coupon = "TOP10" }

[[rule]]
id = "big"
title = "Big hitter"
board = "all"
when = "score >= 40"
"""


# -- a receiver whose answers each test scripts ---------------------------------------------------


@dataclass
class Got:
    path: str
    id: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int = 0


#: (request, n-th request for this path and webhook-id) → (status, headers, seconds to stall)
Answer = Callable[[Got, int], tuple[int, dict[str, str], float]]


def ok(got: Got, n: int) -> tuple[int, dict[str, str], float]:
    return 200, {}, 0.0


@dataclass
class Hooks:
    """An aiohttp server on 127.0.0.1 that records every request and answers as scripted."""

    port: int = 0
    answers: dict[str, Answer] = field(default_factory=dict)
    requests: list[Got] = field(default_factory=list)
    runner: web.AppRunner | None = None
    #: ends every stall early
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{path}", self._handle)
        self.runner = web.AppRunner(app, handle_signals=False)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def _handle(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        got = Got(
            path,
            request.headers.get("webhook-id", ""),
            {k.lower(): v for k, v in request.headers.items()},
            await request.read(),
            time.time(),
        )
        n = 1 + sum(1 for g in self.requests if (g.path, g.id) == (path, got.id))
        self.requests.append(got)
        status, headers, stall = self.answers.get(path, ok)(got, n)
        got.status = status
        if stall:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), stall)
        return web.Response(status=status, headers=headers)

    def on(self, path: str) -> list[Got]:
        return [g for g in self.requests if g.path == path]

    def delivered(self, path: str) -> list[str]:
        """webhook-ids answered 2xx, in order (a repeat would show twice)."""
        return [g.id for g in self.on(path) if 200 <= g.status <= 299]

    def summary(self) -> str:
        """Every request so far, for a failure message."""
        return "requests (path, webhook-id, status): " + repr(
            [(g.path, g.id, g.status) for g in self.requests]
        )


@pytest_asyncio.fixture
async def hooks() -> AsyncIterator[Hooks]:
    h = Hooks()
    await h.start()
    try:
        yield h
    finally:
        assert h.runner is not None
        await h.runner.cleanup()


# -- helpers ------------------------------------------------------------------------------------


def setup(ns: Namespace, endpoints: str, **webhooks: Any) -> None:
    """Write the perks file (RULES + ``endpoints``) and point the namespace's settings at it, with
    a compressed schedule and short lease unless given."""
    path = ns.home / "perks.toml"
    path.write_text(RULES + endpoints)
    opts: dict[str, Any] = {
        "allow": "127.0.0.1",
        "schedule_s": "0.2, 0.2, 0.2, 0.2",
        "timeout_s": 2.0,
        "lease_s": 3.0,
    }
    opts.update(webhooks)
    configure(ns, perks=PerksSettings(path=str(path)), webhooks=WebhooksSettings(**opts))


def endpoint(eid: str, url: str, secrets: tuple[str, ...] = (SECRET,), rules: str = "") -> str:
    quoted = ", ".join(f'"{s}"' for s in secrets)
    text = f'\n[[endpoint]]\nid = "{eid}"\nurl = "{url}"\nsecrets = [{quoted}]\n'
    return text + (f"rules = [{rules}]\n" if rules else "")


async def unlock(
    store: Store, rule: str, member: str, rank: int = 3, score: float = 42.5, at: float = T0
) -> str:
    uid = unlock_id(rule, member)
    payload = '{"coupon":"TOP10"}' if rule == "top10" else "{}"
    title = {"top10": "Top 10", "big": "Big hitter"}.get(rule, rule)
    fields = {"id": uid, "rule": rule, "title": title, "member": member, "board": "all"}
    fields.update(rank=str(rank), score=repr(score), at=repr(at), payload=payload)
    assert await store.record_unlock(fields)
    return uid


@contextlib.asynccontextmanager
async def deliverer(ns: Namespace, seed: int = 7) -> AsyncIterator[Deliverer]:
    """The delivering process's loops, in this event loop."""
    s = ns.settings
    store = Store.connect(s.redis.url, s.redis.prefix, ns.store.rules, cluster=s.redis.cluster)
    d = Deliverer(s, store, load_config(s), rng=random.Random(seed), consumer=f"test-{seed}")
    task = asyncio.create_task(d.run())
    try:
        yield d
    finally:
        d.stop()
        try:
            await asyncio.wait_for(task, 20)
        finally:
            await store.close()


def verify(got: Got, secret: str = SECRET) -> dict[str, Any]:
    """The message, verified by the independent standardwebhooks package."""
    message: dict[str, Any] = standardwebhooks.Webhook(secret).verify(got.body, got.headers)
    return message


def kudos(ns: Namespace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kudos", *args],
        env=ns.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


async def read_topic(
    ns: Namespace, at_least: int, quiet_ms: int = 1500, topic: str | None = None
) -> list[Any]:
    """Every record of the perk-unlocks topic (or ``topic``): waits for ``at_least``, then until
    quiet."""
    consumer = AIOKafkaConsumer(
        topic or ns.settings.broker.perks_topic,
        bootstrap_servers=bootstrap(ns.settings),
        auto_offset_reset="earliest",
        group_id=None,
    )
    await consumer.start()
    out: list[Any] = []

    async def read(timeout_ms: int) -> int:
        batch = await consumer.getmany(timeout_ms=timeout_ms)
        for records in batch.values():
            out.extend(records)
        return sum(len(records) for records in batch.values())

    async def enough() -> bool:
        await read(500)
        return len(out) >= at_least

    async def quiet() -> bool:
        return await read(quiet_ms) == 0

    def got() -> str:
        return f"{len(out)} record(s) so far"

    name = topic or ns.settings.broker.perks_topic
    try:
        await eventually(enough, interval=0, what=f"{at_least} record(s) on {name}", details=got)
        await eventually(quiet, interval=0, what=f"a quiet moment on {name}", details=got)
    finally:
        await consumer.stop()
    return out


async def jobs(store: Store) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    return await store.webhook_jobs("due"), await store.webhook_jobs("dead")


def fail_first(k: int) -> Answer:
    def answer(got: Got, n: int) -> tuple[int, dict[str, str], float]:
        return (500 if n <= k else 200), {}, 0.0

    return answer


# -- tests --------------------------------------------------------------------------------------


async def test_every_unlock_is_delivered_once_through_failures(
    namespace: Namespace, hooks: Hooks
) -> None:
    """A receiver that answers 500 twice per message, then 200: every unlock arrives exactly
    once by webhook-id, signed (verified by standardwebhooks, also with the old secret during a
    rotation), the same body every attempt; rule filters hold; the log shows every attempt."""
    setup(
        namespace,
        endpoint("all", hooks.url("all"), (SECRET, OLD_SECRET))
        + endpoint("bigs", hooks.url("bigs"), rules='"big"'),
    )
    hooks.answers["all"] = fail_first(2)
    store = namespace.store
    ids = [await unlock(store, "top10", f"m{i}") for i in range(5)]
    ids += [await unlock(store, "big", f"m{i}", score=40.0 + i) for i in range(2)]
    async with deliverer(namespace):
        await eventually(
            lambda: len(hooks.delivered("all")) == 7 and len(hooks.delivered("bigs")) == 2,
            what="7 unlocks delivered to /all and 2 to /bigs",
            details=hooks.summary,
        )
        await eventually(lambda: _no_jobs(store), what="no webhook job left", details=hooks.summary)
        # not a wait: the window in which a stray retry (schedule 0.2 s) would show up
        await asyncio.sleep(1.0)

    assert sorted(hooks.delivered("all")) == sorted(ids)
    assert sorted(hooks.delivered("bigs")) == sorted(ids[5:])
    assert len(hooks.on("all")) == 3 * 7 and len(hooks.on("bigs")) == 2
    for uid in ids:
        attempts = [g for g in hooks.on("all") if g.id == uid]
        assert [g.status for g in attempts] == [500, 500, 200]
        assert len({g.body for g in attempts}) == 1  # the same body, signed anew each time
        for g in attempts:
            verify(g)
            verify(g, OLD_SECRET)
    got = hooks.on("all")[-1]
    message = verify(got)
    assert message["type"] == "perk.unlocked"
    assert message["data"]["id"] == got.id == got.headers["webhook-id"]
    assert message["timestamp"] == "2023-11-14T22:13:20.000Z"
    first = next(g for g in hooks.on("all") if g.id == ids[0])
    assert verify(first)["data"] == {
        "id": ids[0],
        "rule": "top10",
        "title": "Top 10",
        "member": "m0",
        "board": "all",
        "rank": 3,
        "score": 42.5,
        "at": float(T0),
        "payload": {"coupon": "TOP10"},
    }
    # altering the body, the id or the timestamp breaks the signature
    altered = [
        (got.body.replace(b"perk", b"park"), got.headers),
        (got.body, {**got.headers, "webhook-id": ids[0] if got.id != ids[0] else ids[1]}),
        (
            got.body,
            {**got.headers, "webhook-timestamp": str(int(got.headers["webhook-timestamp"]) - 1)},
        ),
    ]
    for body, headers in altered:
        with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
            standardwebhooks.Webhook(SECRET).verify(body, headers)

    log = await store.webhook_log(100)
    assert len(log) == 23
    assert sorted(e["status"] for e in log) == ["200"] * 9 + ["500"] * 14
    assert {e["action"] for e in log if e["status"] == "500"} == {"retry"}
    assert all(float(e["ms"]) >= 0 for e in log)
    out = kudos(namespace, "webhooks", "log", "--json", "--limit", "5")
    assert out.returncode == 0, out.stderr
    rows = [orjson.loads(line) for line in out.stdout.splitlines()]
    assert [r["attempt"] for r in rows] == [e["attempt"] for e in log[-5:]]
    text = kudos(namespace, "webhooks", "log").stdout
    assert " 500 " in text and " ms " in text and "retry in" in text and "→ done" in text


async def _no_jobs(store: Store) -> bool:
    due, dead = await jobs(store)
    return not due and not dead


async def test_unlocks_reach_the_topic_and_the_member_channel(
    namespace: Namespace, hooks: Hooks
) -> None:
    setup(namespace, endpoint("all", hooks.url("all")))
    store = namespace.store
    port = namespace.settings.web.port
    web_proc = start_web(namespace, port)
    try:
        # m1 is on the board (a member's channel is watched only once they are seen)
        await store.client.zadd(store.key("board", "all"), {"m1": 57_000})
        client = await LiveClient.open(port)
        await client.subscribe("member:m1")
        board = await LiveClient.open(port)
        await board.subscribe("board:all", limit=5)
        await eventually(
            lambda: store.client.zscore(store.key("watched"), "m1"),
            what="the web process marking m1 as watched",
        )
        async with deliverer(namespace):
            u1 = await unlock(store, "top10", "m1", rank=2, score=57.0)
            u2 = await unlock(store, "big", "m2", score=40.0)
            await client.until(lambda: any(e["event"] == "perk" for e in client.events))
            await eventually(
                lambda: len(hooks.delivered("all")) == 2,
                what="2 unlocks delivered to /all",
                details=hooks.summary,
            )
        perk = next(e for e in client.events if e["event"] == "perk")
        assert {
            k: perk[k] for k in ("member", "rule", "title", "board", "rank", "score", "id")
        } == {
            "member": "m1",
            "rule": "top10",
            "title": "Top 10",
            "board": "all",
            "rank": 2,
            "score": 57.0,
            "id": u1,
        }
        # the coupon code is for webhooks and authenticated readers, not for anyone following
        assert "payload" not in perk and "TOP10" not in orjson.dumps(perk).decode()
        assert perk["channel"] == "member:m1" and perk["as_of"] == T0
        # the board's subscribers see both unlocks, each in a delta of its own (seq checked)
        await board.until(lambda: len([e for e in board.events if e["event"] == "perk"]) == 2)
        assert {e["id"] for e in board.events if e["event"] == "perk"} == {u1, u2}
        await client.close()
        await board.close()
    finally:
        servers.stop(web_proc)

    records = await read_topic(namespace, 2)
    assert len(records) == 2
    by_id = {dict(r.headers)[UNLOCK_HEADER].decode(): r for r in records}
    assert set(by_id) == {u1, u2}
    assert by_id[u2].key == b"m2"
    assert orjson.loads(by_id[u2].value) == {
        "id": u2,
        "rule": "big",
        "title": "Big hitter",
        "member": "m2",
        "board": "all",
        "rank": 3,
        "score": 40.0,
        "at": float(T0),
        "payload": {},
    }


async def test_gone_disables_the_endpoint_until_replayed_with_enable(
    namespace: Namespace, hooks: Hooks
) -> None:
    """410 disables the endpoint (persisted): the job and the one queued behind it are
    dead-lettered, and so are later unlocks' jobs, unsent; other endpoints go on. `kudos webhooks
    replay` leaves them dead until --enable re-enables the endpoint and sends them all."""
    setup(
        namespace,
        endpoint("gone", hooks.url("gone")) + endpoint("fine", hooks.url("fine")),
        concurrency=1,
    )
    hooks.answers["gone"] = lambda got, n: (410, {}, 0.0)
    store = namespace.store
    first = [await unlock(store, "top10", m) for m in ("a", "b")]
    async with deliverer(namespace) as d:
        await eventually(
            lambda: len(hooks.delivered("fine")) == 2,
            what="2 unlocks delivered to /fine",
            details=hooks.summary,
        )
        await eventually(lambda: _dead_count(store, 2), what="2 jobs of /gone dead-lettered")
        assert "gone" in await store.webhook_disabled()
        later = await unlock(store, "top10", "c")
        await eventually(
            lambda: len(hooks.delivered("fine")) == 3,
            what="3 unlocks delivered to /fine",
            details=hooks.summary,
        )
        await eventually(
            lambda: _dead_count(store, 3), what="the later unlock's job of /gone dead-lettered too"
        )
    assert len(hooks.on("gone")) == 1  # one 410; the other job was not sent
    # the deliverer's metrics (GET /metrics with KUDOS_WEBHOOKS_METRICS_PORT) say the same
    m = d.metrics
    assert m.unlocks_fanned_out.value() == 3
    assert m.webhook_attempts.value(endpoint="fine", outcome="delivered") == 3
    assert m.webhook_attempts.value(endpoint="gone", outcome="disable") == 1
    assert m.webhook_failures.value(endpoint="gone") == 1
    assert m.webhook_failures.value(endpoint="fine") == 0
    assert m.webhook_dead_letters.value(endpoint="gone") == 3  # the 410'd one and two unsent
    assert m.webhook_attempt_seconds.count() == 4
    disabled = await store.webhook_disabled()
    assert disabled["gone"]["status"] == 410 and disabled["gone"]["unlock"] in first
    due, dead = await jobs(store)
    assert due == []
    assert sorted(d["job"] for d in dead) == sorted(f"gone:{u}" for u in [*first, later])
    log = await store.webhook_log(10)
    assert sorted((e["endpoint"], e["status"], e["action"]) for e in log) == [
        ("fine", "200", "done"),
        ("fine", "200", "done"),
        ("fine", "200", "done"),
        ("gone", "", "dead"),
        ("gone", "", "dead"),
        ("gone", "410", "disable"),
    ]
    skipped = next(e for e in log if e["outcome"] == "skipped")
    assert "disabled" in skipped["error"] and "--enable" in skipped["error"]

    out = kudos(namespace, "webhooks", "replay", "--endpoint", "gone")
    assert out.returncode == 0 and "left 3 job(s) dead" in out.stdout and "--enable" in out.stdout
    hooks.answers["gone"] = ok
    out = kudos(namespace, "webhooks", "replay", "--endpoint", "gone", "--enable")
    assert out.returncode == 0, out.stderr
    assert "re-enabled endpoint gone" in out.stdout and "replaying 3" in out.stdout
    async with deliverer(namespace):
        await eventually(
            lambda: len(hooks.delivered("gone")) == 3,
            what="the 3 replayed jobs delivered to /gone",
            details=hooks.summary,
        )
        await eventually(lambda: _no_jobs(store), what="no webhook job left", details=hooks.summary)
        # not a wait: the window in which a second delivery of any of them would show up
        await asyncio.sleep(0.5)
    # every unlock, also the one made while the endpoint was disabled, exactly once
    assert sorted(hooks.delivered("gone")) == sorted([*first, later])
    assert await store.webhook_disabled() == {}
    assert await _no_jobs(store)


async def _dead_count(store: Store, n: int) -> bool:
    return len(await store.webhook_jobs("dead")) == n


async def test_retry_after_is_honoured(namespace: Namespace, hooks: Hooks) -> None:
    setup(namespace, endpoint("busy", hooks.url("busy")), schedule_s="0.1, 0.1")
    hooks.answers["busy"] = lambda got, n: (
        (503, {"Retry-After": "2"}, 0.0) if n == 1 else (200, {}, 0.0)
    )
    store = namespace.store
    await unlock(store, "top10", "m1")
    async with deliverer(namespace):
        await eventually(
            lambda: len(hooks.delivered("busy")) == 1,
            what="the unlock delivered to /busy",
            details=hooks.summary,
        )
    first, second = hooks.on("busy")
    assert (first.status, second.status) == (503, 200)
    assert second.at - first.at >= 2.0  # not the scheduled 0.1 s
    entry = (await store.webhook_log(10))[0]
    assert entry["status"] == "503" and "retry after 2 s" in entry["error"]
    assert float(entry["next"]) - float(entry["at"]) >= 1.9


async def test_exhausted_schedule_dead_letters_and_replay_delivers(
    namespace: Namespace, hooks: Hooks
) -> None:
    setup(namespace, endpoint("down", hooks.url("down")), schedule_s="0.1, 0.1")
    hooks.answers["down"] = lambda got, n: (500, {}, 0.0)
    store = namespace.store
    uid = await unlock(store, "top10", "m1")
    async with deliverer(namespace):
        await eventually(lambda: _dead_count(store, 1), what="the job of /down dead-lettered")
        # not a wait: the window in which an attempt after the dead letter would show up
        await asyncio.sleep(0.5)
        assert [g.status for g in hooks.on("down")] == [500, 500, 500]  # 1 + 2 retries
        (dead,) = await store.webhook_jobs("dead")
        assert dead["job"] == f"down:{uid}" and dead["attempts"] == "3"
        assert "500" in dead["error"]
        hooks.answers["down"] = ok
        out = kudos(namespace, "webhooks", "replay")
        assert out.returncode == 0, out.stderr
        assert f"down:{uid}" in out.stdout
        await eventually(
            lambda: hooks.delivered("down") == [uid],
            what="the replayed job delivered to /down",
            details=hooks.summary,
        )
        await eventually(lambda: _no_jobs(store), what="no webhook job left", details=hooks.summary)
        # not a wait: the window in which a second delivery would show up
        await asyncio.sleep(0.5)
    assert len(hooks.on("down")) == 4
    assert await _no_jobs(store)
    log = await store.webhook_log(10)
    assert [(e["attempt"], e["action"]) for e in log] == [
        ("1", "retry"),
        ("2", "retry"),
        ("3", "dead"),
        ("1", "done"),  # a replay starts a fresh schedule
    ]
    out = kudos(namespace, "webhooks", "replay")
    assert "no dead-lettered jobs" in out.stdout


async def test_redelivered_outbox_entries_enqueue_nothing_twice(
    namespace: Namespace, hooks: Hooks
) -> None:
    """Every outbox entry handed out again (group rewound, duplicate entries, entries of a dead
    consumer taken over): no second job, webhook, Kafka record or websocket frame."""
    setup(namespace, endpoint("all", hooks.url("all")), lease_s=2.5)
    store = namespace.store
    members = ["m0", "m1", "m2"]
    await store.feed_watch(members, 600)  # so member-channel frames are kept, and countable
    ids = [await unlock(store, "top10", m) for m in members]
    async with deliverer(namespace):
        await eventually(
            lambda: len(hooks.delivered("all")) == 3,
            what="3 unlocks delivered to /all",
            details=hooks.summary,
        )
    outbox = store.key("perkbox")
    entries = await store.client.xrange(outbox)
    # every entry again: the group rewound, a copy of each appended, and a dead consumer
    # holding some of them unacknowledged
    await store.client.xgroup_setid(outbox, GROUP, "0")
    for _, fields in entries:
        await store.client.xadd(outbox, fields)
    ghost = await store.client.xreadgroup(GROUP, "ghost", {outbox: ">"}, count=4)
    assert len(ghost[0][1]) == 4
    async with deliverer(namespace, seed=8):
        await eventually(  # ghost's entries taken over
            lambda: _group_idle(store), timeout=30, what="the outbox group idle"
        )
        # not a wait: the window in which a second job, webhook or frame would show up
        await asyncio.sleep(0.5)
    assert sorted(hooks.delivered("all")) == sorted(ids)
    assert len(hooks.on("all")) == 3
    assert len(await store.webhook_log(100)) == 3
    assert len(await read_topic(namespace, 3)) == 3
    for m in members:
        assert await store.client.xlen(store.key("feedlog", f"member:{m}")) == 1
    assert await _no_jobs(store)


async def _group_idle(store: Store) -> bool:
    (group,) = await store.client.xinfo_groups(store.key("perkbox"))
    return bool(group["pending"] == 0 and group["lag"] == 0)


async def test_the_outbox_keeps_every_unacknowledged_unlock_and_trims_the_rest(
    namespace: Namespace, hooks: Hooks
) -> None:
    """perkbox keeps at most KUDOS_PERKS_OUTBOX_KEEP entries that the deliverers acknowledged; an
    entry none acknowledged (unread while the deliverer was stopped, or read by one that died) is
    never trimmed, however many wait, and is delivered once a deliverer runs again."""
    setup(namespace, endpoint("all", hooks.url("all")), lease_s=2.5)
    configure(namespace, perks=replace(namespace.settings.perks, outbox_keep=20))
    store = namespace.store
    box = store.key(PERKBOX)
    first = [await unlock(store, "top10", f"a{i:02d}") for i in range(30)]
    async with deliverer(namespace):
        await eventually(
            lambda: len(hooks.delivered("all")) == 30, what="30 delivered", details=hooks.summary
        )
        await eventually(lambda: _outbox_at_most(store, 20), what="perkbox trimmed to 20")
    # the deliverer is stopped: many more unlocks than the outbox keeps, 40 of them read by a
    # deliverer that then died, the rest unread; another deliverer's trim leaves them all
    later = [await unlock(store, "top10", f"b{i:03d}") for i in range(150)]
    ghost = await store.client.xreadgroup(GROUP, "ghost", {box: ">"}, count=40)
    assert len(ghost[0][1]) == 40
    await store.outbox_trim(PERKBOX, 20)
    assert await store.client.xlen(box) >= 150
    async with deliverer(namespace, seed=8):
        await eventually(
            lambda: len(hooks.delivered("all")) == 180,
            timeout=30,
            what="180 delivered",
            details=hooks.summary,
        )
        await eventually(lambda: _group_idle(store), timeout=30, what="the outbox group idle")
        await eventually(lambda: _outbox_at_most(store, 20), what="perkbox trimmed to 20")
    assert sorted(hooks.delivered("all")) == sorted(first + later)
    assert len(hooks.on("all")) == 180
    assert len(await read_topic(namespace, 180)) == 180
    # the fan-out marks of trimmed entries went with them: the marks stay bounded by the outbox
    marks = await store.client.hlen(store.key(PERK_MARKS))
    assert marks == await store.client.xlen(box) <= 20


async def _outbox_at_most(store: Store, n: int, box: str = PERKBOX) -> bool:
    return int(await store.client.xlen(store.key(box))) <= n


async def test_bait_alerts_no_deliverer_has_acknowledged_are_never_trimmed(
    namespace: Namespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The apply script caps the alerts stream only while no consumer group reads it; with the
    deliverers' group, entries they have not acknowledged stay, and their trim keeps the cap."""
    monkeypatch.setattr(store_apply, "ALERTS_MAXLEN", 5)
    decisions = [
        Decision(f"p:post{i}", f"post{i}", f"m{i}", "throttled", T0 + i, 0.5, ("rate",), 20)
        for i in range(300)
    ]

    async def apply(store: Store, fence: int) -> None:
        part = PartitionUpdate(0, fence - 1, fence, None, None, None)
        await (await store.send_apply(Plan(partitions=[part], alerts=decisions[:150])))
        part = PartitionUpdate(0, fence, fence + 1, None, None, None)
        await (await store.send_apply(Plan(partitions=[part], alerts=decisions[150:])))

    store = namespace.store
    await store.outbox_join(GROUP, ALERTS)
    await apply(store, 0)
    assert await store.client.xlen(store.key(ALERTS)) == 300
    # (as if a deliverer fanned every alert out: their marks are trimmed with their entries)
    await store.client.hset(store.key(ALERT_MARKS), mapping={alert_id(d): "1" for d in decisions})
    read = await store.outbox_read(GROUP, "test", 200, 100, ALERTS)
    await store.outbox_ack(GROUP, [i for i, _ in read[:100]], ALERTS)
    await store.outbox_trim(ALERTS, 5)
    # 100 acknowledged, trimmed; 100 read but not acknowledged and 100 unread, kept
    assert await store.client.xlen(store.key(ALERTS)) == 200
    await store.outbox_ack(GROUP, [i for i, _ in read[100:]], ALERTS)
    await store.outbox_trim(ALERTS, 5)
    assert await store.client.xlen(store.key(ALERTS)) == 100
    await store.outbox_ack(
        GROUP, [i for i, _ in await store.outbox_read(GROUP, "t", 200, 100, ALERTS)], ALERTS
    )
    await store.outbox_trim(ALERTS, 5)
    assert await store.client.xlen(store.key(ALERTS)) == 5
    kept = [orjson.loads(f["r"])["id"] for _, f in await store.client.xrange(store.key(ALERTS))]
    assert sorted(await store.client.hkeys(store.key(ALERT_MARKS))) == sorted(kept)
    # no group (no deliverer ever ran, e.g. a rebuild's shadow namespace): capped, about
    alone = Store.connect(
        namespace.settings.redis.url, namespace.settings.redis.prefix + "-alone", store.rules
    )
    try:
        await apply(alone, 0)
        assert await alone.client.xlen(alone.key(ALERTS)) < 300
    finally:
        await alone.drop_namespace()
        await alone.close()


async def test_killing_and_restarting_kudos_deliver_mid_retry_loses_nothing(
    namespace: Namespace, hooks: Hooks
) -> None:
    """SIGKILL the delivering process while jobs wait for a retry and one attempt is in flight
    (its receiver stalls); a new process delivers every unlock, each answered 2xx once."""
    setup(
        namespace, endpoint("all", hooks.url("all")), schedule_s="0.3," * 30, timeout_s=5, lease_s=6
    )
    healthy = asyncio.Event()

    def answer(got: Got, n: int) -> tuple[int, dict[str, str], float]:
        if healthy.is_set():
            return 200, {}, 0.0
        stall = 30.0 if got.id == ids[0] and n == 2 else 0.0  # in flight when killed
        return 500, {}, stall

    hooks.answers["all"] = answer
    store = namespace.store
    ids = [await unlock(store, "top10", f"m{i}") for i in range(4)]
    log = namespace.home / "deliver.log"
    proc = servers.spawn([sys.executable, "-m", "kudos", "deliver"], log, env=namespace.env())
    try:
        await eventually(
            lambda: all(sum(g.id == u for g in hooks.on("all")) >= 2 for u in ids),
            timeout=30,
            what="a second attempt of every unlock (one of them stalled in flight)",
            details=hooks.summary,
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        due, dead = await jobs(store)
        assert sorted(d["job"] for d in due) == sorted(f"all:{u}" for u in ids) and dead == []
        healthy.set()
        hooks.release.set()
        late = await unlock(store, "big", "m9", score=41.0)  # while nobody delivers
        before = len(hooks.requests)
        # not a wait: the window in which a request from a survivor of the kill would show up
        await asyncio.sleep(1.0)
        assert len(hooks.requests) == before  # nothing was left running
        proc = servers.spawn([sys.executable, "-m", "kudos", "deliver"], log, env=namespace.env())
        await eventually(
            lambda: len(set(hooks.delivered("all"))) == 5,
            timeout=30,
            what="all 5 unlocks delivered to /all",
            details=hooks.summary,
        )
        await eventually(lambda: _no_jobs(store), what="no webhook job left", details=hooks.summary)
        await eventually(lambda: _group_idle(store), what="the outbox group idle")
        # not a wait: the window in which a second 2xx of any unlock would show up
        await asyncio.sleep(1.0)
        assert sorted(hooks.delivered("all")) == sorted([*ids, late])  # each 2xx once
        assert await _no_jobs(store)
        assert await _group_idle(store)
    finally:
        servers.stop(proc)
    assert "Traceback" not in log.read_text()


async def test_end_to_end_from_events_to_the_example_receiver(
    namespace: Namespace, hooks: Hooks
) -> None:
    """A worker with perk rules, `kudos deliver` and examples/webhook_receiver.py (which fails
    the first attempt of each message): each unlock is handled once, also after the whole event
    log is produced again; `kudos perks` and GET /api/members/{id}/perks list the unlocks."""
    receiver_port = servers.free_port()
    url = f"http://127.0.0.1:{receiver_port}/hooks/kudos"
    winners = (
        '\n[[rule]]\nid = "best-day"\ntitle = "Best of the day"\nboard = "day"\n'
        'when = "rank <= 1"\nat = "close"\n'
    )
    setup(namespace, endpoint("example", url, rules='"big", "best-day"') + winners)
    receiver_log = namespace.home / "receiver.log"
    receiver = servers.spawn(
        [
            sys.executable,
            str(ROOT / "examples" / "webhook_receiver.py"),
            "--port",
            str(receiver_port),
            "--secret",
            SECRET,
            "--fail",
            "1",
        ],
        receiver_log,
    )
    deliver_proc = servers.spawn(
        [sys.executable, "-m", "kudos", "deliver"],
        namespace.home / "deliver.log",
        env=namespace.env(),
    )
    port = namespace.settings.web.port
    web_proc = start_web(namespace, port)
    try:
        servers.wait_port("receiver", "127.0.0.1", receiver_port, receiver, receiver_log)
        namespace.start_worker()
        # m0 gets 11 conversions (110 points), m1 5 (50), m2 2 (20): "big" (≥ 40) for m0, m1
        events = [
            {
                "id": f"e{m}-{k}",
                "ts": T0 + 10 * k + m,
                "kind": "conversion",
                "actor": f"fan{k}",
                "target": f"m{m}",
            }
            for m, n in enumerate((11, 5, 2))
            for k in range(n)
        ]
        # seen (a self-interaction, which scores nothing) but on no board: no perks
        events.append({"id": "s", "ts": T0, "kind": "like", "actor": "quiet", "target": "quiet"})
        # two days later: 2023-11-14 has closed, m0 won it (a winners' perk, "best-day")
        later = T0 + 2 * 86400
        events.append({"id": "l", "ts": later, "kind": "like", "actor": "fan0", "target": "m2"})
        await namespace.wait(await namespace.replay(events, envelope=5))
        best = unlock_id("best-day", "m0", "2023-11-14")
        big = {unlock_id("big", "m0"), unlock_id("big", "m1"), best}

        def handled() -> list[str]:
            return [line for line in receiver_log.read_text().splitlines() if "unlocked" in line]

        await eventually(
            lambda: len(handled()) == 3,
            timeout=30,
            what="the receiver handling both unlocks",
            details=receiver_log.read_text,
        )
        await namespace.wait(await namespace.replay(events, envelope=3))  # the whole log again
        # not a wait: the window in which a second unlock of the same rule would reach the
        # receiver (unlocked again by the re-sent log, fanned out, delivered)
        await asyncio.sleep(2.0)
        lines = handled()
        assert len(lines) == 3
        assert {line.rsplit(" ", 1)[1] for line in lines} == big
        assert any("m0 unlocked 'Big hitter'" in line for line in lines)
        # the winners' perk is announced on the live day board's channel, with its period
        store = namespace.store
        frames = [
            orjson.loads(f["r"])
            for _, f in await store.client.xrange(store.key("feedlog", "board:day"), "-", "+")
        ]
        perks = [e for f in frames for e in f.get("events", []) if e.get("event") == "perk"]
        assert [(e["id"], e["board"], e["period"], e["rank"]) for e in perks] == [
            (best, "day@2023-11-14", "2023-11-14", 1)
        ]

        out = kudos(namespace, "perks", "--json")
        recent = orjson.loads(out.stdout)["perks"]
        assert {p["id"] for p in recent} >= big
        assert {(p["member"], p["rule"]) for p in recent} >= {("m0", "big"), ("m1", "big")}
        text = kudos(namespace, "perks", "m1").stdout
        assert "Big hitter" in text and unlock_id("big", "m1") in text
        assert kudos(namespace, "perks", "nobody").returncode == 1

        status, body = get(port, "/api/members/m0/perks")
        assert status == 200 and body["member"] == "m0"
        by_rule = {p["rule"]: p for p in body["perks"]}
        assert by_rule["big"]["id"] == unlock_id("big", "m0")
        assert by_rule["big"]["score"] >= 40 and by_rule["top10"]["rank"] <= 10
        assert get(port, "/api/members/quiet/perks") == (200, {"member": "quiet", "perks": []})
        status, body = get(port, "/api/members/nobody/perks")
        assert status == 404 and "nobody" in body["error"]
    finally:
        for p in (web_proc, deliver_proc, receiver):
            servers.stop(p)


def get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


async def test_a_bad_endpoint_stops_kudos_deliver_with_a_clear_error(
    namespace: Namespace,
) -> None:
    setup(namespace, endpoint("x", "http://127.0.0.1:9/h", rules='"nope"'))
    out = kudos(namespace, "deliver")
    assert out.returncode == 2
    assert "endpoint 'x'" in out.stderr and "'nope'" in out.stderr
    setup(namespace, endpoint("x", "http://127.0.0.1:9/h"), allow="")
    out = kudos(namespace, "deliver")
    assert out.returncode == 2 and "KUDOS_WEBHOOKS_ALLOW" in out.stderr


def load_example_receiver() -> Any:
    spec = importlib.util.spec_from_file_location(
        "webhook_receiver", ROOT / "examples" / "webhook_receiver.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_receiver_verifies_and_handles_each_message_once(tmp_path: Path) -> None:
    example = load_example_receiver()
    handled: list[dict[str, Any]] = []
    db = str(tmp_path / "seen.sqlite")
    receiver = example.Receiver([OLD_SECRET, SECRET], db, handle=handled.append)
    body = wh.message_body(wh.UNLOCK_TYPE, T0, {"id": "unl_1", "member": "m1"})
    signed = wh.headers("unl_1", int(time.time()), body, [KEY])
    assert receiver.receive(body, signed) == 204
    again = wh.headers("unl_1", int(time.time()) + 1, body, [KEY])  # a retry, signed anew
    assert receiver.receive(body, again) == 204
    assert [m["data"]["member"] for m in handled] == ["m1"]
    assert receiver.receive(body.replace(b"m1", b"m2"), signed) == 401
    assert receiver.receive(body, {**signed, "webhook-id": "unl_2"}) == 401
    stale = wh.headers("unl_3", int(time.time()) - 600, body, [KEY])
    assert receiver.receive(body, stale) == 401
    # a restarted receiver remembers what it handled
    assert example.Receiver([SECRET], db, handle=handled.append).receive(body, again) == 204
    assert len(handled) == 1


class _NoProducer:
    """A producer that acknowledges every send at once (the topic is not what is tested)."""

    async def send(self, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


async def test_a_shards_trimmed_outbox_takes_its_marks_from_the_namespaces_store(
    namespace: Namespace,
) -> None:
    # (on shards the deliverer reads each shard's outbox but marks the namespace's own store:
    # trimming the shard's outbox must delete those marks, or they grow for ever)
    from leaderboard.store.shards import shard_prefix

    configure(namespace, perks=replace(namespace.settings.perks, outbox_keep=10))
    base = namespace.store
    shard = Store.connect(namespace.settings.redis.url, shard_prefix(base.prefix, 0), base.rules)
    try:
        d = Deliverer(
            namespace.settings, base, load_config(namespace.settings), sources=[shard],
            consumer="c",
        )  # fmt: skip
        box = d.outboxes[0]
        await shard.outbox_join(GROUP, box.stream)
        for i in range(60):
            unlock = {"id": f"unl_{i}", "rule": "r", "title": "t", "member": f"m{i}",
                      "board": "all", "rank": "1", "score": "1.0", "at": "1.0", "payload": "{}"}  # fmt: skip
            await shard.record_unlock(unlock)
            entries = await shard.outbox_read(GROUP, "c", 10, 10, box.stream)
            await d.fan_out(_NoProducer(), box, entries, shard)  # type: ignore[arg-type]
        assert await shard.client.xlen(shard.key(PERKBOX)) <= 10
        marks = await base.client.hkeys(base.key(PERK_MARKS))
        assert 0 < len(marks) <= 10, len(marks)
        assert set(marks) <= {f"unl_{i}" for i in range(50, 60)}
    finally:
        await shard.close()
