"""The comment-bait throttle through the real stack (Tansu, Valkey, `kudos worker`, `kudos web`,
the deliverer): a campaign of real YouTube spam comments on a bait post is throttled, demoted (not
deleted), explained and alerted on every surface, exactly like the pure detector decides, also
across a worker SIGKILL; an organic thread next to it is untouched; ``bait.enabled = false`` scores
everything in full."""

from __future__ import annotations

import csv
import html
import random
import subprocess
import sys
import urllib.request
from typing import Any

import orjson
import pytest

from deliver.outbox import ALERT_HEADER
from leaderboard.bait import FULL, Detector
from leaderboard.scoring import ScoringRules, contribution
from leaderboard.settings import BaitSettings, WorkerSettings
from tests.conftest import DATA, Namespace, configure
from tests.deliver.test_deliverer import deliverer, read_topic
from tests.eventually import eventually
from tests.web.live import LiveClient, start_web

pytestmark = pytest.mark.integration

T0 = 1_700_000_000
RULES = ScoringRules.load()


def youtube(spam: bool) -> list[str]:
    out = []
    for f in sorted((DATA / "youtube_spam").glob("*.csv")):
        with f.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                if (row["CLASS"] == "1") == spam:
                    text = html.unescape(row["CONTENT"]).replace("\ufeff", "").strip()
                    if text:
                        out.append(text[:2000])
    return out


def stream() -> list[dict[str, Any]]:
    """A bait campaign (150 spam comments from a bot farm in 15 minutes on "tea or coffee?") and
    an organic thread (120 genuine comments with shares and clicks) by two authors, interleaved."""
    rng = random.Random(5)
    spam, ham = youtube(True), youtube(False)
    events: list[dict[str, Any]] = []

    def add(
        ts: float, kind: str, actor: str, target: str, post: str, text: str | None = None
    ) -> None:
        e: dict[str, Any] = {"id": f"e{len(events)}", "ts": ts, "kind": kind, "actor": actor}
        e.update(target=target, post=post)
        if text is not None:
            e["text"] = text
        events.append(e)

    add(T0, "post", "baiter", "baiter", "tea", "Tea or coffee? Comment below! ☕")
    add(T0 + 5, "post", "writer", "writer", "essay", "Our long read on the new transit plan")
    for i in range(150):
        ts = T0 + 60 + i * 6
        add(ts, "comment", f"bot{rng.randrange(90)}", "baiter", "tea", rng.choice(spam))
        if i % 30 == 0:
            add(ts + 1, "like", f"fan{i}", "baiter", "tea")
    for i in range(120):
        ts = T0 + 30 + i * 9
        add(ts, "comment", f"reader{i}", "writer", "essay", rng.choice(ham))
        add(ts + 2, "share", f"sharer{i}", "writer", "essay")
        add(ts + 3, "click", f"clicker{i}", "writer", "essay")
    events.sort(key=lambda e: e["ts"])
    return events


def expected(events: list[dict[str, Any]]) -> tuple[dict[str, int], dict[str, int], list[Any]]:
    """What the pure detector decides for this log (one partition's view per author: the two
    authors share no commenters, so their partitions cannot influence each other): points and
    withheld milli-points per author, and the decisions."""
    det = Detector()
    points: dict[str, int] = {}
    withheld: dict[str, int] = {}
    k: dict[tuple[str, str], int] = {}
    for e in events:
        mult = det.observe(e["kind"], e["ts"], e["actor"], e["target"], e["post"], e.get("text"))
        w = RULES.weights_mp[e["kind"]]
        if e["actor"] == e["target"] or w == 0:
            continue
        key = (e["actor"], e["target"])  # one UTC day: T0 .. T0 + 2,000 s
        k[key] = k.get(key, 0) + 1
        full = contribution(w, k[key])
        kept = full * mult // FULL
        points[e["target"]] = points.get(e["target"], 0) + kept
        withheld[e["target"]] = withheld.get(e["target"], 0) + full - kept
    return points, withheld, [d.to_json() for d in det.take_decisions()]


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return orjson.loads(r.read())


