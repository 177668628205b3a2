"""Perk unlocks on real servers: once per (rule, member), through worker kills and a full re-send,
checked against the independent oracle."""

from __future__ import annotations

import asyncio
import dataclasses
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from leaderboard.perks import DEFAULT_MAX_TIES, PerkRule, unlock_id
from leaderboard.scoring import ScoringRules
from leaderboard.settings import PerksSettings
from leaderboard.store import Store
from leaderboard.store.shards import connect_shards
from tests.conftest import DATA, Namespace, Servers, configure, make_settings
from tests.oracle import compute, read_edges

pytestmark = pytest.mark.integration

HIGGS = DATA / "higgs" / "higgs-activity_time.txt.gz"

RULES = """
[[rule]]
id = "top2-all"
title = "Top 2 of all time"
board = "all"
when = "rank <= 2"
payload = { badge = "gold" }

[[rule]]
id = "forty-all"
title = "40 points"
board = "all"
when = "score >= 40"

[[rule]]
id = "first-1h"
title = "Hottest hour"
board = "1h"
when = "entered_top 1"

[[rule]]
id = "ten-decayed"
title = "Still warm"
board = "decayed"
when = "score >= 10 and rank <= 50"
"""

#: A winners' perk (one namespace: not judged on shards yet)
WINNERS = """
[[rule]]
id = "top3-day"
title = "Top 3 of the day"
board = "day"
when = "rank <= 3"
at = "close"
"""


async def outbox(store: Store) -> list[dict[str, str]]:
    rows: list[Any] = await store.client.xrange(store.key("perkbox"), "-", "+")
    return [fields for _, fields in rows]


async def unlocked(store: Store, member: str) -> dict[str, dict[str, Any]]:
    raw = await store.client.hgetall(store.key("perks", member))
    return {rule: orjson.loads(v) for rule, v in raw.items()}


