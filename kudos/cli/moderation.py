"""The moderation commands: ``erase`` (the right to erasure), ``hide`` and ``unhide`` (off the
boards and back, nothing lost) and ``moderation`` (the hidden members and the audit log)."""

from __future__ import annotations

import argparse
import getpass
import sys

import orjson

from kudos.cli.common import run_with_reads, utc
from leaderboard.settings import Settings
from leaderboard.store import Store
from leaderboard.store.moderation import erase, hide, unhide
from leaderboard.store.shards import Shards


def _actor(args: argparse.Namespace) -> str:
    """Who is erasing: ``--by``, else the login name (the audit log records it)."""
    if args.by:
        return str(args.by)
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _parts(store: Store | Shards) -> tuple[list[Store], Store]:
    if isinstance(store, Shards):
        return list(store.stores), store.own
    return [store], store


def cmd_erase(settings: Settings, args: argparse.Namespace) -> int:
    if not args.yes:
        if not sys.stdin.isatty():
            print(
                f"not erasing {args.member}: pass --yes to erase without asking "
                "(it cannot be undone)",
                file=sys.stderr,
            )
            return 1
        answer = input(f"erase {args.member} from every board, for good? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            return 1

    async def go(store: Store | Shards) -> int:
        stores, own = _parts(store)
        done = await erase(stores, own, args.member, by=_actor(args), reason=args.reason or "")
        if args.json:
            body = done.to_json(_actor(args))
            sys.stdout.buffer.write(orjson.dumps(body) + b"\n")
        else:
            print(
                f"erased {args.member}: {done.rows} board rows, {done.unlocks} unlocks, "
                f"{done.outbox_entries} outbox and log entries, {done.webhook_jobs} webhook jobs; "
                f"tombstone {done.tombstone} (later events about them are not scored, and "
                "`kudos rebuild` leaves them out)"
            )
        return 0

    return run_with_reads(settings, go)


def cmd_hide(settings: Settings, args: argparse.Namespace) -> int:
    async def go(store: Store | Shards) -> int:
        stores, own = _parts(store)
        if args.command == "hide":
            done = await hide(stores, own, args.member, by=_actor(args), reason=args.reason)
            print(
                f"hid {args.member}: off every board (their points still accrue; "
                "`kudos unhide` shows them again)"
                if done
                else f"{args.member} was hidden already"
            )
        else:
            done = await unhide(stores, own, args.member, by=_actor(args), reason=args.reason)
            print(
                f"{args.member} is on the boards again" if done else f"{args.member} was not hidden"
            )
        return 0

    return run_with_reads(settings, go)


def cmd_moderation(settings: Settings, args: argparse.Namespace) -> int:
    async def go(store: Store | Shards) -> int:
        stores, own = _parts(store)
        entries = await own.moderation_log(args.limit)
        hidden = await stores[0].hidden_members()
        if args.json:
            sys.stdout.buffer.write(orjson.dumps({"hidden": hidden, "log": entries}) + b"\n")
            return 0
        for m, r in sorted(hidden.items()):
            print(f"hidden: {m}  since {utc(float(r['at']))} by {r['by']}  ({r['reason']})")
        if not entries:
            print("no moderation actions yet")
        for e in entries:
            why = f"  ({e['reason']})" if e["reason"] else ""
            print(f"{utc(e['at'])}  {e['action']:<6} {e['subject']}  by {e['by']}{why}")
        return 0

    return run_with_reads(settings, go)
