"""The page's live client as an ES module (web/static/kudos-client.js), in real Chromium, against
a scripted websocket server that serves the module from the package as the web process does:
snapshot and deltas applied to the channel's rows, duplicates dropped, a gap resumed, a
reconnect with growing backoff that resumes, an epoch change that starts again, the token asked
for, an "unavailable" retried, a refused board dropped. The page itself on the module, against
real servers: tests/web/test_page.py."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tests.kudos.frames import E, Script, board_snapshot, delta, recv, scripted_server, send
from tests.web.test_page import WAIT_MS

pytestmark = pytest.mark.integration

MODULE = resources.files("web").joinpath("static", "kudos-client.js")
HARNESS = b"""<!doctype html><meta charset="utf-8"><title>kudos-client.js</title>
<script type="module">
import * as K from "/static/kudos-client.js";
window.K = K;
window.log = [];
window.errors = [];
window.statuses = [];
</script>"""


def http(connection: ServerConnection, request: Request) -> Response | None:
    """The module and a blank page that imports it; /ws goes on to the websocket."""
    if request.path == "/ws":
        return None
    if request.path == "/static/kudos-client.js":
        body, kind = MODULE.read_bytes(), "text/javascript; charset=utf-8"
    elif request.path == "/":
        body, kind = HARNESS, "text/html; charset=utf-8"
    else:
        return Response(404, "Not Found", Headers({"Content-Length": "0"}), b"")
    headers = Headers({"Content-Type": kind, "Content-Length": str(len(body))})
    return Response(200, "OK", headers, body)


@asynccontextmanager
async def harness(script: Script, auth: bool = False) -> AsyncIterator[str]:
    """The page's URL on a scripted Kudos websocket server (tests/kudos/frames.py)."""
    async with scripted_server(script, auth, http) as url:
        yield url.replace("ws://", "http://").removesuffix("ws")


START = """([opts]) => {
  const live = new window.K.KudosClient({
    ...opts,
    onUpdate: (u) => window.log.push({channel: u.channel, kind: u.kind, seq: u.frame.seq,
      first: u.first, reason: u.reason, missed: u.missed,
      entries: u.entries.map((e) => [e.rank, e.member, e.score]),
      previous: u.previous.map((e) => e.member), boards: u.boards}),
    onError: (f, ch) => window.errors.push({code: f.code, fatal: f.fatal, channel: ch}),
    onStatus: (s) => window.statuses.push(s),
    onAuthNeeded: () => { window.asked = (window.asked || 0) + 1; return "s3cret"; },
    onDown: (delay) => (window.delays = [...(window.delays || []), delay]),
  });
  window.live = live;
  for (const [ch, o] of opts.subscribe) live.subscribe(ch, o);
  live.connect();
}"""


async def open_harness(browser: Any, url: str, **opts: Any) -> Any:
    page = await browser.new_page()
    await page.goto(url)
    await page.wait_for_function("!!(window.K && window.K.KudosClient)", timeout=WAIT_MS)
    await page.evaluate(START, [opts])
    return page


async def wait_log(page: Any, n: int) -> list[dict[str, Any]]:
    await page.wait_for_function(f"window.log.length >= {n}", timeout=WAIT_MS)
    log: list[dict[str, Any]] = await page.evaluate("window.log")
    return log


