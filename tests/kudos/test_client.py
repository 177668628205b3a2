"""The Python live client (kudos.client) and its sans-I/O core (kudos.subscriptions): the state a
client holds per channel, sequence gaps and resume, then the connection against a scripted
websocket server (reconnect with backoff, resume, auth, refusals, readers in several tasks, a
reader that falls behind). kudos watch and the chat bot on real servers: tests/kudos/test_watch.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection

from kudos import servers
from kudos.client import Client
from kudos.subscriptions import Subscriptions, Update
from leaderboard.errors import LiveError
from tests.eventually import eventually
from tests.kudos.frames import E, board_snapshot, delta, event, recv, scripted_server, send


def ranks(u: Update) -> list[tuple[int, str, float]]:
    return [(e["rank"], e["member"], e["score"]) for e in u.entries]


# -- the core (pure) -------------------------------------------------------------------------------


def test_board_state_follows_the_deltas_in_order_and_once() -> None:
    subs = Subscriptions()
    assert subs.add("board:week", 5) == []  # not connected: nothing to send yet
    [sub] = subs.on_connect()
    assert sub == {"op": "subscribe", "channel": "board:week", "id": 1, "limit": 5}
    assert subs.receive(delta(3, "board:week")).updates == []  # before the snapshot: in it
    [snap] = subs.receive(board_snapshot(4, channel="board:week")).updates
    assert snap.kind == "snapshot" and snap.first and snap.limit == 5
    assert ranks(snap) == [(1, "m0", 48.0), (2, "m1", 44.0), (3, "m2", 40.0), (4, "m3", 36.0),
                           (5, "m4", 32.0)]  # fmt: skip
    step = delta(
        5,
        "board:week",
        left=[{"member": "m4", "rank": 5}],
        entered=[{"member": "m9", "rank": 1, "score": 60.0}],
        moved=[{"member": m, "from": r, "to": r + 1, "score": s}
               for m, r, s in (("m0", 1, 48.0), ("m1", 2, 44.0), ("m2", 3, 40.0), ("m3", 4, 36.0))],
    )  # fmt: skip
    [u] = subs.receive(step).updates
    assert u.kind == "delta" and not u.first
    assert ranks(u) == [(1, "m9", 60.0), (2, "m0", 48.0), (3, "m1", 44.0), (4, "m2", 40.0),
                        (5, "m3", 36.0)]  # fmt: skip
    assert [e["member"] for e in u.previous] == ["m0", "m1", "m2", "m3", "m4"]
    assert subs.receive(step).updates == []  # a duplicate (a replay overlapping live frames)
    [s] = subs.receive(delta(6, "board:week", score=[{"member": "m9", "rank": 1, "score": 61.0}]))[
        0
    ]
    assert s.entries[0]["score"] == 61.0 and subs.position("board:week") == (E, 6)
    [ev] = subs.receive(event("board:week", 7, event="entered_top", member="m9", top=1)).updates
    assert ev.kind == "event" and ev.events == [ev.frame] and ranks(ev) == ranks(s)


def test_gap_resumes_epoch_change_starts_again_and_a_resume_says_what_it_missed() -> None:
    subs = Subscriptions()
    subs.add("board:all", 5)
    subs.on_connect()
    subs.receive(board_snapshot(4))
    gap = subs.receive(delta(6))
    assert gap.updates == [] and gap.notices == ["board:all: frame 6 after 4; resuming"]
    [again] = gap.send
    assert again["resume"] == {"epoch": E, "seq": 4}
    assert subs.receive(delta(7)).send == []  # the resubscribe is on its way: not asked twice
    reply = {"type": "subscribed", "channel": "board:all", "epoch": E, "seq": 7, "limit": 5}
    [resumed] = subs.receive({**reply, "recovered": True, "id": again["id"]}).updates
    assert resumed.kind == "resumed" and resumed.missed == 3
    assert [len(subs.receive(delta(n)).updates) for n in (5, 6, 7, 7)] == [1, 1, 1, 0]
    # a frame that cannot be applied (a broken or hostile server): no crash, no update, and a
    # fresh snapshot asked for after a pause (the client's retry), not at once
    six = [{"member": f"x{i}", "rank": i + 1, "score": 1.0} for i in range(6)]
    for bad in ({"entered": [{"member": "x"}]}, {"moved": "no"}, {"left": [7]},
                {"score": [{"member": "m0", "rank": 1, "score": "1e999"}]},
                {"seq": "8"}, {"entered": six}):  # fmt: skip
        out = subs.receive({**delta(8), **bad})
        assert out.updates == [] and out.send == [] and out.retry == ["board:all"], bad
        assert "asking for a snapshot" in out.notices[0]
        assert subs.receive(delta(9)).updates == []  # nothing applied until the snapshot
        [again] = subs.resubscribe("board:all")
        assert "resume" not in again
        subs.receive(board_snapshot(7))
    for bad in ({"entries": [{"member": "m0", "rank": None, "score": 1.0}]},
                {"entries": [{"member": ["m0"], "rank": 1, "score": 1.0}]}, {"entries": "xy"},
                {"entries": six}, {"seq": None}, {"epoch": 7}):  # fmt: skip
        out = subs.receive({**board_snapshot(7), **bad})
        assert out.updates == [] and out.retry == ["board:all"], bad
        subs.receive(board_snapshot(7))
    # a server that answers gaps with replies naming no request of ours: one subscribe in
    # flight per channel, however many gaps (the outbox and the request ids stay bounded)
    sent = []
    for n in range(50):
        out = subs.receive(delta(20 + 2 * n))
        sent += out.send
        subs.receive({**reply, "seq": 7, "recovered": True})  # no id: not an answer
        subs.receive({**reply, "seq": 7, "recovered": True, "id": 10_000 + n})  # not ours
    assert len(sent) <= 1 and len(subs._requests) <= 2
    [pending] = [m for m in subs.resubscribe("board:all")]
    subs.receive({**reply, "seq": 7, "recovered": True, "id": pending["id"]})
    assert [u.kind for u in subs.receive(delta(8)).updates] == ["delta"]
    # a delta whose events are not a list of objects: not applied, no crash
    assert subs.receive({**delta(9), "events": 1}).retry == ["board:all"]
    subs.receive(board_snapshot(8))
    # the feed's history is gone (a rebuild, an erase): a new epoch, subscribe without resume
    other = {**delta(8), "epoch": "ep2"}
    out = subs.receive(other)
    assert out.updates == [] and "resume" not in out.send[0]
    subs.receive({**reply, "epoch": "ep2", "seq": 20, "recovered": False})
    assert subs.receive({**delta(21), "epoch": "ep2"}).updates == []  # the snapshot comes first
    snap = {**board_snapshot(21), "epoch": "ep2", "reset": True}
    snap["entries"] = snap["entries"][:2]
    [fresh] = subs.receive(snap).updates
    assert not fresh.first and fresh.reason == "reset" and len(fresh.previous) == 5
    assert [e["member"] for e in fresh.entries] == ["m0", "m1"]
    # a reconnect resumes every channel from its last frame
    subs.on_disconnect()
    [sub] = subs.on_connect()
    assert sub["resume"] == {"epoch": "ep2", "seq": 21} and sub["limit"] == 5


def test_member_cohort_and_refusals() -> None:
    subs = Subscriptions()
    subs.on_connect()
    [msg] = subs.add("cohort:week", members=("ann", "tom"))
    assert msg["members"] == ["ann", "tom"] and "limit" not in msg
    subs.add("member:ann")
    cohort = {"type": "snapshot", "channel": "cohort:week", "epoch": "c1", "seq": 1,
              "entries": [{"rank": 1, "member": "tom", "score": 9.0, "global_rank": 4}]}  # fmt: skip
    [c] = subs.receive(cohort).updates
    assert c.entries[0]["global_rank"] == 4
    two = [{"rank": 1, "member": "ann", "score": 12.0, "global_rank": 2},
           {"rank": 2, "member": "tom", "score": 9.0, "global_rank": 5}]  # fmt: skip
    [c] = subs.receive({**cohort, "type": "delta", "seq": 2, "entries": two}).updates
    assert [e["member"] for e in c.entries] == ["ann", "tom"]  # a cohort delta replaces
    mem = {"type": "snapshot", "channel": "member:ann", "epoch": E, "seq": 3,
           "boards": {"all": {"rank": 9, "score": 1.0}, "24h": None}}  # fmt: skip
    subs.receive(mem)
    [m] = subs.receive(
        {**mem, "type": "delta", "seq": 4, "boards": {"24h": {"rank": 2, "score": 1.0}}}
    ).updates
    assert m.boards == {"all": {"rank": 9, "score": 1.0}, "24h": {"rank": 2, "score": 1.0}}
    assert m.previous_boards["24h"] is None
    # refused before anything is sent
    for bad, kw in [("week", {}), ("board:", {}), ("alerts:x", {}), ("cohort:week", {}),
                    ("board:all", {"limit": 101}), ("member:a", {"members": ("b",)}),
                    ("cohort:week", {"members": tuple(str(i) for i in range(101))})]:  # fmt: skip
        with pytest.raises(LiveError) as exc:
            subs.add(bad, **kw)
        assert exc.value.code == "bad_channel"
    # a member snapshot or a cohort delta it cannot apply, an error with an odd code
    assert subs.receive({**mem, "seq": 5, "boards": "xy"}).retry == ["member:ann"]
    bare = {k: v for k, v in cohort.items() if k != "entries"}
    assert subs.receive({**bare, "type": "delta", "seq": 3}).retry == ["cohort:week"]
    [odd] = subs.receive({"type": "error", "code": ["unknown_board"], "id": 2}).updates
    assert odd.kind == "error" and not odd.fatal
    # the server's refusals: a fatal one drops the channel, "unavailable" is retried
    [sub] = subs.add("board:nope", 3)
    err = {"type": "error", "code": "unknown_board", "message": "no board", "id": sub["id"]}
    out = subs.receive(err)
    assert out.updates[0].fatal and out.updates[0].channel == "board:nope"
    assert "board:nope" not in subs.channels
    [sub] = subs.add("board:all", 3)
    out = subs.receive({"type": "error", "code": "unavailable", "message": "", "id": sub["id"]})
    assert not out.updates[0].fatal and out.retry == ["board:all"]


# -- the connection, against a scripted server -----------------------------------------------------


async def test_subscribe_reconnects_with_backoff_and_resumes() -> None:
    seen: list[tuple[float, dict[str, Any]]] = []

    async def script(ws: ServerConnection, n: int) -> None:
        sub = await recv(ws)
        seen.append((time.monotonic(), sub))
        reply = {"type": "subscribed", "channel": "board:week", "epoch": E, "limit": 3}
        if n == 1:
            await send(ws, {**reply, "seq": 4, "recovered": False, "id": sub["id"]})
            await send(ws, board_snapshot(4, 3, "board:week"))
            await send(
                ws, delta(5, "board:week", score=[{"member": "m0", "rank": 1, "score": 50.0}])
            )
            await ws.close(1013, "too slow")
        elif n < 4:  # two attempts that fail at once: the backoff grows
            await ws.close(1011, "internal error")
        else:
            assert sub["resume"] == {"epoch": E, "seq": 5}
            await send(ws, {**reply, "seq": 7, "recovered": True, "id": sub["id"]})
            # the replay overlaps a live frame: 6 twice, then 7
            moved = [{"member": "m2", "from": 3, "to": 1, "score": 70.0},
                     {"member": "m0", "from": 1, "to": 2, "score": 50.0},
                     {"member": "m1", "from": 2, "to": 3, "score": 44.0}]  # fmt: skip
            await send(ws, delta(6, "board:week", moved=moved), delta(6, "board:week"))
            await send(ws, delta(7, "board:week"))
            await ws.wait_closed()

    notices: list[str] = []
    got: list[Update] = []
    async with scripted_server(script) as url:
        client = Client(url, on_notice=notices.append, backoff_first=0.1)
        async with client:
            async for update in client.subscribe("board:week", limit=3):
                got.append(update)
                if len(got) == 5:
                    break
    assert [u.kind for u in got] == ["snapshot", "delta", "resumed", "delta", "delta"]
    assert [e["member"] for e in got[3].entries] == ["m2", "m0", "m1"]
    assert [f[1]["id"] for f in seen] == [1, 2, 3, 4]  # a fresh request id per connection
    assert "resume" not in seen[0][1] and all(s["resume"]["seq"] == 5 for _, s in seen[1:])
    # 0.1 s after a connection that served; then, after connections that failed before any
    # answer (the hello alone does not reset the backoff), 0.2 s and 0.4 s; each ±20 %
    delays = [float(n.split("reconnecting in ")[1].split(" s")[0]) for n in notices
              if "reconnecting in" in n]  # fmt: skip
    assert delays[:2] == [0.1, 0.2] and delays[2] in (0.3, 0.4, 0.5), delays  # (one decimal)
    assert seen[3][0] - seen[2][0] >= delays[1] - 0.01  # and it did wait
    assert notices[0].startswith("connection lost (1013: too slow); reconnecting in 0.")
    assert any(n.startswith("reconnected to ws://127.0.0.1") for n in notices)


async def test_auth_refusals_and_unreachable() -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        first = await recv(ws)
        if first.get("token") != "s3cret":
            await ws.close(1008, "wrong token")
            return
        sub = await recv(ws)
        await send(ws, {"type": "error", "code": "unknown_board", "message": "no board 'x'",
                        "id": sub["id"]})  # fmt: skip
        await ws.wait_closed()

    async def first_update(client: Client, channel: str) -> Update:
        async with client:
            async for u in client.subscribe(channel):
                return u
        raise AssertionError("no update")

    async with scripted_server(script, auth=True) as url:
        for token, code, text in [("", "auth", "requires a token"),
                                  ("guess", "refused", "refused this client: wrong token"),
                                  ("s3cret", "unknown_board", "cannot follow board:x: no board 'x'")]:  # fmt: skip
            with pytest.raises(LiveError, match=text) as exc:
                await asyncio.wait_for(first_update(Client(url, token=token), "board:x"), 10)
            assert exc.value.code == code
    url = f"ws://127.0.0.1:{servers.free_port()}/ws"
    with pytest.raises(LiveError, match="cannot reach the Kudos web process") as exc:
        await first_update(Client(url), "board:all")
    assert exc.value.code == "unreachable"


async def test_readers_in_several_tasks_and_one_that_falls_behind() -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        subs = [await recv(ws), await recv(ws)]
        for sub in subs:
            ch = sub["channel"]
            reply = {"type": "subscribed", "channel": ch, "epoch": E, "seq": 0, "id": sub["id"]}
            await send(ws, {**reply, "recovered": False}, board_snapshot(0, 2, ch))
        for seq in range(1, 31):
            await asyncio.sleep(0.01)  # a reader that keeps up is never more than 5 behind
            for ch in ("board:a", "board:b"):
                score = [{"member": "m0", "rank": 1, "score": 48.0 + seq}]
                await send(ws, delta(seq, ch, score=score))
        await ws.wait_closed()

    async with scripted_server(script) as url:
        client = Client(url, max_pending=5)
        async with client:
            a, b = client.subscribe("board:a", limit=2), client.subscribe("board:b", limit=2)

            async def read(sub: Any, pause: float) -> list[Update]:
                out = []
                async for u in sub:
                    out.append(u)
                    await asyncio.sleep(pause)
                    if u.frame["seq"] == 30:  # the last frame
                        return out
                return out

            fast, slow = await asyncio.wait_for(asyncio.gather(read(a, 0), read(b, 0.2)), 20)
    # the reader that keeps up got every frame, in order
    assert [u.frame["seq"] for u in fast] == list(range(31))
    assert fast[-1].entries[0]["score"] == 78.0
    # the slow one fell more than 5 behind: its backlog was replaced by the state now
    catch_up = next(u for u in slow if u.reason == "conflated")
    before = slow[slow.index(catch_up) - 1]
    assert catch_up.kind == "snapshot" and catch_up.previous == before.entries  # what it last saw
    seqs = [u.frame["seq"] for u in slow]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and len(slow) < 10
    assert slow[-1].entries[0]["score"] == 78.0  # and it ends with the same state


async def test_cancel_safe_paced_ordered_and_closed_for_good() -> None:
    """A reader cancelled mid-wait loses nothing; 45 subscribes stay under the server's rate
    limit; an unsubscribe right after a subscribe reaches the server after it; frames on
    request; close() during a backoff opens nothing more."""
    got: list[tuple[float, dict[str, Any]]] = []
    connections = 0

    async def script(ws: ServerConnection, n: int) -> None:
        nonlocal connections
        connections += 1
        if n > 1:
            await ws.close(1011, "down")
            return
        for _ in range(47):
            msg = await recv(ws)
            got.append((time.monotonic(), msg))
            if msg["op"] == "subscribe" and msg["channel"] == "board:c0":
                reply = {"type": "subscribed", "channel": "board:c0", "epoch": E, "seq": 0}
                await send(ws, {**reply, "recovered": False, "id": msg["id"]})
                await send(ws, board_snapshot(0, 2, "board:c0"))
                for seq in range(1, 4):
                    await asyncio.sleep(0.05)
                    await send(ws, delta(seq, "board:c0"))
        await ws.close(1012, "restart")

    async with scripted_server(script) as url:
        client = Client(url, backoff_first=5.0)
        frames = client.updates(frames=True)
        c0 = client.subscribe("board:c0", limit=2)
        for i in range(1, 45):
            client.subscribe(f"board:c{i}", limit=2)
        seqs = []
        while len(seqs) < 4:  # cancelled many times while waiting: nothing lost
            with contextlib.suppress(TimeoutError):
                u = await asyncio.wait_for(anext(c0), 0.01)
                seqs.append(u.frame["seq"])
        assert seqs == [0, 1, 2, 3]
        client.subscribe("member:gone")  # connected now: both go out, in this order
        client.unsubscribe("member:gone")
        kinds = []
        async for f in frames:
            kinds.append((f.kind, f.frame.get("type")))
            if f.kind == "delta" and f.frame["seq"] == 3:
                break
        assert kinds[0] == ("frame", "hello") and ("frame", "subscribed") in kinds
        await eventually(lambda: len(got) == 47, what="47 messages at the server")
        await asyncio.sleep(0.3)  # the 1012 close: a reconnect is 5 s away
        t0 = time.monotonic()
        await client.close()
        assert time.monotonic() - t0 < 1.0
        assert [u async for u in c0] == []  # readers end
    await asyncio.sleep(0.2)
    assert connections == 1  # nothing opened after close()
    tokens, at = 40.0, got[0][0]
    for t, _ in got:  # the server's bucket: 40 at once, then 20 a second; never overdrawn
        tokens, at = min(40.0, tokens + (t - at) * 20.0) - 1, t
        assert tokens >= -0.5, [t - got[0][0] for t, _ in got]
    ops = [(m["op"], m["channel"]) for _, m in got]
    assert ops.index(("unsubscribe", "member:gone")) > ops.index(("subscribe", "member:gone"))
