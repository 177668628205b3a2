"""The hub against real servers: snapshots, deltas and rank events from a worker through `kudos web`
to websocket clients, and two in-process hubs recovering a lost or rolled-back feed."""

from __future__ import annotations

from typing import Any

import pytest

from kudos import servers
from tests.conftest import Namespace
from tests.eventually import eventually
from tests.web.events import T0, base_events, climb
from tests.web.live import LiveClient, api_top, scrape, start_web, value
from tests.web.test_page import get_json
from web import feed
from web.hub import Hub

pytestmark = pytest.mark.integration


async def test_snapshot_deltas_and_rank_events(namespace: Namespace) -> None:
    namespace.start_worker()
    await namespace.wait(await namespace.replay(base_events(), envelope=50))
    port = namespace.settings.web.port
    web = start_web(namespace, port)
    try:
        board = await LiveClient.open(port)
        await board.subscribe("board:all", limit=5)
        assert board.tops["board:all"] == api_top(port, "all", 5)
        assert board.tops["board:all"]["m0"] == (1, 48.0)

        m9 = await LiveClient.open(port)
        await m9.subscribe("member:m9")
        assert m9.standing["member:m9"]["all"] == {"rank": 10, "score": 12.0}
        assert m9.standing["member:m9"]["decayed"] is not None
        m3 = await LiveClient.open(port)
        await m3.subscribe("member:m3")

        # m9 climbs from 10th to 1st: 12 + 1 + 4 × 10 = 53 points
        await namespace.wait(
            await namespace.replay(climb("m9", "up", 4, T0 + 500), envelope=1, rate=20)
        )
        want = api_top(port, "all", 5)
        assert want["m9"] == (1, 53.0)
        await board.until(lambda: board.tops["board:all"] == want)
        await m9.until(lambda: m9.standing["member:m9"]["all"] == {"rank": 1, "score": 53.0})
        await m9.until(
            lambda: any(e["event"] == "entered_top" and e["top"] == 1 for e in m9.events)
        )
        await m3.until(
            lambda: any(
                e["event"] == "overtaken" and e["overtaker"] == "m9" and e["overtaken"] == "m3"
                for e in m3.events
            )
        )
        # the board's subscribers saw m9 enter their top 5 (no gap in seq: checked per frame)
        deltas = [f for f in board.frames if f["type"] == "delta"]
        assert any(e["member"] == "m9" for d in deltas for e in d["entered"])
        assert any(
            e["event"] == "entered_top" and e["member"] == "m9"
            for d in deltas
            for e in d.get("events", [])
        )
        # rank events are kept only for watched members: m0 was overtaken too, but nobody
        # follows m0, so nothing was written for it
        store = namespace.store
        assert await store.client.exists(store.key("feedlog", "member:m3")) == 1
        assert await store.client.exists(store.key("feedlog", "member:m0")) == 0
        # events from other parts (perk unlocks, bait alerts) reach the member's channel
        perk = {"event": "perk", "member": "m3", "rule": "top10-all", "title": "Top 10"}
        await namespace.store.feed_member_events([("m3", feed.member_record(None, [perk], 1.0))])
        await m3.until(lambda: any(e["event"] == "perk" for e in m3.events))
        assert next(e for e in m3.events if e["event"] == "perk")["rule"] == "top10-all"
        # a second subscription to the same board with another N: its own top-N view
        await board.subscribe("board:all", limit=2)
        assert board.tops["board:all"] == api_top(port, "all", 2)
        reply = await board.request({"op": "unsubscribe", "channel": "board:all"})
        assert reply["type"] == "unsubscribed"
        for c in (board, m9, m3):
            await c.close()
    finally:
        servers.stop(web)