async def test_snapshot_deltas_gap_reconnect_backoff_resume_and_epoch(browser: Any) -> None:
    subs: list[tuple[float, dict[str, Any]]] = []
    reply = {"type": "subscribed", "channel": "board:week", "limit": 3}

    async def script(ws: ServerConnection, n: int) -> None:
        sub = await recv(ws)
        subs.append((time.monotonic(), sub))
        if n == 1:
            await send(ws, {**reply, "epoch": E, "seq": 4, "recovered": False, "id": sub["id"]})
            await send(ws, delta(4, "board:week"), board_snapshot(4, 3, "board:week"))
            climb = [{"member": "m2", "from": 3, "to": 1, "score": 50.0},
                     {"member": "m0", "from": 1, "to": 2, "score": 48.0},
                     {"member": "m1", "from": 2, "to": 3, "score": 44.0}]  # fmt: skip
            await send(ws, delta(5, "board:week", moved=climb), delta(5, "board:week"))
            await send(ws, delta(7, "board:week"))  # a gap: 6 is missing
            again = await recv(ws)
            subs.append((time.monotonic(), again))
            await send(ws, {**reply, "epoch": E, "seq": 7, "recovered": True, "id": again["id"]})
            await send(ws, delta(6, "board:week"), delta(7, "board:week"))
            await ws.close(1013, "too slow")
        elif n < 4:  # two attempts that fail at once: the backoff grows
            await ws.close(1011, "internal error")
        elif n == 4:  # resumed, then the feed's history is gone (a new epoch)
            await send(ws, {**reply, "epoch": E, "seq": 8, "recovered": True, "id": sub["id"]})
            left = [{"member": "m1", "rank": 3}]
            entered = [{"member": "m9", "rank": 3, "score": 45.0}]
            d8 = delta(8, "board:week", left=left, entered=entered)
            await send(ws, d8, d8)  # a duplicate: dropped, not a gap
            await send(ws, {**delta(1, "board:week"), "epoch": "ep2"})
            fresh = await recv(ws)
            subs.append((time.monotonic(), fresh))
            snap = {**board_snapshot(1, 2, "board:week"), "epoch": "ep2", "reset": True}
            await send(ws, {**reply, "epoch": "ep2", "seq": 1, "recovered": False})
            await send(ws, snap)
            await ws.wait_closed()

    async with harness(script) as url:
        page = await open_harness(
            browser, url, subscribe=[["board:week", {"limit": 3}]], backoff={"first": 150}
        )
        log = await wait_log(page, 8)
        delays = await page.evaluate("window.delays")
        await page.close()
    snap, climb, gap, r6, r7, resumed, d8, fresh = log
    assert snap["kind"] == "snapshot" and snap["first"] and snap["seq"] == 4
    assert snap["entries"] == [[1, "m0", 48.0], [2, "m1", 44.0], [3, "m2", 40.0]]
    assert climb["kind"] == "delta" and climb["seq"] == 5
    assert climb["entries"] == [[1, "m2", 50.0], [2, "m0", 48.0], [3, "m1", 44.0]]
    assert climb["previous"] == ["m0", "m1", "m2"]
    assert gap["kind"] == "resumed" and gap["missed"] == 2
    assert (r6["seq"], r7["seq"]) == (6, 7)  # the gap, filled by the resume; 7 once
    assert resumed["kind"] == "resumed" and resumed["missed"] == 1
    assert d8["entries"] == [[1, "m2", 50.0], [2, "m0", 48.0], [3, "m9", 45.0]]
    assert fresh["kind"] == "snapshot" and not fresh["first"] and fresh["reason"] == "reset"
    assert fresh["entries"] == [[1, "m0", 48.0], [2, "m1", 44.0]]
    sent = [s for _, s in subs]
    assert "resume" not in sent[0] and sent[0]["limit"] == 3
    assert sent[1]["resume"] == {"epoch": E, "seq": 5}  # the gap
    assert [s["resume"] for s in sent[2:5]] == [{"epoch": E, "seq": 7}] * 3  # each reconnect
    assert "resume" not in sent[5]  # the new epoch: no resume from the old one
    # the first reconnect waits 150 ms; after two connections that failed before any frame
    # (the hello alone does not reset the backoff), 300 ms then 600 ms, each times 0.6-1.0
    first, second, third = delays
    assert 90 <= first <= 150 and 180 <= second <= 300 and 360 <= third <= 600, delays
    assert subs[4][0] - subs[3][0] >= third / 1000 - 0.01  # and it did wait that long


