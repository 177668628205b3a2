"""`kudos watch` and examples/chat_bot.py: the lines they print for frames (pure), the connection
logic against a scripted websocket server (reconnect, resume, auth, exit codes), and both against
real servers while events are replayed."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
from websockets.asyncio.server import ServerConnection

from kudos import servers
from kudos.subscriptions import Subscriptions
from kudos.watch import Options, watch
from kudos.watcher import Line, Watcher, num, parse_channel
from leaderboard.errors import WatchError
from tests.conftest import Namespace
from tests.eventually import eventually
from tests.kudos.frames import E, board_snapshot, delta, event, recv, scripted_server, send
from tests.web.events import T0, base_events, climb
from tests.web.live import scrape, start_web, value

ROOT = Path(__file__).resolve().parents[2]


class Fed:
    """A :class:`Watcher` fed frames through the client's core, as `kudos watch` feeds it."""

    def __init__(self, channels: list[str], limit: int = 10, scores: bool = False) -> None:
        self.subs = Subscriptions()
        for c in channels:
            self.subs.add(c, limit if c.startswith("board:") else None)
        self.watcher = Watcher(limit, scores)
        self.sent: list[dict[str, Any]] = []

    def handle(self, frame: dict[str, Any]) -> list[Line]:
        acts = self.subs.receive(frame)
        self.sent += acts.send
        lines = [Line(t, "notice") for t in acts.notices]
        return lines + [line for u in acts.updates for line in self.watcher.handle(u)]

    def top(self, name: str) -> dict[str, tuple[int, float]]:
        return {e["member"]: (e["rank"], e["score"]) for e in self.subs.channels[name].entries()}


def texts(w: Fed, *frames: dict[str, Any]) -> list[str]:
    return [line.text for f in frames for line in w.handle(f)]


# -- formatting (pure) -----------------------------------------------------------------------------


def test_parse_channel_and_numbers() -> None:
    assert parse_channel("all") == "board:all"
    assert parse_channel("7d:python") == "board:7d:python"
    assert parse_channel("board:24h") == "board:24h"
    assert parse_channel("member:alice") == "member:alice"
    assert parse_channel("alerts") == "alerts"
    for bad in ("", "member:", "board:"):
        with pytest.raises(ValueError):
            parse_channel(bad)
    assert [num(x) for x in (1204.0, 412.5, 0.125, 12345.678, 0.0)] == [
        "1,204",
        "412.5",
        "0.125",
        "12,345.678",
        "0",
    ]


