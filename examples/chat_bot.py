#!/usr/bin/env python3
"""A chat bot for Kudos: announces climbs, entries to the top, overtakes and perk unlocks.

    python examples/chat_bot.py                                  # the top 10 of board "all"
    python examples/chat_bot.py --board 24h --member alice --member bob
    python examples/chat_bot.py --url ws://kudos.example:8000/ws --token s3cret

It speaks the live push protocol (docs/protocol.md) and needs only the `websockets` package. When the
connection drops it reconnects and resumes every channel from the last frame it saw, so nothing is
announced twice and nothing is missed while the server still holds the frames.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake


def post(message: str) -> None:
    """Where announcements go. To post to a Slack or Discord incoming webhook instead:

    import urllib.request
    WEBHOOK_URL = os.environ["WEBHOOK_URL"]

    def post(message: str) -> None:
        body = json.dumps({"text": message})  # Discord: {"content": message}
        request = urllib.request.Request(
            WEBHOOK_URL, body.encode(), {"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request, timeout=10)
    """
    print(message, flush=True)


class Bot:
    """Keeps what the protocol says a client keeps (position and top N) and words the news."""

    def __init__(
        self,
        board: str = "all",
        limit: int = 10,
        members: tuple[str, ...] = (),
        post: Callable[[str], None] = post,
    ) -> None:
        self.board, self.limit, self.post = board, limit, post
        self.channels = [f"board:{board}", *(f"member:{m}" for m in members)]
        self.position: dict[str, tuple[str, int]] = {}  # channel → (epoch, seq) last applied
        self.top: dict[str, tuple[int, float]] = {}  # member → (rank, score) in our top N
        self.announced: set[str] = set()  # an event reaches every channel it concerns: say it once

    def subscriptions(self) -> list[dict[str, Any]]:
        """Subscribe messages for a new connection, resuming where the last one stopped."""
        out = []
        for channel in self.channels:
            msg: dict[str, Any] = {"op": "subscribe", "channel": channel}
            if channel.startswith("board:"):
                msg["limit"] = self.limit
            if channel in self.position:
                epoch, seq = self.position[channel]
                msg["resume"] = {"epoch": epoch, "seq": seq}
            out.append(msg)
        return out

    def handle(self, frame: dict[str, Any]) -> list[str]:
        """The announcements one frame makes (and the state it updates)."""
        kind, channel = frame.get("type"), frame.get("channel", "")
        if kind == "error":
            print(f"server error: {frame.get('code')}: {frame.get('message')}", file=sys.stderr)
        if kind == "snapshot":
            self.position[channel] = (frame["epoch"], frame["seq"])
            if "entries" in frame:
                self.top = {e["member"]: (e["rank"], e["score"]) for e in frame["entries"]}
            return []
        if kind not in ("delta", "event") or channel not in self.position:
            return []
        epoch, seq = self.position[channel]
        if frame["epoch"] != epoch or frame["seq"] <= seq:
            return []  # a frame we already have
        self.position[channel] = (epoch, frame["seq"])
        if kind == "event":
            return self.events([frame])
        if "entered" not in frame:
            return []  # a member's standing changed: the events say what matters
        return self.board_delta(frame)

    def board_delta(self, delta: dict[str, Any]) -> list[str]:
        old, board, news = dict(self.top), self.board, []
        for e in delta["left"]:
            self.top.pop(e["member"], None)
        for e in delta["entered"] + delta["score"]:
            self.top[e["member"]] = (e["rank"], e["score"])
        for e in delta["moved"]:
            self.top[e["member"]] = (e["to"], e["score"])
        # reaching the top 1, 3, 10 or 100 comes as an event: that one line says it best
        reached = {ev["member"] for ev in delta.get("events", [])}
        for e in delta["entered"]:
            if e["member"] not in reached:
                news.append(
                    f"🆕 {e['member']} entered the top {self.limit} on {board} at #{e['rank']}"
                )
        for e in delta["moved"]:  # a climb with more points, not a shift because others moved
            gained = e["score"] > old.get(e["member"], (0, e["score"]))[1]
            if e["to"] < e["from"] and gained and e["member"] not in reached:
                news.append(
                    f"📈 {e['member']} climbed to #{e['to']} on {board} ({e['score']:g} pts)"
                )
        return news + self.events(delta.get("events", []), delta.get("as_of"))

    def events(self, events: list[dict[str, Any]], as_of: Any = None) -> list[str]:
        news = []
        for ev in events:
            fields = ("event", "board", "member", "top", "overtaker", "overtaken", "title")
            key = json.dumps([ev.get("as_of", as_of), *(ev.get(k) for k in fields)])
            if key in self.announced:
                continue
            if len(self.announced) > 10_000:  # a long-running bot: forget old events
                self.announced.clear()
            self.announced.add(key)
            on = f" on {ev['board']}" if ev.get("board") else ""
            who = ev.get("member") or ev.get("channel", "").partition(":")[2]
            if ev["event"] == "overtaken":
                news.append(f"⚔️ {ev['overtaker']} overtook {ev['overtaken']}{on}")
            elif ev["event"] == "entered_top":
                news.append(f"🏆 {who} reached the top {ev['top']}{on} at #{ev['rank']}")
            elif ev["event"] == "perk":
                news.append(f"🎁 {who} unlocked {ev.get('title') or 'a perk'}{on}")
        return news


async def run(url: str, token: str, bot: Bot) -> None:
    delay = 1.0
    while True:
        try:
            async with connect(url) as ws:
                json.loads(await ws.recv())  # hello
                if token:
                    await ws.send(json.dumps({"op": "auth", "token": token}))
                for msg in bot.subscriptions():
                    await ws.send(json.dumps(msg))
                delay = 1.0
                async for raw in ws:
                    for message in bot.handle(json.loads(raw)):
                        # in a thread: a slow webhook must not stall the connection
                        await asyncio.to_thread(bot.post, message)
        except (OSError, ConnectionClosed, InvalidHandshake) as exc:
            print(f"connection lost ({exc}); reconnecting in {delay:.0f} s", file=sys.stderr)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 60.0)


def main() -> None:
    port = os.environ.get("KUDOS_WEB_PORT", "8000")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--url", default=f"ws://127.0.0.1:{port}/ws")
    p.add_argument("--token", default=os.environ.get("KUDOS_WEB_TOKEN", ""))
    p.add_argument("--board", default="all")
    p.add_argument("--limit", type=int, default=10)
    p.add_argument("--member", action="append", default=[], help="a member to follow (repeat)")
    args = p.parse_args()
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops the bot
        asyncio.run(run(args.url, args.token, Bot(args.board, args.limit, tuple(args.member))))


if __name__ == "__main__":
    main()