async def test_token_unavailable_retry_and_a_refused_board(browser: Any) -> None:
    seen: list[dict[str, Any]] = []

    async def script(ws: ServerConnection, n: int) -> None:
        first = await recv(ws)
        seen.append(first)
        if first != {"op": "auth", "token": "s3cret"}:
            await ws.close(1008, "wrong token")
            return
        await send(ws, {"type": "authenticated"})
        requests = {}
        for _ in range(2):
            sub = await recv(ws)
            requests[sub["channel"]] = sub
        await send(ws, {"type": "error", "code": "unknown_board", "message": "no board",
                        "id": requests["board:nope"]["id"]})  # fmt: skip
        await send(ws, {"type": "error", "code": "unavailable", "message": "Redis is down",
                        "id": requests["board:all"]["id"]})  # fmt: skip
        again = await recv(ws)
        seen.append(again)
        reply = {"type": "subscribed", "channel": "board:all", "epoch": E, "seq": 1}
        await send(ws, {**reply, "recovered": False, "id": again["id"]})
        await send(ws, board_snapshot(1, 2))
        await ws.wait_closed()

    async with harness(script, auth=True) as url:
        t0 = time.monotonic()
        page = await open_harness(
            browser, url, subscribe=[["board:nope", {}], ["board:all", {"limit": 2}]]
        )
        [snap] = await wait_log(page, 1)
        waited = time.monotonic() - t0
        errors = await page.evaluate("window.errors")
        asked = await page.evaluate("window.asked")
        state = await page.evaluate("window.live.state()")
        bad = await page.evaluate(
            "() => { try { window.live.subscribe('week'); return ''; } catch (e) { return e.message; } }"
        )
        await page.close()
    assert asked == 1 and seen[0] == {"op": "auth", "token": "s3cret"}  # the token goes first
    assert errors == [
        {"code": "unknown_board", "fatal": True, "channel": "board:nope"},
        {"code": "unavailable", "fatal": False, "channel": "board:all"},
    ]
    assert seen[1]["channel"] == "board:all" and waited >= 1.0  # asked again after 1 s
    assert snap["entries"] == [[1, "m0", 48.0], [2, "m1", 44.0]]
    assert state == "live"  # the refused board is dropped, not waited for
    assert "is not a channel" in bad


async def test_paced_under_the_rate_limit_and_hostile_frames(browser: Any) -> None:
    """45 channels at once stay under the server's 20/s, burst 40; a snapshot or delta the
    client cannot apply throws nothing and is followed by a fresh subscribe after a pause."""
    times: list[tuple[float, dict[str, Any]]] = []

    async def script(ws: ServerConnection, n: int) -> None:
        t0 = time.monotonic()
        reply = {"type": "subscribed", "channel": "board:c0", "epoch": E, "seq": 1}
        while time.monotonic() - t0 < 4.5:
            try:
                msg = orjson.loads(await asyncio.wait_for(ws.recv(), 0.2))
            except TimeoutError:
                continue
            times.append((time.monotonic(), msg))
            if msg["channel"] != "board:c0":
                continue
            await send(ws, {**reply, "recovered": False, "id": msg["id"]})
            if sum(m["channel"] == "board:c0" for _, m in times) == 1:
                bad = board_snapshot(1, 2, "board:c0")
                bad["entries"][0]["rank"] = None  # cannot be ranked
                await send(ws, bad)
            else:
                await send(ws, board_snapshot(1, 2, "board:c0"))
                too_many = [{"member": f"x{i}", "rank": 3 + i, "score": 1.0} for i in range(5)]
                await send(ws, delta(2, "board:c0", entered=too_many))  # beyond its top 2
        await ws.wait_closed()

    async with harness(script) as url:
        page = await browser.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(str(exc)))
        await page.goto(url)
        await page.wait_for_function("!!(window.K && window.K.KudosClient)", timeout=WAIT_MS)
        channels = [[f"board:c{i}", {"limit": 2}] for i in range(45)]
        await page.evaluate(START, [{"subscribe": channels}])
        await page.wait_for_function("window.log.length >= 1", timeout=WAIT_MS)
        await asyncio.sleep(4.6)  # until the server stops reading
        log = await page.evaluate("window.log")
        await page.close()
    assert problems == []
    # the server's bucket: 40 at once, then 20 a second; never overdrawn
    tokens, at = 40.0, times[0][0]
    for t, _ in times:
        tokens = min(40.0, tokens + (t - at) * 20.0) - 1
        at = t
        assert tokens >= -0.5, times  # (a little slack for the clock)
    assert sorted({m["channel"] for _, m in times if m["op"] == "subscribe"}) == sorted(
        c for c, _ in channels
    )
    c0 = [(t, m) for t, m in times if m["channel"] == "board:c0"]
    # each frame it cannot apply: a fresh subscribe (no resume) after a pause, never at once,
    # so a server that keeps sending them gets about one request a second
    assert len(c0) >= 3 and all("resume" not in m for _, m in c0)
    assert all(b[0] - a[0] >= 0.9 for a, b in itertools.pairwise(c0)), c0
    # only the good snapshots were handed over: not the bad one, nor the oversized delta
    assert {(u["kind"], u["seq"]) for u in log} == {("snapshot", 1)}
    assert len(c0) - 2 <= len(log) <= len(c0) - 1  # (the last answer may still be on its way)