def test_board_lines_climbs_entries_exits_and_no_score_noise() -> None:
    w = Fed(["board:all"], limit=5)
    [summary] = w.handle(board_snapshot())
    assert summary.kind == "summary"
    assert summary.text == "📋 all: top 5 of 12 — #1 m0 (48), #2 m1 (44), #3 m2 (40), … 2 more"
    # m9 jumps in at #3 (reaching the top 3: one trophy line, not an entry line too); m4 drops
    # out; m2 and m3 only shift because m9 passed them: no line of their own
    lines = w.handle(
        delta(
            5,
            entered=[{"member": "m9", "rank": 3, "score": 43.0}],
            left=[{"member": "m4", "rank": 5}],
            moved=[
                {"member": "m2", "from": 3, "to": 4, "score": 40.0},
                {"member": "m3", "from": 4, "to": 5, "score": 36.0},
            ],
            events=[{"event": "entered_top", "board": "all", "member": "m9", "rank": 3, "top": 3}],
        )
    )
    assert [(x.text, x.kind) for x in lines] == [
        ("🏆 m9 reached the top 3 on all at #3 (43 pts)", "update"),
        ("👋 m4 left the top 5 on all", "update"),
    ]
    assert w.top("board:all") == {
        "m0": (1, 48.0),
        "m1": (2, 44.0),
        "m9": (3, 43.0),
        "m2": (4, 40.0),
        "m3": (5, 36.0),
    }
    # one overtake; a score tick is not news
    assert texts(
        w,
        delta(
            6,
            moved=[
                {"member": "m2", "from": 4, "to": 3, "score": 43.5},
                {"member": "m9", "from": 3, "to": 4, "score": 43.0},
            ],
            score=[{"member": "m0", "rank": 1, "score": 48.5}],
        ),
    ) == ["⚔️ m2 overtook m9 on all, now #3 (43.5 pts)"]
    # a climb past several, to #1; an entry below the tiers; a fall with fewer points
    assert texts(
        w,
        delta(
            7,
            moved=[
                {"member": "m3", "from": 5, "to": 1, "score": 60.0},
                {"member": "m0", "from": 1, "to": 2, "score": 48.5},
                {"member": "m1", "from": 2, "to": 3, "score": 44.0},
                {"member": "m2", "from": 3, "to": 5, "score": 30.0},
                {"member": "m9", "from": 4, "to": 4, "score": 43.0},
            ],
            events=[{"event": "entered_top", "board": "all", "member": "m3", "rank": 1, "top": 1}],
        ),
    ) == [
        "👑 m3 took #1 on all (60 pts), passing m0, m1, m2 and 1 other",
        "📉 m2 fell to #5 on all (30 pts)",
    ]
    entered = [{"member": "m7", "rank": 5, "score": 31.0}]
    assert texts(w, delta(8, entered=entered, left=[{"member": "m2", "rank": 5}])) == [
        "🆕 m7 entered the top 5 on all at #5 (31 pts)",
        "👋 m2 left the top 5 on all",
    ]
    moved = [
        {"member": "m9", "from": 4, "to": 2, "score": 50.0},
        {"member": "m0", "from": 2, "to": 3, "score": 48.5},
        {"member": "m1", "from": 3, "to": 4, "score": 44.0},
    ]
    assert texts(w, delta(9, moved=moved)) == [
        "📈 m9 climbed to #2 on all (50 pts), passing m0 and m1"
    ]
    top = w.top("board:all")
    assert sorted(top, key=lambda m: top[m]) == ["m3", "m9", "m0", "m1", "m7"]
    assert texts(w, delta(10)) == []  # a frame with nothing in our top N


def test_scores_flag_shows_score_ticks_and_passive_shifts() -> None:
    w = Fed(["board:all"], limit=5, scores=True)
    w.handle(board_snapshot())
    assert texts(
        w,
        delta(
            5,
            moved=[
                {"member": "m2", "from": 3, "to": 2, "score": 45.0},
                {"member": "m1", "from": 2, "to": 3, "score": 44.0},
            ],
            score=[{"member": "m0", "rank": 1, "score": 49.0}],
        ),
    ) == [
        "💯 m0 now 49 pts on all (#1)",
        "⚔️ m2 overtook m1 on all, now #2 (45 pts)",
        "↕️ m1 moved to #3 on all (44 pts)",
    ]


