"""Client limits against a real `kudos web` process: a slow subscriber is conflated, then closed,
and never delays a fast one."""

from __future__ import annotations

import asyncio

import pytest
from websockets.exceptions import ConnectionClosed

from kudos import servers
from tests.conftest import Namespace
from tests.web.events import T0, base_events
from tests.web.live import LiveClient, api_top, scrape, start_web, tiny_receive_buffer_socket, value

pytestmark = pytest.mark.integration


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
