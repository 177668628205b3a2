"""Protocol sessions against real `kudos web` processes: subscribe and resume across processes,
request errors, limits, Origin, token auth and its timeout, idle connections, unknown members."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from kudos import servers
from tests.conftest import Namespace
from tests.eventually import eventually
from tests.web.events import T0, base_events, climb
from tests.web.live import LiveClient, api_top, seed_board, start_web

pytestmark = pytest.mark.integration


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
    await seed_board(namespace.store, "all", 10)  # (member:m1 must exist to be followed)
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

    # token auth: the first message must carry the token, within KUDOS_WEB_AUTH_TIMEOUT_S
    web = start_web(
        namespace, port, "web-auth", KUDOS_WEB_TOKEN="s3cret", KUDOS_WEB_AUTH_TIMEOUT_S="1"
    )
    try:
        silent = await LiveClient.open(port)
        with pytest.raises(ConnectionClosed) as closed:
            await silent.recv(timeout=4)  # (the default timeout is 5 s)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
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


async def test_idle_connections_close_and_unseen_members_create_nothing(
    namespace: Namespace,
) -> None:
    port = namespace.settings.web.port
    store = namespace.store
    await seed_board(store, "all", 10)
    web = start_web(namespace, port, KUDOS_WEB_IDLE_TIMEOUT_S="1")
    try:
        # a connection that follows a channel is not idle, however quiet
        follower = await LiveClient.open(port)
        await follower.subscribe("board:all")
        # one that follows nothing and says nothing is closed with 1001 (going away)
        idle = await LiveClient.open(port)
        with pytest.raises(ConnectionClosed) as closed:
            await idle.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        # (the follower has been quiet for longer than the idle one now)
        assert (await follower.request({"op": "ping", "id": 1}))["type"] == "pong"
        # once it follows nothing again, its quiet counts
        await follower.request({"op": "unsubscribe", "channel": "board:all"})
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await follower.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001

        # a member nobody has seen may be followed, but not a single key is written for them
        c = await LiveClient.open(port)
        await c.subscribe("member:m3")  # (following a member publishes the base boards' feeds)
        boards = [store.key("feed", f"board:{b}") for b in store.rules.base_boards]

        async def published() -> bool:
            return bool(await store.client.exists(*boards) == len(boards))

        await eventually(published, what="the base boards' feeds to be published")
        keys = set(await store.client.keys(store.keys.pattern()))
        unseen = ["nobody", "m10", "x" * 200]
        for n, member in enumerate(unseen):
            reply = await c.subscribe(f"member:{member}", id=n)
            assert reply["recovered"] is False and reply["id"] == n
            assert set(c.standing[f"member:{member}"].values()) == {None}
        assert set(await store.client.keys(store.keys.pattern())) == keys
        for member in unseen:  # (not even an entry in an existing key)
            assert await store.client.zscore(store.key("watched"), member) is None
        # ... until they are seen: then their channel carries on as any other
        await store.client.zadd(store.key("board", "all"), {"nobody": 1_000_000})
        await store.client.hincrby(store.key("changes"), "all", 1)
        await c.until(lambda: c.standing["member:nobody"]["all"] == {"rank": 1, "score": 1000.0})
        assert await store.client.zscore(store.key("watched"), "nobody") is not None
        await c.close()
    finally:
        servers.stop(web)