def test_member_lines_events_once_and_perk_bait_generic() -> None:
    w = Fed(["member:m3", "member:m9"])
    assert texts(
        w,
        {
            "type": "snapshot",
            "channel": "member:m3",
            "epoch": E,
            "seq": 2,
            "as_of": 1.0,
            "boards": {
                "all": {"rank": 4, "score": 36.0},
                "1h": None,
                "24h": {"rank": 1200, "score": 3.5},
            },
        },
        {"type": "snapshot", "channel": "member:m9", "epoch": E, "seq": 0, "boards": {"all": None}},
    ) == [
        "👤 m3: #4 on all (36 pts), #1,200 on 24h (3.5 pts); not on 1h",
        "👤 m9: not on any board yet",
    ]
    overtaken = {
        "event": "overtaken",
        "board": "all",
        "overtaker": "m9",
        "overtaken": "m3",
        "ranks": {"m9": 3, "m3": 5},
    }
    # the same event on both members' channels: printed once
    assert texts(w, event("member:m3", 3, **overtaken), event("member:m9", 1, **overtaken)) == [
        "⚔️ m9 overtook m3 on all, now #3"
    ]
    assert texts(
        w,
        event("member:m9", 2, event="entered_top", board="all", member="m9", rank=3, top=3),
        event("member:m9", 3, event="entered_top", board="7d", member="m9", rank=1, top=1),
    ) == ["🏆 m9 reached the top 3 on all at #3", "👑 m9 took #1 on 7d"]
    # standing: a climb with more points, a new board, a passive shift (silent), leaving a board
    assert texts(
        w,
        {
            "type": "delta",
            "channel": "member:m3",
            "epoch": E,
            "seq": 4,
            "boards": {
                "all": {"rank": 5, "score": 36.0},
                "1h": {"rank": 2, "score": 1.0},
                "24h": None,
            },
        },
        {
            "type": "delta",
            "channel": "member:m9",
            "epoch": E,
            "seq": 4,
            "boards": {"all": {"rank": 3, "score": 43.0}},
        },
    ) == ["🆕 m3 is on 1h at #2 (1 pts)", "👋 m3 dropped off 24h", "🆕 m9 is on all at #3 (43 pts)"]
    assert texts(
        w,
        {
            "type": "delta",
            "channel": "member:m9",
            "epoch": E,
            "seq": 5,
            "boards": {"all": {"rank": 1, "score": 53.0}},
        },
    ) == ["📈 m9 climbed to #1 on all (53 pts)"]
    assert texts(
        w,
        event("member:m3", 5, event="perk", member="m3", title="Rising star", board="7d"),
        event("member:m3", 6, event="bait", reason="80% of comments from 2 accounts"),
        event("member:m3", 7, event="perk"),
        event("member:m3", 8, event="streak", title="5 days in a row"),
    ) == [
        "🎁 m3 unlocked a perk on 7d: Rising star",
        "🎣 bait alert for m3: 80% of comments from 2 accounts",
        "🎁 m3 unlocked a perk",
        "🔔 streak for m3: 5 days in a row",
    ]


def test_alerts_channel_prints_each_throttle_once() -> None:
    w = Fed(["alerts"])
    snap = {"type": "snapshot", "channel": "alerts", "epoch": E, "seq": 3, "as_of": 1.0}
    alert = {"event": "bait", "member": "baiter", "post": "tea", "state": "throttled"}
    alert["reason"] = "comments count 0.1x (low_value, bait_phrasing:vote)"
    assert texts(w, snap) == ["🎣 following comment-bait alerts"]
    assert texts(w, event("alerts", 4, **alert), event("alerts", 4, **alert)) == [
        "🎣 bait alert for baiter on post tea: comments count 0.1x (low_value, bait_phrasing:vote)"
    ]


def test_sequence_gaps_duplicates_resync_and_errors() -> None:
    w = Fed(["board:all"], limit=5)
    # frames before the snapshot are not ours yet
    assert w.handle(delta(3)) == []
    w.handle(board_snapshot(seq=4))
    assert w.handle(delta(4)) == []  # already in the snapshot
    [gap] = w.handle(delta(6))
    assert gap.kind == "notice" and "resuming" in gap.text
    # a gap: subscribe again, resuming from the last frame applied
    [again] = w.sent
    assert again["resume"] == {"epoch": E, "seq": 4} and again["limit"] == 5
    assert w.handle(delta(7)) == []  # while the resubscribe is on its way: dropped quietly
    assert len(w.sent) == 1
    [resumed] = w.handle(
        {
            "type": "subscribed",
            "channel": "board:all",
            "epoch": E,
            "seq": 7,
            "recovered": True,
            "limit": 5,
            "id": again["id"],
        }
    )
    assert resumed == ("board:all: resumed after seq 4, 3 missed", "notice")
    # a fresh snapshot after a reconnect that could not resume: what changed meanwhile
    snap = board_snapshot(seq=9)
    snap["entries"][3:] = [  # m8 in at #4, m4 out, m3 pushed to #5
        {"rank": 4, "member": "m8", "score": 39.0},
        {"rank": 5, "member": "m3", "score": 36.0},
    ]
    snap["conflated"] = True
    assert texts(w, snap) == [
        "board:all: caught up from a fresh snapshot (conflated)",
        "🆕 m8 entered the top 5 on all at #4 (39 pts)",
        "👋 m4 left the top 5 on all",
    ]
    # a member channel re-synced after a reset: its standing's differences
    m = Fed(["member:m3"])
    first = {"type": "snapshot", "channel": "member:m3", "epoch": E, "seq": 1, "boards": {}}
    m.handle({**first, "boards": {"all": {"rank": 9, "score": 10.0}, "24h": None}})
    again = {**first, "seq": 7, "reset": True}
    assert texts(m, {**again, "boards": {"all": {"rank": 4, "score": 20.0}, "24h": None}}) == [
        "member:m3: caught up from a fresh snapshot (the feed was reset)",
        "📈 m3 climbed to #4 on all (20 pts)",
    ]
    # a snapshot whose size is smaller than its own entries does not say "of 0"
    fresh = Fed(["board:all"], limit=2)
    assert texts(fresh, {**board_snapshot(n=2), "members": 0}) == [
        "📋 all: top 2 — #1 m0 (48), #2 m1 (44)"
    ]
    [err] = w.handle({"type": "error", "code": "unknown_board", "message": "no board x", "id": 2})
    assert err == ("server error: unknown_board: no board x", "notice")


