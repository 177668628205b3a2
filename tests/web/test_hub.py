"""The live push protocol against real servers: a worker, `kudos web` processes, websocket clients."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from kudos import servers
from tests.conftest import Namespace
from tests.web.live import (
    LiveClient,
    api_top,
    scrape,
    start_web,
    tiny_receive_buffer_socket,
    value,
)
from web import feed
from web.push import Hub

pytestmark = pytest.mark.integration

T0 = 1_600_000_000


def base_events() -> list[dict[str, Any]]:
    """m0..m11 with 12, 11, ... 3, 2, 2 shares (4 points each) from distinct actors."""
    events = []
    for m in range(12):
        for a in range(max(12 - m, 2)):
            events.append(
                {
                    "id": f"b-{m}-{a}",
                    "ts": T0 + len(events),
                    "kind": "share",
                    "actor": f"a{a}",
                    "target": f"m{m}",
                }
            )
    return events


def climb(member: str, tag: str, conversions: int, ts: int) -> list[dict[str, Any]]:
    """A like then ``conversions`` conversions: odd scores never tie the others' multiples of 4."""
    out = [{"id": f"{tag}-like", "ts": ts, "kind": "like", "actor": f"{tag}-x", "target": member}]
    for k in range(conversions):
        out.append(
            {
                "id": f"{tag}-{k}",
                "ts": ts + 1 + k,
                "kind": "conversion",
                "actor": f"{tag}-c{k}",
                "target": member,
            }
        )
    return out


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
        assert namespace.store is not None
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


async def test_two_web_processes_agree_and_clients_resume(namespace: Namespace) -> None:
    namespace.start_worker()
    await namespace.wait(await namespace.replay(base_events(), envelope=50))
    port_a = namespace.settings.web.port
    port_b = servers.free_port()
    web_a = start_web(namespace, port_a, "web-a")
    web_b = start_web(namespace, port_b, "web-b")
    try:
        a = await LiveClient.open(port_a)
        b = await LiveClient.open(port_b)
        ra = await a.subscribe("board:all", limit=10)
        rb = await b.subscribe("board:all", limit=10)
        assert ra["epoch"] == rb["epoch"]
        for step in range(3):  # three applies a few ticks apart: at least three frames
            await namespace.wait(
                await namespace.replay(climb(f"m{9 + step}", f"c{step}", 2, T0 + 600 + 10 * step))
            )
            want = api_top(port_a, "all", 10)
            await a.until(lambda: a.tops["board:all"] == want)  # noqa: B023 - awaited here
            await b.until(lambda: b.tops["board:all"] == want)  # noqa: B023
        fa = {f["seq"]: f for f in a.frames if f["type"] == "delta"}
        fb = {f["seq"]: f for f in b.frames if f["type"] == "delta"}
        assert len(fa) >= 3 and max(fa) == max(fb)
        for seq in fa.keys() & fb.keys():  # same numbers, same frames, from either process
            assert fa[seq] == fb[seq]

        # a disconnects; more events; web A restarts; a resumes against the restarted process
        epoch, seq = a.position["board:all"]
        await a.close()
        await namespace.wait(
            await namespace.replay(climb("m10", "c2", 6, T0 + 700), envelope=1, rate=20)
        )
        want = api_top(port_a, "all", 10)
        await b.until(lambda: b.tops["board:all"] == want)
        servers.stop(web_a)
        web_a = start_web(namespace, port_a, "web-a2")
        resumed = await LiveClient.open(port_a)
        resumed.tops["board:all"] = dict(a.tops["board:all"])
        resumed.position["board:all"] = (epoch, seq)
        reply = await resumed.subscribe("board:all", limit=10, resume={"epoch": epoch, "seq": seq})
        assert reply["recovered"] is True
        await resumed.until(lambda: resumed.tops["board:all"] == want)
        assert next(f["seq"] for f in resumed.frames if f["type"] == "delta") == seq + 1

        # the same position resumes against the other process too
        other = await LiveClient.open(port_b)
        other.tops["board:all"] = dict(a.tops["board:all"])
        other.position["board:all"] = (epoch, seq)
        reply = await other.subscribe("board:all", limit=10, resume={"epoch": epoch, "seq": seq})
        assert reply["recovered"] is True
        await other.until(lambda: other.tops["board:all"] == want)

        # an unknown epoch cannot resume: recovered false and a fresh snapshot
        stranger = await LiveClient.open(port_b)
        reply = await stranger.subscribe(
            "board:all", limit=10, resume={"epoch": "not-this-one", "seq": 3}
        )
        assert reply["recovered"] is False and stranger.tops["board:all"] == want
        for c in (b, resumed, other, stranger):
            await c.close()
    finally:
        servers.stop(web_a)
        servers.stop(web_b)