@pytest.mark.parametrize("shards", [1, 3], ids=["one-namespace", "three-shards"])
async def test_unlocks_happen_once_through_kills_and_a_full_resend(
    namespace: Namespace, tmp_path: Path, shards: int
) -> None:
    """On three shards (over six partitions) the rank rules are judged on the merged board
    (stream/rank_judge.py), the score rules inside each shard's apply: the same contract."""
    events = read_edges(HIGGS, "higgs", 12_000)
    perks = tmp_path / "perks.toml"
    perks.write_text(RULES + (WINNERS if shards == 1 else ""))
    configure(
        namespace,
        perks=PerksSettings(path=str(perks)),
        worker=dataclasses.replace(namespace.settings.worker, batch_messages=5),
        broker=dataclasses.replace(namespace.settings.broker, partitions=2 * shards),
        redis=dataclasses.replace(namespace.settings.redis, shards=shards),
    )
    if shards == 1:
        stores = [namespace.store]
        store_of = {m: namespace.store for e in events for m in (e["target"],)}.__getitem__
    else:
        sharded = connect_shards(namespace.settings.redis, 2 * shards, ScoringRules.load())
        stores = list(sharded.stores)
        store_of = sharded.store_of

    async def everything() -> list[dict[str, str]]:
        return [e for s in stores for e in await outbox(s)]

    try:
        worker = namespace.start_worker()
        producing = asyncio.create_task(namespace.replay(events, envelope=4, rate=2000))
        rng = random.Random(11)
        for _ in range(
            2
        ):  # killed mid-apply: the unlocks and the scores move together or not at all
            await asyncio.sleep(rng.uniform(1.5, 2.5))  # not a wait: a kill at a random moment
            namespace.kill_worker(worker)
            worker = namespace.start_worker()
        await namespace.wait(await producing)

        first = await everything()
        ids = [e["id"] for e in first]
        assert len(ids) == len(set(ids)), "an unlock was issued twice"
        # score rule on an all-time board: exactly the members whose final score reaches 40
        expected = compute(events)
        forty = {m for m, mp in expected["all"].items() if mp >= 40_000}
        assert forty and {e["member"] for e in first if e["rule"] == "forty-all"} == forty
        # rank rule: the final top 2 hold it, and every holder was in the top 2 when it unlocked
        final_top2 = sorted(expected["all"], key=lambda m: -expected["all"][m])[:2]
        top2 = [e for e in first if e["rule"] == "top2-all"]
        assert set(final_top2) <= {e["member"] for e in top2}
        assert all(int(e["rank"]) <= 2 for e in top2)
        # the record names itself: deterministic id, title, payload, event time, board
        sample = top2[0]
        assert sample["id"] == unlock_id("top2-all", sample["member"])
        assert "." not in sample["id"]
        assert orjson.loads(sample["payload"]) == {"badge": "gold"}
        assert sample["title"] == "Top 2 of all time" and float(sample["at"]) > 1.3e9
        mine = await unlocked(store_of(sample["member"]), sample["member"])
        assert mine["top2-all"]["id"] == sample["id"]
        # a decayed rule with both conditions: points and rank as of the unlock satisfy both
        for e in (e for e in first if e["rule"] == "ten-decayed"):
            assert float(e["score"]) >= 10 and int(e["rank"]) <= 50
        # the 1h window moved on across these 33 h of data; no unlock was revoked
        hot = [e["member"] for e in first if e["rule"] == "first-1h"]
        assert len(hot) >= 2
        for m in hot:
            assert "first-1h" in await unlocked(store_of(m), m)
        if shards == 1:
            # the winners of 2012-07-01 (closed: the log runs to 07-02 16:18), once each, on
            # that day's archive; 07-02 is still open
            winners = [e for e in first if e["rule"] == "top3-day"]
            day = expected["day@2012-07-01"]
            top3 = sorted(day, key=lambda m: -day[m])[:3]
            assert sorted(e["member"] for e in winners) == sorted(top3)
            assert {(e["board"], e["period"]) for e in winners} == {
                ("day@2012-07-01", "2012-07-01")
            }
            assert sorted(int(e["rank"]) for e in winners) == [1, 2, 3]
            for e in winners:
                assert e["id"] == unlock_id("top3-day", e["member"], "2012-07-01")
                assert float(e["score"]) * 1000 == day[e["member"]]
        if shards > 1:
            # the shards' applies never judged a rank rule on their own slices (perkseen is the
            # apply's note of a rank rule's last look)
            for s in stores:
                assert await s.client.hgetall(s.key("perkseen")) == {}

        # every event again: duplicates change no score and unlock nothing
        await namespace.wait(await namespace.replay(events, envelope=50))
        assert await everything() == first
        if shards == 1:
            # a rebuild, then W two days on: the rebuilt generation judges the closed days again
            # (its perkclosed starts empty) and unlocks only 2012-07-02's winners, new
            out = subprocess.run(
                [sys.executable, "-m", "kudos", "rebuild", "--yes"],
                env=namespace.env(),
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert out.returncode == 0, out.stderr
            later = float(events[-1]["ts"]) + 2 * 86400  # type: ignore[arg-type]
            await namespace.wait(
                await namespace.replay(
                    [
                        {
                            "id": f"later-{k}",
                            "ts": later,
                            "kind": "like",
                            "actor": "x",
                            "target": f"y{k}",
                        }
                        for k in range(4)
                    ]
                )
            )
            after = await everything()
            assert after[: len(first)] == first
            # (the four newcomers lead the emptied 1h window: "first-1h" unlocks them)
            new = [e for e in after[len(first) :] if e["rule"] == "top3-day"]
            day2 = expected["day@2012-07-02"]
            assert sorted(e["member"] for e in new) == sorted(
                sorted(day2, key=lambda m: -day2[m])[:3]
            )
            assert {(e["rule"], e["period"]) for e in new} == {("top3-day", "2012-07-02")}
    finally:
        if shards > 1:
            await sharded.close()


async def test_ties_at_the_edge_and_exact_thresholds_unlock(
    namespace: Namespace, tmp_path: Path
) -> None:
    perks = tmp_path / "perks.toml"
    perks.write_text(
        """
        [[rule]]
        id = "first"
        board = "all"
        when = "rank <= 1"
        max_ties = 24
        payload = { crown = true }

        [[rule]]
        id = "exact"
        board = "all"
        when = "score >= 16.333"
        """
    )
    configure(namespace, perks=PerksSettings(path=str(perks)))
    store = namespace.store
    t = 1_600_000_000
    # 25 members tied at the top (two conversions each, 20 points): all share rank 1, and
    # 1 + max_ties = 25 may unlock at one check
    events: list[object] = [
        {
            "id": f"tie{i}{a}",
            "ts": t,
            "kind": "conversion",
            "actor": f"fan{a}",
            "target": f"t{i:02d}",
        }
        for i in range(25)
        for a in "ab"
    ]
    # conversion, conversion/2, share/3 from one actor in a day: exactly 16.333 points, a
    # number whose milli-points do not survive * 0.001 / 0.001 in floating point
    events += [
        {"id": f"x{k}", "ts": t + k, "kind": kind, "actor": "a", "target": "x"}
        for k, kind in enumerate(["conversion", "conversion", "share"])
    ]
    namespace.start_worker()
    await namespace.wait(await namespace.replay(events, envelope=50))
    got = {(e["rule"], e["member"]) for e in await outbox(store)}
    assert {m for r, m in got if r == "first"} == {f"t{i:02d}" for i in range(25)}
    assert ("exact", "x") in got
    record = (await unlocked(store, "t07"))["first"]
    assert record["rank"] == 1 and record["score"] == 20.0 and record["payload"] == {"crown": True}


CROWD_RULES = """
[[rule]]
id = "top3"
board = "all"
when = "rank <= 3"

[[rule]]
id = "top3-roomy"
board = "all"
when = "rank <= 3"
max_ties = 600
"""


def crowd_events(t: int) -> list[object]:
    """Two leaders (40 and 30 points), then 500 members tied at rank 3 with 10 points each."""
    events: list[object] = [
        {"id": f"lead{n}-{a}", "ts": t, "kind": "conversion", "actor": f"fan{a}", "target": lead}
        for lead, n in (("lead1", 4), ("lead2", 3))
        for a in range(n)
    ]
    events += [
        {"id": f"crowd{i}", "ts": t, "kind": "conversion", "actor": "fan", "target": f"m{i:03d}"}
        for i in range(500)
    ]
    return events


async def test_a_crowd_tied_at_the_edge_past_the_cap_unlocks_none_of_it(
    namespace: Namespace, real_servers: Servers, tmp_path: Path
) -> None:
    """500 members tied at rank 3 of a `rank <= 3` rule: one check may unlock 3 + max_ties (10)
    members, so none of the tie unlocks; the leaders do. The same log sent in other batches to
    another namespace unlocks the same members, a re-send unlocks nothing more, and `kudos perks`
    says how many tied members were left out. A rule with room for the tie unlocks all of it."""
    perks = tmp_path / "perks.toml"
    perks.write_text(CROWD_RULES)
    configure(namespace, perks=PerksSettings(path=str(perks)))
    events = crowd_events(1_600_000_000)
    namespace.start_worker()
    await namespace.wait(await namespace.replay(events, envelope=100))
    got = {(e["rule"], e["member"]) for e in await outbox(namespace.store)}
    top3 = {m for r, m in got if r == "top3"}
    assert top3 == {"lead1", "lead2"}
    assert len(top3) <= 3 + DEFAULT_MAX_TIES
    roomy = {m for r, m in got if r == "top3-roomy"}
    assert len(roomy) == 502 and {"lead1", "lead2", "m000", "m499"} <= roomy
    # the pure policy says the same of the final board
    rows = [(m, float(s)) for _, m, s in await namespace.export("all")]
    assert PerkRule("top3", "top3", "all", 3, None).rank_qualifiers(rows) == (top3, 500)
    ties = await namespace.store.perk_ties()
    assert set(ties) == {"top3"}
    assert (ties["top3"]["tied"], ties["top3"]["rank"], ties["top3"]["cap"]) == (500, 3, 13)
    listing = subprocess.run(
        [sys.executable, "-m", "kudos", "perks"],
        env=namespace.env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "top3: 500 members tied at #3" in listing, listing

    # every event again: nothing more unlocks
    before = await outbox(namespace.store)
    await namespace.wait(await namespace.replay(events, envelope=7))
    assert await outbox(namespace.store) == before

    # the same log in one message, to a fresh namespace: the same members unlock
    home = tmp_path / "other"
    home.mkdir()
    other = Namespace.connect(make_settings(real_servers, home), home)
    try:
        configure(other, perks=PerksSettings(path=str(perks)))
        other.start_worker()
        await other.wait(await other.replay(events, envelope=len(events)))
        assert {(e["rule"], e["member"]) for e in await outbox(other.store)} == got
    finally:
        other.stop_workers()
        await other.store.close()