def load_chat_bot() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chat_bot", ROOT / "examples" / "chat_bot.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_chat_bot_announcements() -> None:
    chat_bot = load_chat_bot()
    bot = chat_bot.Bot("all", 5, ("m3",), post=print)
    assert bot.channels == ["board:all", "member:m3"]
    subs = Subscriptions()
    subs.add("board:all", 5)
    subs.add("member:m3")

    def say(frame: dict[str, Any]) -> list[str]:
        return [news for u in subs.receive(frame).updates for news in bot.handle(u)]

    assert say(board_snapshot()) == []
    say({"type": "snapshot", "channel": "member:m3", "epoch": E, "seq": 2, "boards": {}})
    news = say(
        delta(
            5,
            entered=[{"member": "m9", "rank": 3, "score": 43.0}],
            left=[{"member": "m4", "rank": 5}],
            moved=[{"member": "m2", "from": 3, "to": 4, "score": 40.0}],
            events=[{"event": "entered_top", "board": "all", "member": "m9", "rank": 3, "top": 3}],
        )
    )
    assert news == ["🏆 m9 reached the top 3 on all at #3"]
    assert say(delta(6, moved=[{"member": "m2", "from": 4, "to": 3, "score": 44.0}])) == [
        "📈 m2 climbed to #3 on all (44 pts)"
    ]
    # a shift down and back up with no new points is not a climb
    assert say(delta(7, moved=[{"member": "m2", "from": 3, "to": 4, "score": 44.0}])) == []
    assert say(delta(8, moved=[{"member": "m2", "from": 4, "to": 3, "score": 44.0}])) == []
    assert say(
        event("member:m3", 3, event="overtaken", board="all", overtaker="m9", overtaken="m3")
    ) == ["⚔️ m9 overtook m3 on all"]
    assert say(event("member:m3", 4, event="perk", member="m3", title="Rising star")) == [
        "🎁 m3 unlocked Rising star"
    ]
    # the same unlock again (a new frame, the same event): said once
    assert say(event("member:m3", 5, event="perk", member="m3", title="Rising star")) == []
    # an entry from outside the top (m4 is back; the last of the five leaves)
    back = delta(
        9, entered=[{"member": "m4", "rank": 1, "score": 99.0}], left=[{"member": "m3", "rank": 5}]
    )
    assert say(back) == ["🆕 m4 entered the top 5 on all at #1"]


# -- the connection, against a scripted server -----------------------------------------------------


