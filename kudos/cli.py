"""The ``kudos`` command line. Every command reads the same settings (``KUDOS_*`` variables)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError

from leaderboard.errors import KudosError
from leaderboard.scoring import ScoringRules
from leaderboard.settings import Settings, load_settings
from leaderboard.store import Store


def _store(settings: Settings) -> Store:
    return Store.connect(
        settings.redis.url, settings.redis.prefix, ScoringRules.load(settings.scoring.path or None)
    )


async def _with_store(settings: Settings, fn: Callable[[Store], Awaitable[int]]) -> int:
    store = _store(settings)
    try:
        return await fn(store)
    except RedisConnectionError as exc:
        raise KudosError(
            f"cannot reach Redis at {settings.redis.url} ({exc}); is the stack up? "
            "(`kudos up --background`, or set KUDOS_REDIS_URL)"
        ) from exc
    finally:
        await store.close()


def cmd_up(settings: Settings, args: argparse.Namespace) -> int:
    from kudos.stack import up

    return up(settings, background=args.background)


def cmd_down(settings: Settings, args: argparse.Namespace) -> int:
    from kudos.stack import down

    return down(settings)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    import faust

    from stream.app import create_app
    from stream.topics import ensure_topics

    settings.home.mkdir(parents=True, exist_ok=True)
    asyncio.run(ensure_topics(settings))
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=args.loglevel, quiet=True)
    worker.execute_from_commandline()
    return 0


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    from web.server import run

    asyncio.run(run(settings))
    return 0


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from stream.formats import open_input, read_items
    from stream.producer import Progress, produce, wait_applied

    async def go() -> int:
        total = None
        if args.path != "-" and not args.no_count:
            with open_input(args.path) as f:
                total = sum(1 for _ in f)
        tty = sys.stderr.isatty() or args.progress
        bar = Progress("produced", total, tty)
        with open_input(args.path) as f:
            out = await produce(
                settings,
                read_items(f, args.format),
                envelope=args.envelope,
                rate=args.rate,
                on_progress=bar.update,
            )
        bar.close(out.events)
        print(
            f"produced {out.events:,} events in {out.messages:,} messages to "
            f"{settings.broker.topic}",
            file=sys.stderr,
        )
        if args.wait:
            abar = Progress("applied ", None, tty)

            async def waiting(store: Store) -> int:
                await wait_applied(
                    store,
                    out.end_offsets,
                    on_progress=abar.update_with_total,
                )
                abar.close(sum(o + 1 for o in out.end_offsets.values()))
                stats = await store.stats()
                print(
                    "applied: " + ", ".join(f"{k} {v:,}" for k, v in stats.items()), file=sys.stderr
                )
                return 0

            return await _with_store(settings, waiting)
        return 0

    return asyncio.run(go())


def cmd_board(settings: Settings, args: argparse.Namespace) -> int:
    async def go(store: Store) -> int:
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

    return asyncio.run(_with_store(settings, go))


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    async def go(store: Store) -> int:
        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(["rank", "member", "score"])
        async for rank, member, score in store.export(args.board):
            w.writerow([rank, member, score])
        return 0

    return asyncio.run(_with_store(settings, go))


def cmd_member(settings: Settings, args: argparse.Namespace) -> int:
    async def go(store: Store) -> int:
        boards = await store.boards()
        rows: list[dict[str, Any]] = []
        for b in boards:
            st = await store.standing(b, args.id, around=0)
            if st is not None:
                rows.append(
                    {
                        "board": b,
                        "rank": st.rank,
                        "score": st.score,
                        "members": st.members,
                        "percentile": st.percentile,
                    }
                )
        explain = await store.explain(args.id)
        if args.json:
            sys.stdout.buffer.write(
                orjson.dumps({"member": args.id, "boards": rows, "explain": explain}) + b"\n"
            )
            return 0
        if not rows and not explain:
            print(f"{args.id}: not on any board yet")
            return 1
        print(f"{args.id}")
        for r in rows:
            print(
                f"  {r['board']:<20} rank {r['rank']:>7,} of {r['members']:<9,} "
                f"score {r['score']:>12.3f}  top {100 - r['percentile'] + 100 / max(r['members'], 1):.2f}%"
            )
        kinds = sorted({k.split(":", 1)[1] for k in explain if ":" in k})
        if kinds:
            print("  why:")
            for k in kinds:
                n = explain.get(f"n:{k}", 0)
                mp = explain.get(f"mp:{k}", 0)
                full = explain.get(f"full:{k}", 0)
                print(
                    f"    {k:<11} {n:>7,} events  {mp / 1000:>12.3f} points"
                    f"  ({(full - mp) / 1000:.3f} discounted by diminishing returns)"
                )
            if explain.get("self"):
                print(f"    self-interactions ignored: {explain['self']:,}")
        return 0

    return asyncio.run(_with_store(settings, go))


def cmd_stats(settings: Settings, args: argparse.Namespace) -> int:
    async def go(store: Store) -> int:
        stats = await store.stats()
        wm, lm = await store.clock()
        sys.stdout.buffer.write(orjson.dumps({**stats, "watermark": wm, "landmark": lm}) + b"\n")
        return 0

    return asyncio.run(_with_store(settings, go))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kudos", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("up", help="start the embedded stack (broker, Redis, worker, web)")
    s.add_argument("--background", action="store_true", help="detach and return once healthy")
    s.set_defaults(fn=cmd_up)
    sub.add_parser("down", help="stop the embedded stack").set_defaults(fn=cmd_down)
    s = sub.add_parser("worker", help="run one Faust worker")
    s.add_argument("--loglevel", default="warning")
    s.set_defaults(fn=cmd_worker)
    sub.add_parser("web", help="run the web process (read API and page)").set_defaults(fn=cmd_web)
    s = sub.add_parser("replay", help="produce a log of interactions")
    s.add_argument("path", help="a file (plain or .gz) or - for standard input")
    s.add_argument("--format", choices=("jsonl", "higgs", "sx"), default="jsonl")
    s.add_argument(
        "--rate", type=float, default=None, help="events per second (default: as fast as possible)"
    )
    s.add_argument("--envelope", type=int, default=1, help="events per message (default 1)")
    s.add_argument("--wait", action="store_true", help="return only when every event is applied")
    s.add_argument(
        "--progress", action="store_true", help="show progress even when not on a terminal"
    )
    s.add_argument(
        "--no-count", action="store_true", help="do not count lines first (no percentage)"
    )
    s.set_defaults(fn=cmd_replay)
    s = sub.add_parser("board", help="show a page of a board")
    s.add_argument("board")
    s.add_argument("--limit", type=int, default=10)
    s.add_argument("--offset", type=int, default=0)
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_board)
    s = sub.add_parser("export", help="the whole board as CSV rank,member,score")
    s.add_argument("board")
    s.set_defaults(fn=cmd_export)
    s = sub.add_parser("member", help="a member's rank and score on every board, and why")
    s.add_argument("id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_member)
    sub.add_parser(
        "stats", help="pipeline counters (applied, duplicate, ...) as JSON"
    ).set_defaults(fn=cmd_stats)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        settings = load_settings()
        return int(args.fn(settings, args))
    except KudosError as exc:
        print(f"kudos: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
