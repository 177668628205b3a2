"""The commands about what scores set off: ``perks``, ``webhooks log``, ``webhooks replay`` and
``alerts``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson

from kudos.cli.common import run_with_reads, unknown_member, utc
from kudos.cli.output import alert_line
from leaderboard.settings import Settings
from leaderboard.store import Store
from leaderboard.store.shards import Shards


def cmd_perks(settings: Settings, args: argparse.Namespace) -> int:
    from leaderboard.perks import Unlock

    async def go(store: Store | Shards) -> int:
        ties: dict[str, dict[str, Any]] = {}
        if args.member is None:
            rows = []
            for fields in await store.outbox_recent(args.limit):
                try:
                    rows.append(Unlock.from_fields(fields).data())
                except ValueError:
                    continue
            ties = await store.perk_ties()
            body: dict[str, Any] = {"perks": rows, "ties": ties}
        else:
            found = await store.perks_of(args.member)
            if found is None:
                return unknown_member(args.member, args.json)
            rows = found
            body = {"member": args.member, "perks": rows}
        if args.json:
            sys.stdout.buffer.write(orjson.dumps(body) + b"\n")
            return 0
        if not rows:
            print("no perks unlocked yet" + (f" by {args.member}" if args.member else ""))
        for r in rows:
            at = utc(float(r["at"])) if r.get("at") is not None else "-"
            print(
                f"{at}  {r['member']:<20} {r['title']}  ({r['rule']} on {r['board']}, "
                f"#{r['rank']}, {float(r['score']):.3f} pts)  {r['id']}"
            )
        for rule, t in sorted(ties.items()):
            # the tie policy (leaderboard/perks.py, "Ties"): the latest check that left one out
            print(
                f"{rule}: {t['tied']} members tied at #{t['rank']} on {t['board']} "
                f"({utc(float(t['at']))}), past the rule's cap of {t['cap']}: "
                "none of them unlocked at that check"
            )
        return 0

    return run_with_reads(settings, go)


def cmd_webhooks_log(settings: Settings, args: argparse.Namespace) -> int:
    async def go(store: Store | Shards) -> int:
        entries = await store.webhook_log(args.limit)
        if args.json:
            for e in entries:
                sys.stdout.buffer.write(orjson.dumps(e) + b"\n")
            return 0
        if not entries:
            print("no webhook attempts yet")
        for e in entries:
            at = utc(float(e["at"]), "%Y-%m-%d %H:%M:%S")
            status = e.get("status") or "-"
            ms = f"{float(e['ms']):.0f} ms" if e.get("ms") else "-"
            then = e["action"]
            if e.get("next"):
                then += f" in {max(0.0, float(e['next']) - float(e['at'])):.1f} s"
            error = f"  {e['error']}" if e.get("error") else ""
            print(
                f"{at}  {e['endpoint']:<12} {e['unlock']}  #{e['attempt']:<2} {status:>4} "
                f"{ms:>8}  {e['outcome']:<9} → {then}{error}"
            )
        return 0

    return run_with_reads(settings, go)


def cmd_webhooks_replay(settings: Settings, args: argparse.Namespace) -> int:
    async def go(store: Store | Shards) -> int:
        replayed, left, enabled = await store.webhook_replay(
            args.endpoint or "", args.enable, time.time()
        )
        for e in enabled:
            print(f"re-enabled endpoint {e}")
        if replayed:
            print(f"replaying {len(replayed)} dead-lettered job(s):")
            for job in replayed:
                print(f"  {job}")
        elif not left:
            which = f" for endpoint {args.endpoint}" if args.endpoint else ""
            print(f"no dead-lettered jobs{which}")
        if left:
            endpoints = sorted({job.partition(":")[0] for job in left})
            print(
                f"left {len(left)} job(s) dead: endpoint(s) {', '.join(endpoints)} are disabled "
                "(they answered 410 Gone); add --enable to re-enable and replay them"
            )
        return 0

    return run_with_reads(settings, go)


def cmd_alerts(settings: Settings, args: argparse.Namespace) -> int:
    async def go(store: Store | Shards) -> int:
        alerts = await store.alerts(args.limit, args.member)
        if args.json:
            sys.stdout.buffer.write(orjson.dumps({"alerts": alerts}) + b"\n")
            return 0
        if not alerts:
            print("no comment-bait alerts" + (f" for {args.member}" if args.member else ""))
        for a in alerts:
            print(f"{a['target']:<20} {alert_line(a)}")
        return 0

    return run_with_reads(settings, go)