async def test_limits_errors_origin_and_auth(namespace: Namespace) -> None:
    port = namespace.settings.web.port
    web = start_web(
        namespace,
        port,
        KUDOS_WEB_MAX_SUBSCRIPTIONS="2",
        KUDOS_WEB_MAX_MESSAGES_PER_S="5",
        KUDOS_WEB_MAX_MESSAGE_BYTES="512",
        KUDOS_WEB_ALLOWED_ORIGINS="https://partner.example",
    )
    try:
        c = await LiveClient.open(port)
        for raw, code in [
            ("{not json", "bad_json"),
            ("[1, 2]", "bad_request"),
            ('{"op": "subscrbe", "channel": "board:all"}', "bad_request"),
            ('{"op": "subscribe"}', "bad_request"),
            ('{"op": "subscribe", "channel": "leaderboard"}', "bad_channel"),
            ('{"op": "subscribe", "channel": "board:monthly"}', "unknown_board"),
            ('{"op": "subscribe", "channel": "board:7d:nosuchtag"}', "unknown_board"),
            ('{"op": "subscribe", "channel": "board:all", "limit": 0}', "bad_request"),
            ('{"op": "subscribe", "channel": "board:all", "limit": 101}', "bad_request"),
            ('{"op": "unsubscribe", "channel": "board:all"}', "not_subscribed"),
        ]:
            await c.ws.send(raw)
            reply = await c.recv()
            assert reply["type"] == "error" and reply["code"] == code, (raw, reply)
            await asyncio.sleep(0.25)  # stay under 5 messages/s
        await c.subscribe("board:all", limit=3)
        await asyncio.sleep(0.25)
        await c.subscribe("member:m1")
        await asyncio.sleep(0.25)
        reply = await c.request({"op": "subscribe", "channel": "board:24h"})
        assert reply["code"] == "too_many_subscriptions"
        assert (await c.request({"op": "ping", "id": 9})) == {"type": "pong", "id": 9}

        # more than 5 messages per second (burst 10): closed with 1008
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(40):
                await c.send({"op": "ping"})
            while True:
                await c.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008

        # a message over the size limit: 1009
        big = await LiveClient.open(port)
        await big.ws.send('{"op": "ping", "pad": "' + "x" * 2000 + '"}')
        with pytest.raises(ConnectionClosed) as closed:
            await big.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009

        # Origin: a foreign page is refused, the page's own host and a listed origin are not
        with pytest.raises(InvalidStatus) as refused:
            await LiveClient.open(port, origin="https://evil.example")
        assert refused.value.response.status_code == 403
        for origin in (f"http://127.0.0.1:{port}", "https://partner.example"):
            ok = await LiveClient.open(port, origin=origin)
            await ok.close()
    finally:
        servers.stop(web)

    # token auth: the first message must carry the token
    web = start_web(namespace, port, "web-auth", KUDOS_WEB_TOKEN="s3cret")
    try:
        anon = await LiveClient.open(port)
        assert anon.hello["limits"]["auth"] is True
        await anon.send({"op": "subscribe", "channel": "board:all"})
        with pytest.raises(ConnectionClosed) as closed:
            await anon.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        wrong = await LiveClient.open(port)
        await wrong.send({"op": "auth", "token": "guess"})
        with pytest.raises(ConnectionClosed) as closed:
            await wrong.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        good = await LiveClient.open(port)
        assert (await good.request({"op": "auth", "token": "s3cret"}))["type"] == "authenticated"
        await good.subscribe("board:all")
        await good.close()
    finally:
        servers.stop(web)


async def test_slow_subscriber_does_not_delay_a_fast_one(namespace: Namespace) -> None:
    namespace.start_worker()
    await namespace.wait(await namespace.replay(base_events(), envelope=50))
    port = namespace.settings.web.port
    web = start_web(
        namespace,
        port,
        KUDOS_WEB_SLOW_CLIENT_BYTES="2000",
        KUDOS_WEB_SLOW_CLIENT_TIMEOUT_S="3",
        KUDOS_WEB_MAX_SUBSCRIPTIONS="100",
    )
    try:
        # the slow client subscribes to many channels and then never reads again
        slow = await LiveClient.open(
            port, sock=tiny_receive_buffer_socket(port), max_queue=1, close_timeout=1
        )
        fast = await LiveClient.open(port)
        await fast.subscribe("board:all", limit=100)
        for b in ("all", "1h", "24h", "7d", "decayed"):
            await slow.subscribe(f"board:{b}", limit=100)
        # many small applies: many frames, each listing most of the top rows
        events = []
        for k in range(3000):
            m = f"n{k % 100}"
            events.append(
                {"id": f"s{k}", "ts": T0 + 1000 + k, "kind": "click", "actor": f"q{k}", "target": m}
            )
        produced = await namespace.replay(events, envelope=5, rate=1000)
        await namespace.wait(produced)
        want = api_top(port, "all", 100)
        # the fast client is complete, in order (per-frame seq check), while the slow one lags
        await fast.until(lambda: fast.tops["board:all"] == want, timeout=20)
        await asyncio.sleep(4)  # past the slow-client timeout, still not reading
        # the server gives up on the slow client: close code 1013 within the timeout
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await slow.recv(timeout=15)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        # GET /metrics counts it: conflated on its channels, then closed
        _, samples = scrape(port)
        assert value(samples, "kudos_ws_slow_conflated_total") >= 1
        assert value(samples, "kudos_ws_slow_closed_total") == 1
        assert value(samples, "kudos_ws_connections") == 1  # the fast one
        await fast.close()
    finally:
        servers.stop(web)


async def test_hubs_recover_from_a_lost_or_rolled_back_feed(namespace: Namespace) -> None:
    """Two web processes' hubs on one Redis (in-process, no sockets): when Redis loses the feed
    (flush) or comes back with fewer frames than were sent (crash inside the fsync window), both
    end up on one new epoch holding the board's real top, not an empty or stale one."""
    store = namespace.store
    assert store is not None
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