async def test_a_cohort_channel_ranks_its_members_among_themselves_live(
    namespace: Namespace,
) -> None:
    """``cohort:<board>`` with members: the REST cohort's answer as a snapshot, then a frame
    each time it changes; bad lists are refused with the reason; a resume with nothing new in
    between is recovered."""
    namespace.start_worker()
    await namespace.wait(await namespace.replay(base_events(), envelope=50))
    port = namespace.settings.web.port
    web = start_web(namespace, port)
    try:
        c = await LiveClient.open(port)
        reply = await c.subscribe("cohort:all", members=["m3", "m9", "nobody"])
        assert reply["members"] == ["m3", "m9", "nobody"]
        snap = c.frames[-1]
        rest = get_json(port, "/api/boards/all/cohort?members=m3,m9,nobody")
        assert snap["entries"] == rest["entries"] and snap["missing"] == ["nobody"]
        assert [(e["member"], e["rank"]) for e in snap["entries"]] == [("m3", 1), ("m9", 2)]
        # m9 climbs from 10th to 1st: first of the cohort, first of the board
        await namespace.wait(await namespace.replay(climb("m9", "up", 4, T0 + 500), envelope=5))
        await c.until(lambda: c.tops["cohort:all"].get("m9") == (1, 53.0))
        last = next(f for f in reversed(c.frames) if f["type"] == "delta")
        assert last["entries"][0] == {"rank": 1, "member": "m9", "score": 53.0, "global_rank": 1}
        assert last["seq"] == snap["seq"] + len([f for f in c.frames if f["type"] == "delta"])
        # nothing changed since: a resume at this (epoch, seq) is recovered, no snapshot
        again = await LiveClient.open(port)
        resumed = await again.subscribe(
            "cohort:all",
            members=["m3", "m9", "nobody"],
            resume={"epoch": last["epoch"], "seq": last["seq"]},
        )
        assert resumed["recovered"] is True
        for bad, code in (
            ({"members": [f"u{i}" for i in range(101)]}, "bad_request"),
            ({"members": []}, "bad_request"),
            ({"members": ["a\nb"]}, "bad_request"),
            ({"members": "m3"}, "bad_request"),
        ):
            err = await c.request({"op": "subscribe", "channel": "cohort:all", **bad})
            assert (err["type"], err["code"]) == ("error", code), err
        err = await c.request({"op": "subscribe", "channel": "cohort:nope", "members": ["m3"]})
        assert err["code"] == "unknown_board"
        assert (await c.request({"op": "unsubscribe", "channel": "cohort:all"}))["type"] == (
            "unsubscribed"
        )
        # at most five cohorts per connection
        for b in ("1h", "24h", "7d", "decayed", "day"):
            await c.subscribe(f"cohort:{b}", members=["m3"])
        err = await c.request({"op": "subscribe", "channel": "cohort:week", "members": ["m3"]})
        assert err["code"] == "too_many_subscriptions"

        def cohort_subscriptions() -> float:
            _, samples = scrape(port)
            return value(samples, "kudos_ws_subscriptions", kind="cohort")

        assert cohort_subscriptions() == 6  # (five here, one on the resumed connection)
        # a closed connection leaves no cohort behind (none is read again for nobody)
        for x in (c, again):
            await x.close()
        await eventually(lambda: cohort_subscriptions() == 0, what="cohorts left by the closed")
    finally:
        servers.stop(web)


async def test_hubs_recover_from_a_lost_or_rolled_back_feed(namespace: Namespace) -> None:
    """Two web processes' hubs on one Redis (in-process, no sockets): when Redis loses the feed
    (flush) or comes back with fewer frames than were sent (crash inside the fsync window), both
    end up on one new epoch holding the board's real top, not an empty or stale one."""
    store = namespace.store
    board, changes = store.key("board", "all"), store.key("changes")
    await store.client.zadd(board, {f"m{i}": 1000 * (10 - i) for i in range(10)})
    await store.client.hincrby(changes, "all", 1)
    a, b = Hub(store, namespace.settings.web), Hub(store, namespace.settings.web)
    ca, cb = a._board("all"), b._board("all")

    def top(ch: Any) -> list[tuple[str, float]]:
        return [(r.member, r.score) for r in ch.rows]

    want = [(f"m{i}", float(10 - i)) for i in range(10)]
    for _ in range(3):
        await a._tick_board(ca)
        await b._tick_board(cb)
    assert top(ca) == top(cb) == want and ca.epoch == cb.epoch and ca.seq == cb.seq >= 1

    # Redis loses the feed (not the boards); b notices first and publishes seq 1 of a new epoch
    old_epoch = ca.epoch
    await store.client.delete(store.key("feedepoch"), store.key("feed", "board:all"))
    for _ in range(3):
        await b._tick_board(cb)
    for _ in range(3):
        await a._tick_board(ca)
    assert ca.epoch == cb.epoch != old_epoch
    assert top(ca) == top(cb) == want

    # Redis comes back with an older seq in the same epoch: a new epoch, and everyone resyncs
    await store.client.zincrby(board, 10000, "m9")
    await store.client.hincrby(changes, "all", 1)
    for _ in range(2):
        await a._tick_board(ca)
        await b._tick_board(cb)
    rolled_epoch = ca.epoch
    await store.client.hset(store.key("feed", "board:all"), "seq", 1)
    for _ in range(4):
        await a._tick_board(ca)
        await b._tick_board(cb)
    assert ca.epoch == cb.epoch != rolled_epoch
    assert top(ca)[0] == ("m9", 11.0) and top(ca) == top(cb)