async def test_reconnects_and_resumes_where_it_stopped() -> None:
    seen: list[dict[str, Any]] = []

    async def script(ws: ServerConnection, n: int) -> None:
        sub = await recv(ws)
        seen.append(sub)
        reply = {
            "type": "subscribed",
            "channel": "board:all",
            "epoch": E,
            "limit": 5,
            "id": sub["id"],
        }
        if n == 1:
            await send(ws, {**reply, "seq": 4, "recovered": False}, board_snapshot(seq=4))
            await send(
                ws,
                delta(
                    5,
                    moved=[
                        {"member": "m1", "from": 2, "to": 1, "score": 50.0},
                        {"member": "m0", "from": 1, "to": 2, "score": 48.0},
                    ],
                ),
            )
            await ws.close(1013, "too slow")
        else:
            await send(ws, {**reply, "seq": 6, "recovered": True})
            await send(
                ws,
                delta(
                    6,
                    entered=[{"member": "m9", "rank": 5, "score": 37.0}],
                    left=[{"member": "m4", "rank": 5}],
                ),
            )
            await ws.wait_closed()

    out, err = io.StringIO(), io.StringIO()
    async with scripted_server(script) as url:
        status = await watch(Options(url, ["board:all"], limit=5, count=3, seconds=20), out, err)
    assert status == 0, err.getvalue()
    assert out.getvalue().splitlines() == [
        "📋 all: top 5 of 12 — #1 m0 (48), #2 m1 (44), #3 m2 (40), … 2 more",
        "⚔️ m1 overtook m0 on all, now #1 (50 pts)",
        "🆕 m9 entered the top 5 on all at #5 (37 pts)",
        "👋 m4 left the top 5 on all",
    ]
    assert "resume" not in seen[0] and seen[1]["resume"] == {"epoch": E, "seq": 5}
    assert seen[1]["limit"] == 5
    assert "connection lost (1013: too slow); reconnecting in" in err.getvalue()
    assert "board:all: resumed after seq 5, 1 missed" in err.getvalue()


async def test_json_prints_every_frame_unmodified() -> None:
    async def script(ws: ServerConnection, n: int) -> None:
        sub = await recv(ws)
        reply = '{"type":"subscribed","channel":"board:all","epoch":"ep1","seq":4,"recovered":false'
        await ws.send(reply + f',"limit":5,"id":{sub["id"]}}}')
        await send(ws, board_snapshot(seq=4), delta(5), {"type": "pong", "id": 3}, delta(6))
        await ws.wait_closed()

    out, err = io.StringIO(), io.StringIO()
    async with scripted_server(script) as url:
        status = await watch(Options(url, ["all"], json=True, count=2, seconds=20), out, err)
    assert status == 0
    lines = out.getvalue().splitlines()
    assert [orjson.loads(x)["type"] for x in lines] == [
        "hello",
        "subscribed",
        "snapshot",
        "delta",
        "pong",
        "delta",
    ]
    assert (
        lines[1]
        == '{"type":"subscribed","channel":"board:all","epoch":"ep1","seq":4,"recovered":false,"limit":5,"id":1}'
    )


async def test_auth_token_errors_and_exit_codes() -> None:
    tokens: list[str] = []

    async def script(ws: ServerConnection, n: int) -> None:
        first = await recv(ws)
        if first.get("token") != "s3cret":
            await ws.close(1008, "wrong token")
            return
        tokens.append(first["token"])
        sub = await recv(ws)
        await send(
            ws,
            {
                "type": "error",
                "code": "unknown_board",
                "message": "no board 'monthly'",
                "id": sub["id"],
            },
        )
        await ws.wait_closed()

    async with scripted_server(script, auth=True) as url:
        with pytest.raises(WatchError, match="requires a token"):
            await watch(Options(url, ["board:monthly"], seconds=10), io.StringIO(), io.StringIO())
        with pytest.raises(WatchError, match="refused this client: wrong token"):
            await watch(
                Options(url, ["board:monthly"], token="guess", seconds=10),
                io.StringIO(),
                io.StringIO(),
            )
        err = io.StringIO()
        with pytest.raises(WatchError, match="cannot follow board:monthly: no board 'monthly'"):
            await watch(
                Options(url, ["board:monthly"], token="s3cret", seconds=10), io.StringIO(), err
            )
        assert "server error: unknown_board" in err.getvalue()
    assert tokens == ["s3cret"]

    # nothing listening: a clear error that says what to do
    url = f"ws://127.0.0.1:{servers.free_port()}/ws"
    with pytest.raises(WatchError, match=r"cannot reach .*kudos up --background.*KUDOS_WEB_PORT"):
        await watch(Options(url, ["all"]), io.StringIO(), io.StringIO())

    # --for ends before --count: status 1; --for alone: 0
    async def quiet(ws: ServerConnection, n: int) -> None:
        await ws.wait_closed()

    async with scripted_server(quiet) as url:
        err = io.StringIO()
        assert await watch(Options(url, ["all"], count=1, seconds=0.5), io.StringIO(), err) == 1
        assert "only 0 of 1 updates in 0.5 s" in err.getvalue()
        assert await watch(Options(url, ["all"], seconds=0.5), io.StringIO(), io.StringIO()) == 0


