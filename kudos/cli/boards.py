"""The commands that read the boards: ``board``, ``export``, ``member``, ``stats`` and ``watch``."""

from __future__ import annotations

import argparse
import csv
import sys

import orjson

from kudos.cli.common import run_with_reads, unknown_member
from kudos.cli.output import print_explanation
from leaderboard.errors import KudosError
from leaderboard.ranking import parse_cohort
from leaderboard.settings import Settings
from leaderboard.store import Store
from leaderboard.store.shards import Shards


def cmd_board(settings: Settings, args: argparse.Namespace) -> int:
    if args.members is not None:
        return _cohort(settings, args)

    async def go(store: Store | Shards) -> int:
        entries, size = await store.page(args.board, args.limit, args.offset)
        wm, _ = await store.clock()
        if args.json:
            sys.stdout.buffer.write(
                orjson.dumps(
                    {
                        "board": args.board,
                        "members": size,
                        "as_of": wm,
                        "entries": [
                            {"rank": e.rank, "member": e.member, "score": e.score} for e in entries
                        ],
                    }
                )
                + b"\n"
            )
            return 0
        print(f"{args.board}: {size:,} members" + (f", as of event time {wm:.0f}" if wm else ""))
        for e in entries:
            print(f"{e.rank:>6}  {e.member:<32} {e.score:>14.3f}")
        return 0

    return run_with_reads(settings, go)


def _cohort(settings: Settings, args: argparse.Namespace) -> int:
    """``kudos board BOARD --members a,b``: a peer board, as GET /api/boards/{board}/cohort."""
    try:
        members = parse_cohort(args.members)
    except ValueError as exc:
        raise KudosError(str(exc)) from None

    async def go(store: Store | Shards) -> int:
        entries, size, missing = await store.cohort(args.board, members)
        wm, _ = await store.clock()
        if args.json:
            body = {
                "board": args.board,
                "members": size,
                "as_of": wm,
                "entries": [e.to_json() for e in entries],
                "missing": missing,
            }  # fmt: skip
            sys.stdout.buffer.write(orjson.dumps(body) + b"\n")
            return 0
        print(f"{args.board}: {len(entries):,} of {len(members):,} members on it, of {size:,}")
        for e in entries:
            print(f"{e.rank:>6}  {e.member:<32} {e.score:>14.3f}  (#{e.global_rank:,} overall)")
        if missing:
            print("not on the board: " + ", ".join(missing))
        return 0

    return run_with_reads(settings, go)


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    async def go(store: Store | Shards) -> int:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["rank", "member", "score"])
        async for rank, member, score in store.export(args.board):
            w.writerow([rank, member, score])
        return 0

    return run_with_reads(settings, go)


def cmd_member(settings: Settings, args: argparse.Namespace) -> int:
    async def go(store: Store | Shards) -> int:
        explanation = await store.explanation(args.id)
        if explanation is None:
            return unknown_member(args.id, args.json)
        body = explanation.to_json()
        body.update((await store.profiles([args.id])).get(args.id, {}))  # (as the API's)
        if args.json:
            sys.stdout.buffer.write(orjson.dumps(body) + b"\n")
        else:
            print_explanation(body, sys.stdout)
        return 0

    return run_with_reads(settings, go)


def cmd_stats(settings: Settings, args: argparse.Namespace) -> int:
    async def go(store: Store | Shards) -> int:
        stats = await store.stats()
        wm, lm = await store.clock()
        sys.stdout.buffer.write(orjson.dumps({**stats, "watermark": wm, "landmark": lm}) + b"\n")
        return 0

    return run_with_reads(settings, go)


def cmd_watch(settings: Settings, args: argparse.Namespace) -> int:
    from kudos import watch
    from kudos.watcher import parse_channel

    try:
        channels = [parse_channel(c) for c in args.channels]
    except ValueError as exc:
        raise KudosError(str(exc)) from None
    url = args.url or watch.default_url(settings.web.host, settings.web.port)
    token = settings.web.token if args.token is None else args.token
    opts = watch.Options(
        url, channels, args.limit, token, args.json, args.scores, args.count, args.seconds
    )
    return watch.run(opts)
