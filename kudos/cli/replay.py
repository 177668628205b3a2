"""The commands that feed the topic or read it back: ``replay`` and ``rebuild``."""

from __future__ import annotations

import argparse
import asyncio
import sys

import orjson

from kudos.cli.common import with_reads
from leaderboard.scoring import ScoringRules
from leaderboard.settings import Settings
from leaderboard.store import Store
from leaderboard.store.shards import Shards


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    from broker.formats import open_input, read_items
    from broker.producer import Progress, produce, wait_applied

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

            async def waiting(store: Store | Shards) -> int:
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

            return await with_reads(settings, waiting)
        return 0

    return asyncio.run(go())


def cmd_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    """Rebuild every board from the topic (after losing Redis, or to rescore the log under a new
    scoring.toml), print who moves and why, and switch atomically (stream/rebuild.py)."""
    from broker.producer import Progress
    from leaderboard.rescore import Diff, format_diff
    from stream.rebuild import rebuild

    rules = settings.periods.apply(ScoringRules.load(args.scoring or settings.scoring.path or None))
    bar = Progress("rebuilt (messages)", None, sys.stderr.isatty() or args.progress)

    def progress(_: str, done: int, total: int) -> None:
        bar.update_with_total(done, total)

    def decide(d: Diff) -> bool:
        bar.close(0)
        if args.json:
            sys.stdout.buffer.write(orjson.dumps(d.to_json()) + b"\n")
        else:
            print(format_diff(d), flush=True)
        if args.dry_run:
            return False
        if args.yes:
            return True
        if not sys.stdin.isatty():
            print("not switching: pass --yes to switch without asking", file=sys.stderr)
            return False
        return input("switch the live boards to these? [y/N] ").strip().lower() in ("y", "yes")

    result = asyncio.run(
        rebuild(
            settings,
            rules,
            switch=decide,
            on_progress=progress,
            allow_truncated=args.allow_truncated,
        )
    )
    state = (
        f"switched in {result.switch_s * 1000:.0f} ms"
        if result.switched
        else "not switched (the live boards are unchanged)"
    )
    print(
        f"rebuilt {result.messages:,} messages under scoring {rules.version} in "
        f"{result.seconds:.1f} s ({result.dead_letters:,} invalid events skipped, as the workers "
        f"dead-lettered them); {state}",
        file=sys.stderr,
    )
    if result.switched:
        print(
            f"the namespace is now on scoring {rules.version} (and these [bait] settings): "
            "workers with others stop at their next apply until restarted with these",
            file=sys.stderr,
        )
    return 0