# -- against real servers --------------------------------------------------------------------------


class Watch:
    """`kudos watch` as a subprocess, its output read line by line as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @classmethod
    async def start(cls, ns: Namespace, *args: str) -> Watch:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "kudos",
            "watch",
            *args,
            env=ns.env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def until(self, check: Callable[[str], bool], timeout: float = 30.0) -> str:
        """Read lines until one satisfies ``check``; that line."""
        stdout = self.proc.stdout
        assert stdout is not None

        async def next_line_matches() -> bool:
            raw = await stdout.readline()
            if not raw:
                raise AssertionError(f"exited before the line: {self.lines}")
            self.lines.append(raw.decode().rstrip("\n"))
            return check(self.lines[-1])

        await eventually(
            next_line_matches,
            timeout=timeout,
            interval=0,
            what="a line from `kudos watch` that satisfies the check",
            details=lambda: f"lines so far: {self.lines}",
        )
        return self.lines[-1]

    async def finish(self, timeout: float = 30.0) -> tuple[int, list[str], str]:
        """Wait for the exit: (status, every stdout line, stderr)."""
        out, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        self.lines += out.decode().splitlines()
        assert self.proc.returncode is not None
        return self.proc.returncode, self.lines, err.decode()


@pytest.mark.integration
async def test_watch_against_real_servers(namespace: Namespace) -> None:
    namespace.start_worker()
    # m9 has a display name (a profile event): the text lines show it beside the id
    profile = {
        "id": "p9",
        "ts": T0,
        "kind": "profile",
        "actor": "m9",
        "target": "m9",
        "name": "Mona N.",
    }
    await namespace.wait(await namespace.replay([*base_events(), profile], envelope=50))
    port = namespace.settings.web.port
    web = start_web(namespace, port)
    try:
        text = await Watch.start(namespace, "all", "member:m3", "--count", "10", "--for", "30")
        js = await Watch.start(
            namespace, "board:all", "--limit", "5", "--json", "--count", "1", "--for", "30"
        )
        bot = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "examples" / "chat_bot.py"),
            "--url",
            f"ws://127.0.0.1:{port}/ws",
            "--member",
            "m3",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert await text.until(lambda s: s.startswith("📋")) == (
            "📋 all: top 10 of 12 — #1 m0 (48), #2 m1 (44), #3 m2 (40), … 7 more"
        )
        await text.until(lambda s: s.startswith("👤"))
        await js.until(lambda s: '"type":"snapshot"' in s)

        def subscribed() -> bool:  # the bot too: board:all and member:m3, as the text watcher
            _, samples = scrape(port)
            boards = value(samples, "kudos_ws_subscriptions", kind="board")
            members = value(samples, "kudos_ws_subscriptions", kind="member")
            return (boards, members) == (3, 2)

        await eventually(
            lambda: asyncio.to_thread(subscribed), what="the chat bot subscribed to its channels"
        )

        # m9 climbs from 10th to 1st in one message
        await namespace.wait(await namespace.replay(climb("m9", "up", 4, T0 + 500), envelope=5))
        status, lines, err = await text.finish()
        assert status == 0, err
        # one line for the board, one overtake per base board on m3's channel (in any order),
        # nothing for the members that only shifted down a place, and m3's fall on decayed (a
        # place down and fewer points: the climb moved W, so its decayed points shrank). (The
        # board's and the member's channels race: with a count that cut off the last line, the
        # fall sometimes came before an overtake and took its place.)
        assert sorted(lines[2:]) == sorted(
            [
                "👑 Mona N. (m9) took #1 on all (53 pts), passing m0, m1, m2 and 6 others",
                *(
                    f"⚔️ Mona N. (m9) overtook m3 on {b}, now #1"
                    for b in ("all", "1h", "24h", "7d", "decayed", "day", "week", "month")
                ),
                "📉 m3 fell to #5 on decayed (35.865 pts)",
            ]
        ), lines

        status, lines, err = await js.finish()
        assert status == 0, err
        frames = [orjson.loads(x) for x in lines]
        assert [f["type"] for f in frames] == ["hello", "subscribed", "snapshot", "delta"]
        assert frames[3]["seq"] == frames[2]["seq"] + 1
        assert {"member": "m9", "rank": 1, "score": 53.0} in frames[3]["entered"]

        bot_stdout = bot.stdout
        assert bot_stdout is not None
        said: list[str] = []
        want = {"🏆 m9 reached the top 1 on all at #1", "⚔️ m9 overtook m3 on all"}

        async def bot_said_it_all() -> bool:
            said.append((await bot_stdout.readline()).decode().rstrip())
            return want <= set(said)

        await eventually(
            bot_said_it_all,
            timeout=30,
            interval=0,
            what=f"the chat bot saying {sorted(want)}",
            details=lambda: f"it said: {said}",
        )
        bot.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(bot.wait(), 10) == 0

        # the web process restarts: a watcher reconnects, resumes and goes on
        follow = await Watch.start(namespace, "all", "--count", "1", "--for", "60")
        await follow.until(lambda s: s.startswith("📋"))
        servers.stop(web)
        await namespace.wait(await namespace.replay(climb("m10", "c2", 6, T0 + 700), envelope=7))
        web = start_web(namespace, port, "web-2")
        status, lines, err = await follow.finish(60)
        assert status == 0, err
        assert "reconnecting in" in err and "reconnected" in err, err
        assert lines[1].startswith("👑 m10 took #1 on all (69 pts)"), lines

        # Ctrl-C: a clean exit, status 0
        idle = await Watch.start(namespace, "all")
        await idle.until(lambda s: s.startswith("📋"))
        idle.proc.send_signal(signal.SIGINT)
        status, _, err = await idle.finish(10)
        assert status == 0 and "Traceback" not in err, err
    finally:
        servers.stop(web)


def test_unreachable_server_exit_code(tmp_path: Path) -> None:
    import os
    import subprocess

    env = {**os.environ, "KUDOS_WEB_PORT": str(servers.free_port()), "KUDOS_HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "kudos", "watch", "all"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "kudos up --background" in out.stderr and "KUDOS_WEB_PORT" in out.stderr


async def test_odd_frames_are_notices_not_tracebacks() -> None:
    """A server's frame of odd shape (events that are not a list, ranks that are not an
    object) costs a notice; the next good frame prints as usual."""

    async def script(ws: ServerConnection, n: int) -> None:
        sub = await recv(ws)
        reply = {"type": "subscribed", "channel": "board:all", "epoch": E, "seq": 4}
        await send(ws, {**reply, "recovered": False, "limit": 5, "id": sub["id"]})
        await send(ws, board_snapshot(seq=4), {**delta(5), "events": 1})
        await send(ws, board_snapshot(seq=5))  # (the client asks again after a second)
        odd = {"event": "overtaken", "board": "all", "overtaker": "m1", "overtaken": "m0",
               "ranks": [1]}  # fmt: skip
        await send(ws, delta(6, events=[odd]))
        await send(ws, delta(7, left=[{"member": "m4", "rank": 5}]))
        await ws.wait_closed()

    out, err = io.StringIO(), io.StringIO()
    async with scripted_server(script) as url:
        status = await watch(Options(url, ["all"], limit=5, count=1, seconds=20), out, err)
    assert status == 0, err.getvalue()
    assert out.getvalue().splitlines()[-1] == "👋 m4 left the top 5 on all"
    assert "frame 5 is malformed" in err.getvalue()
    assert "could not word a delta" in err.getvalue()
