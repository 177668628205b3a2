#!/usr/bin/env python3
"""A chat bot for Kudos: announces climbs, entries to the top, overtakes and perk unlocks.

    python examples/chat_bot.py                                  # the top 10 of board "all"
    python examples/chat_bot.py --board 24h --member alice --member bob
    python examples/chat_bot.py --url ws://kudos.example:8000/ws --token s3cret

It is built on Kudos's Python client (kudos/client.py, docs/clients.md), which speaks the live
push protocol (docs/protocol.md): when the connection drops it reconnects with backoff and resumes
every channel from the last frame it saw, so nothing is announced twice and nothing is missed while
the server still holds the frames.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from kudos.client import Client
from kudos.subscriptions import Update
from leaderboard.errors import LiveError


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
    """Words the news of a board's top N and of some members; the client keeps the state."""

    def __init__(
        self,
        board: str = "all",
        limit: int = 10,
        members: tuple[str, ...] = (),
        post: Callable[[str], None] = post,
    ) -> None:
        self.board, self.limit, self.post = board, limit, post
        self.channels = [f"board:{board}", *(f"member:{m}" for m in members)]
        self.announced: set[str] = set()  # an event reaches every channel it concerns: say it once

    def handle(self, update: Update) -> list[str]:
        """The announcements one update makes."""
        if update.kind == "error":
            print(
                f"server error: {update.frame.get('code')}: {update.frame.get('message')}",
                file=sys.stderr,
            )
            return []
        if update.kind == "event":
            return self.events(update.events)
        if update.kind != "delta" or not update.channel.startswith("board:"):
            return []  # a snapshot, or a member's standing: their events say what matters
        return self.board_delta(update)

    def board_delta(self, update: Update) -> list[str]:
        delta, board, news = update.frame, self.board, []
        before = {e["member"]: e["score"] for e in update.previous}
        # reaching the top 1, 3, 10 or 100 comes as an event: that one line says it best
        reached = {ev.get("member") for ev in update.events}
        for e in delta.get("entered", []):
            if e["member"] not in reached:
                news.append(
                    f"🆕 {e['member']} entered the top {self.limit} on {board} at #{e['rank']}"
                )
        for e in delta.get("moved", []):  # a climb with more points, not a shift: others moved
            gained = e["score"] > before.get(e["member"], e["score"])
            if e["to"] < e["from"] and gained and e["member"] not in reached:
                news.append(
                    f"📈 {e['member']} climbed to #{e['to']} on {board} ({e['score']:g} pts)"
                )
        return news + self.events(update.events, delta.get("as_of"))

    def events(self, events: list[Mapping[str, Any]], as_of: Any = None) -> list[str]:
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
            who = ev.get("member") or str(ev.get("channel", "")).partition(":")[2]
            if ev.get("event") == "overtaken":
                news.append(f"⚔️ {ev['overtaker']} overtook {ev['overtaken']}{on}")
            elif ev.get("event") == "entered_top":
                news.append(f"🏆 {who} reached the top {ev['top']}{on} at #{ev['rank']}")
            elif ev.get("event") == "perk":
                news.append(f"🎁 {who} unlocked {ev.get('title') or 'a perk'}{on}")
        return news


async def run(url: str, token: str, bot: Bot) -> None:
    def notice(text: str) -> None:  # reconnecting, resumed: for the operator, not the chat
        print(text, file=sys.stderr, flush=True)

    async with Client(url, token=token, on_notice=notice) as client:
        for channel in bot.channels:
            client.subscribe(channel, limit=bot.limit if channel.startswith("board:") else None)
        async for update in client.updates():
            if update.fatal and not client.subs.channels:  # the server refused every channel
                message = update.frame.get("message")
                raise LiveError(
                    str(update.frame.get("code")), f"cannot follow {update.channel}: {message}"
                )
            try:
                news = bot.handle(update)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:  # an odd frame
                print(
                    f"could not word a {update.kind} on {update.channel}: {exc!r}", file=sys.stderr
                )
                continue
            for message in news:
                # in a thread: a slow webhook must not stall the connection
                await asyncio.to_thread(bot.post, message)


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
        try:
            asyncio.run(run(args.url, args.token, Bot(args.board, args.limit, tuple(args.member))))
        except LiveError as exc:  # unreachable at the start, a refused token, a refused board
            sys.exit(f"chat_bot: {exc}")


if __name__ == "__main__":
    main()
