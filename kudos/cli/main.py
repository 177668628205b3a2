"""``parser()``, the arguments of every ``kudos`` command, and ``main()``, which runs one; the
commands themselves live beside it (stack, boards, replay, perks, bait)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from kudos.cli import bait, boards, moderation, perks, replay, stack
from kudos.cli.common import positive
from leaderboard import redact
from leaderboard.errors import KudosError
from leaderboard.settings import load_settings

#: What ``kudos --help`` says first.
DESCRIPTION = (
    "The ``kudos`` command line. Every command reads the same settings (``KUDOS_*`` variables)."
)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kudos", description=DESCRIPTION)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("up", help="start the embedded stack (broker, Redis, worker, web, deliver)")
    s.add_argument("--background", action="store_true", help="detach and return once healthy")
    s.add_argument(
        "--redis-cluster",
        type=int,
        metavar="N",
        default=None,
        help="start a Redis Cluster of N primaries (3 or more) with one replica each instead of "
        "one Redis; its first primary takes KUDOS_REDIS_URL's port",
    )
    s.set_defaults(fn=stack.cmd_up)
    sub.add_parser("down", help="stop the embedded stack").set_defaults(fn=stack.cmd_down)
    s = sub.add_parser("worker", help="run one Faust worker")
    s.add_argument(
        "--loglevel",
        default=None,
        help="lowest level logged (default: KUDOS_LOG_LEVEL, or warning)",
    )
    s.set_defaults(fn=stack.cmd_worker)
    sub.add_parser("web", help="run the web process (read API and page)").set_defaults(
        fn=stack.cmd_web
    )
    s = sub.add_parser(
        "topics", help="create the Kafka topics with KUDOS_BROKER_PARTITIONS partitions, check them"
    )
    s.add_argument(
        "--timeout", type=positive(float), default=60.0, help="seconds to wait for the broker"
    )
    s.set_defaults(fn=stack.cmd_topics)

    sub.add_parser(
        "deliver",
        help="run the delivery process: perk unlocks (perk-unlocks topic, websocket, webhooks) "
        "and bait alerts (bait-alerts topic, websocket)",
    ).set_defaults(fn=stack.cmd_deliver)
    s = sub.add_parser("webhooks", help="webhook attempts log and dead-letter replay")
    wsub = s.add_subparsers(dest="webhooks_command", required=True)
    w = wsub.add_parser("log", help="the latest webhook attempts, with status and latency")
    w.add_argument("--limit", type=positive(int), default=50)
    w.add_argument("--json", action="store_true", help="one JSON object a line")
    w.set_defaults(fn=perks.cmd_webhooks_log)
    w = wsub.add_parser("replay", help="send dead-lettered webhook jobs again")
    w.add_argument("--endpoint", metavar="ID", help="only this endpoint's jobs")
    w.add_argument(
        "--enable",
        action="store_true",
        help="also re-enable the endpoint(s) disabled by a 410 Gone and replay their jobs",
    )
    w.set_defaults(fn=perks.cmd_webhooks_replay)
    s = sub.add_parser(
        "rebuild",
        help="rebuild every board from the topic (after losing Redis, or to rescore under a new "
        "scoring.toml), show who moves and why, switch atomically",
    )
    s.add_argument("--scoring", help="the scoring.toml to rescore with (default: the current one)")
    s.add_argument(
        "--dry-run", action="store_true", help="report only; the boards stay as they are"
    )
    s.add_argument("--yes", action="store_true", help="switch without asking")
    s.add_argument("--json", action="store_true", help="the diff report as JSON")
    s.add_argument("--progress", action="store_true", help="progress even when not on a terminal")
    s.add_argument(
        "--allow-truncated",
        action="store_true",
        help="rebuild even if retention deleted the topic's first records (loses that history)",
    )
    s.set_defaults(fn=replay.cmd_rebuild)
    s = sub.add_parser(
        "alerts", help="comment-bait alerts (throttles started and ended), newest first"
    )
    s.add_argument("--member", default=None, help="only this author's throttles, one per post")
    s.add_argument("--limit", type=positive(int), default=20, help="alerts to list")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=perks.cmd_alerts)
    s = sub.add_parser(
        "bait-eval",
        help="measure the comment-bait detector through the real pipeline (own servers)",
    )
    bait.add_arguments(s)
    s.set_defaults(fn=bait.cmd_bait_eval)
    s = sub.add_parser("perks", help="perk unlocks: the latest ones, or one member's")
    s.add_argument("member", nargs="?", metavar="MEMBER")
    s.add_argument("--limit", type=positive(int), default=20, help="latest unlocks to list")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=perks.cmd_perks)
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
    s.set_defaults(fn=replay.cmd_replay)
    s = sub.add_parser("board", help="show a page of a board")
    s.add_argument("board")
    s.add_argument("--limit", type=int, default=10)
    s.add_argument("--offset", type=int, default=0)
    s.add_argument(
        "--members",
        metavar="A,B,...",
        help="a peer board: only these members (up to 1,000), ranked among themselves, "
        "with their ranks on the whole board",
    )
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=boards.cmd_board)
    s = sub.add_parser("export", help="the whole board as CSV rank,member,score")
    s.add_argument("board")
    s.set_defaults(fn=boards.cmd_export)
    s = sub.add_parser("member", help="a member's rank and score on every board, and why")
    s.add_argument("id")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=boards.cmd_member)
    sub.add_parser(
        "stats", help="pipeline counters (applied, duplicate, ...) as JSON"
    ).set_defaults(fn=boards.cmd_stats)
    s = sub.add_parser(
        "erase",
        help="erase a member (the right to erasure): off every board, archive, explain, perk, "
        "outbox and feed, and never scored again (a tombstone; a rebuild leaves them out too)",
    )
    s.add_argument("member", metavar="MEMBER")
    s.add_argument("--yes", action="store_true", help="erase without asking (it is for good)")
    s.add_argument("--reason", default="", help="why (kept in the audit log, `kudos moderation`)")
    s.add_argument("--by", default=None, help="who is erasing (default: your login name)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=moderation.cmd_erase)
    for verb, what in (
        ("hide", "take a member off every board for moderation (their points keep accruing)"),
        ("unhide", "show a hidden member on the boards again, with everything they earned"),
    ):
        s = sub.add_parser(verb, help=what)
        s.add_argument("member", metavar="MEMBER")
        s.add_argument(
            "--reason",
            required=verb == "hide",
            default="",
            help="why (kept in the audit log, `kudos moderation`)",
        )
        s.add_argument("--by", default=None, help="who (default: your login name)")
        s.set_defaults(fn=moderation.cmd_hide)
    s = sub.add_parser(
        "moderation", help="the hidden members and the moderation audit log, newest first"
    )
    s.add_argument("--limit", type=positive(int), default=20)
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=moderation.cmd_moderation)
    s = sub.add_parser("watch", help="print live updates of boards and members, one line each")
    s.add_argument(
        "channels", nargs="+", metavar="CHANNEL", help="board:ID, member:ID, alerts or a board id"
    )
    s.add_argument("--limit", type=int, default=10, help="top N of board channels (1-100)")
    s.add_argument("--json", action="store_true", help="every frame received, one JSON a line")
    s.add_argument("--scores", action="store_true", help="also score-only changes and rank shifts")
    s.add_argument("--url", help="the websocket (default ws://KUDOS_WEB_HOST:KUDOS_WEB_PORT/ws)")
    s.add_argument("--token", help="auth token (default KUDOS_WEB_TOKEN)")
    s.add_argument(
        "--count",
        type=positive(int),
        metavar="N",
        help="exit 0 after N updates (lines; with --json, deltas and events applied; "
        "1 if --for ends first)",
    )
    s.add_argument(
        "--for", dest="seconds", type=positive(float), metavar="SECONDS", help="exit after SECONDS"
    )
    s.set_defaults(fn=boards.cmd_watch)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    secrets: tuple[str, ...] = ()
    try:
        settings = load_settings()
        secrets = settings.secrets()
        return int(args.fn(settings, args))
    except KudosError as exc:
        # the last line of defence: no message names a password or token it was handed
        print(f"kudos: error: {redact.text(str(exc), secrets)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