async def test_a_campaign_is_throttled_explained_and_alerted(namespace: Namespace) -> None:
    ns = namespace
    store = ns.store
    # small applies and a kill in the middle: the detector's state must follow the fences
    configure(ns, worker=WorkerSettings(max_events_per_apply=40, batch_messages=5))
    events = stream()
    want_points, want_withheld, want_decisions = expected(events)
    (decision,) = want_decisions
    assert decision["target"] == "baiter" and decision["state"] == "throttled"
    assert decision["comments"] < 0.2 * 150  # the pure core's own target, on this log

    port = ns.settings.web.port
    web = start_web(ns, port)
    try:
        alerts = await LiveClient.open(port)
        await alerts.subscribe("alerts")
        member = await LiveClient.open(port)
        await member.subscribe("member:baiter")
        async with deliverer(ns):
            worker = ns.start_worker()
            # a member's channel is watched only once they are seen (docs/protocol.md): up to
            # baiter's first comment first, long before anything can be detected
            seen = 1 + next(
                i
                for i, e in enumerate(events)
                if e["kind"] == "comment" and e["target"] == "baiter"
            )
            await ns.wait(await ns.replay(events[:seen], envelope=10))
            await eventually(
                lambda: store.client.zscore(store.key("watched"), "baiter"),
                what="the web process marking baiter as watched",
            )
            first = await ns.replay(events[seen : len(events) // 2], envelope=10)
            await ns.wait(first)
            ns.kill_worker(worker)
            ns.start_worker()
            await ns.wait(await ns.replay(events[len(events) // 2 :], envelope=10))
            # the whole log again: duplicates change nothing, and nothing is detected twice
            await ns.wait(await ns.replay(events, envelope=7))
            await alerts.until(lambda: any(e["event"] == "bait" for e in alerts.events))
            await member.until(lambda: any(e["event"] == "bait" for e in member.events))

        listed = get(port, "/api/alerts?limit=10")["alerts"]
        assert len(listed) == 1
        got = listed[0]
        assert got["id"].startswith("alr_")
        got_core = {k: v for k, v in got.items() if k != "id"}
        assert got_core == decision
        assert got["post"] == "tea" and got["detected_at"] > T0 and got["multiplier"] < 1
        assert "low_info" in got["reasons"]
        assert any(r.startswith("bait_phrasing:") and "vote" in r for r in got["reasons"])
        assert get(port, "/api/alerts?member=writer")["alerts"] == []

        pushed = next(e for e in alerts.events if e["event"] == "bait")
        assert pushed["id"] == got["id"] and pushed["channel"] == "alerts"
        assert next(e for e in member.events if e["event"] == "bait")["id"] == got["id"]
        await alerts.close()
        await member.close()

        explain = get(port, "/api/members/baiter/explain")
        comment = explain["kinds"]["comment"]
        assert comment["count"] == 150  # demoted, never deleted: every comment is counted
        assert round(explain["totals"]["withheld"] * 1000) == want_withheld["baiter"] > 0
        assert comment["withheld"] > 0 and comment["discounted"] >= 0
        (line,) = explain["throttles"]
        assert line["post"] == "tea" and line["state"] == "throttled"
        assert line["reasons"] == got["reasons"]
        assert round(line["withheld"] * 1000) == want_withheld["baiter"]
        writer = get(port, "/api/members/writer/explain")
        assert writer["throttles"] == [] and writer["totals"]["withheld"] == 0
    finally:
        web.terminate()
        web.wait(10)

    # scores are exactly what the pure detector and the scoring contract give
    board = {m: round(float(s) * 1000) for _, m, s in await ns.export("all")}
    assert board == want_points
    records = await read_topic(ns, 1, topic=ns.settings.broker.alerts_topic)
    assert [dict(r.headers)[ALERT_HEADER].decode() for r in records] == [got["id"]]
    assert records[0].key == b"baiter"

    cli = subprocess.run(
        [sys.executable, "-m", "kudos", "alerts"], env=ns.env(), capture_output=True, text=True
    )
    assert cli.returncode == 0, cli.stderr
    assert "baiter" in cli.stdout and "post tea" in cli.stdout and "low_info" in cli.stdout


async def test_switched_off_every_comment_counts_in_full(namespace: Namespace) -> None:
    ns = namespace
    configure(ns, bait=BaitSettings(enabled=False))
    events = stream()
    ns.start_worker()
    await ns.wait(await ns.replay(events, envelope=50))
    assert await ns.store.alerts(10) == []
    full = {m: p + expected(events)[1].get(m, 0) for m, p in expected(events)[0].items()}
    board = {m: round(float(s) * 1000) for _, m, s in await ns.export("all")}
    assert board == full
