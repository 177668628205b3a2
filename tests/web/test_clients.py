"""Client limits against a real `kudos web` process: a slow subscriber is conflated, then closed,
and never delays a fast one; replays and replies obey the same bound; connections per address."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from kudos import servers
from tests.conftest import Namespace
from tests.eventually import eventually
from tests.web.events import T0, base_events
from tests.web.live import (
    LiveClient,
    api_top,
    publish_frames,
    rss_bytes,
    scrape,
    seed_board,
    start_web,
    tiny_receive_buffer_socket,
    value,
)
from web.clients import client_address

pytestmark = pytest.mark.integration

MB = 1 << 20


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


async def _missed_frames(
    namespace: Namespace, port: int, n: int
) -> tuple[LiveClient, dict[str, tuple[int, float]], str, int]:
    """A reading subscriber of the top 100 of ``all`` after ``n`` frames that a client which left
    before them missed: (the reader, the top before them, epoch, seq before them)."""
    await seed_board(namespace.store, "all", 100)
    reader = await LiveClient.open(port)
    await reader.subscribe("board:all", limit=100)
    epoch, seq = reader.position["board:all"]
    top = dict(reader.tops["board:all"])
    last = await publish_frames(namespace.store, "all", n)
    await reader.until(lambda: reader.position["board:all"] == (epoch, last))
    return reader, top, epoch, seq


async def test_a_replay_to_a_client_that_does_not_read_is_cut_at_the_bound(
    namespace: Namespace,
) -> None:
    """300 missed frames (~4.5 KB each) to a client that does not read: it gets the start of the
    replay, never all of it, then the latest state once it reads again."""
    port = namespace.settings.web.port
    web = start_web(
        namespace,
        port,
        KUDOS_WEB_SLOW_CLIENT_BYTES="20000",
        KUDOS_WEB_SLOW_CLIENT_TIMEOUT_S="60",
    )
    try:
        reader, top, epoch, seq = await _missed_frames(namespace, port, 300)
        slow = await LiveClient.open(
            port, sock=tiny_receive_buffer_socket(port), max_queue=1, close_timeout=1
        )
        slow.tops["board:all"], slow.position["board:all"] = top, (epoch, seq)
        resume = {"epoch": epoch, "seq": seq}
        await slow.send({"op": "subscribe", "channel": "board:all", "limit": 100, "resume": resume})
        # the server stops sending to it (it counts the client as conflated) ...
        await eventually(
            lambda: value(scrape(port)[1], "kudos_ws_slow_conflated_total") >= 1,
            what="the server to treat the client as slow",
        )
        # ... and once it reads: the reply, the start of the replay, then the latest state
        reply = await slow.recv()
        assert reply["type"] == "subscribed" and reply["recovered"] is True, reply
        replayed = 0
        while (frame := await slow.recv())["type"] == "delta":
            replayed += 1
        assert frame["type"] == "snapshot" and frame.get("conflated") is True, frame
        assert 0 < replayed < 300
        assert slow.tops["board:all"] == reader.tops["board:all"]
        assert slow.position["board:all"] == reader.position["board:all"] == (epoch, seq + 300)
        await slow.close()
        await reader.close()
    finally:
        servers.stop(web)


async def test_resume_floods_from_a_client_that_never_reads_stay_bounded(
    namespace: Namespace,
) -> None:
    """200 resume-subscribes, each asking for 300 frames (~1.3 MB), from a client that never
    reads: the web process's memory stays bounded and the client is closed with 1013."""
    port = namespace.settings.web.port
    web = start_web(
        namespace,
        port,
        KUDOS_WEB_SLOW_CLIENT_BYTES="65536",
        KUDOS_WEB_SLOW_CLIENT_TIMEOUT_S="6",
        KUDOS_WEB_MAX_MESSAGES_PER_S="1000",
        KUDOS_WEB_MAX_SUBSCRIPTIONS="1000",
    )
    try:
        _, _, epoch, seq = await _missed_frames(namespace, port, 300)
        base = rss_bytes(web)
        flood = await LiveClient.open(
            port, sock=tiny_receive_buffer_socket(port), max_queue=1, close_timeout=1
        )
        for _ in range(200):
            await flood.send(
                {
                    "op": "subscribe",
                    "channel": "board:all",
                    "limit": 100,
                    "resume": {"epoch": epoch, "seq": seq},
                }
            )
        peak = base

        def closed() -> bool:
            nonlocal peak
            peak = max(peak, rss_bytes(web))
            return value(scrape(port)[1], "kudos_ws_slow_closed_total") == 1

        await eventually(closed, timeout=30, what="the flooding client to be closed as slow")
        assert peak - base < 40 * MB, f"the web process grew by {(peak - base) / MB:.0f} MB"
        await flood.ws.close()
    finally:
        servers.stop(web)


async def test_connections_per_address_are_capped(namespace: Namespace) -> None:
    port = namespace.settings.web.port
    web = start_web(namespace, port, KUDOS_WEB_MAX_CONNECTIONS_PER_ADDRESS="100")
    try:
        clients = [await LiveClient.open(port) for _ in range(100)]
        with pytest.raises(InvalidStatus) as refused:
            await LiveClient.open(port)
        assert refused.value.response.status_code == 429
        assert b"from this address" in refused.value.response.body
        # a connection that ends frees its place
        await clients.pop().close()

        async def reopened() -> LiveClient | None:
            try:
                return await LiveClient.open(port)
            except InvalidStatus:
                return None

        clients.append(await eventually(reopened, what="a place to be freed"))
        for c in clients:
            await c.close()
    finally:
        servers.stop(web)


def test_the_client_address_is_the_peer_unless_it_is_a_trusted_proxy() -> None:
    peer = ("10.0.0.5", 41000)
    # no trusted proxy: X-Forwarded-For is whatever the client wrote, so it is ignored
    assert client_address(peer, ["203.0.113.9"], "") == "10.0.0.5"
    # behind a trusted proxy: the rightmost address the proxies did not add themselves
    trusted = "10.0.0.0/8, 192.168.1.1"
    assert client_address(peer, ["203.0.113.9"], trusted) == "203.0.113.9"
    assert client_address(peer, ["1.2.3.4, 203.0.113.9", "192.168.1.1"], trusted) == ("203.0.113.9")
    assert client_address(peer, [], trusted) == "10.0.0.5"
    assert client_address(peer, ["not an address"], trusted) == "10.0.0.5"
    assert client_address(("203.0.113.7", 1), ["1.2.3.4"], trusted) == "203.0.113.7"
    assert client_address(None, [], trusted) == "unknown"
