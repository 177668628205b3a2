"""The ``kudos`` command line. Every command reads the same settings (``KUDOS_*`` variables)."""

from __future__ import annotations

import argparse
import asyncio
import csv
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError

from leaderboard.errors import KudosError
from leaderboard.explain import not_seen
from leaderboard.scoring import ScoringRules
from leaderboard.settings import Settings, load_settings
from leaderboard.store import Store

#: The real public data (Higgs, MathOverflow, YouTube comments) beside the project.
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


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

    from broker.topics import ensure_topics
    from stream.app import create_app

    settings.home.mkdir(parents=True, exist_ok=True)
    asyncio.run(ensure_topics(settings))
    from kudos.logs import worker_logging_config

    app = create_app(settings)
    level = args.loglevel or settings.log.level or "warning"
    worker = faust.Worker(
        app,
        loglevel=level,
        quiet=True,
        logging_config=worker_logging_config(settings.log, level),
    )
    worker.execute_from_commandline()
    return 0


def cmd_topics(settings: Settings, args: argparse.Namespace) -> int:
    """Create the topics with ``KUDOS_BROKER_PARTITIONS`` partitions (the compose stack's one-shot
    step before workers start); an existing interactions topic with another count is an error."""
    from broker.topics import ensure_topics, topic_partitions

    async def go() -> dict[str, int]:
        await ensure_topics(settings, timeout=args.timeout)
        return await topic_partitions(settings)

    counts = asyncio.run(go())
    want = settings.broker.partitions
    for name, n in sorted(counts.items()):
        print(f"{name}: {n} partitions")
    have = counts.get(settings.broker.topic)
    if have != want:
        raise KudosError(
            f"topic {settings.broker.topic} has {have} partitions but KUDOS_BROKER_PARTITIONS={want}; "
            "producers would group envelopes by the wrong partition. Set KUDOS_BROKER_PARTITIONS to "
            "the topic's count (a live topic's count must not change: docs/scaling.md)"
        )
    return 0


def cmd_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    """Rebuild every board from the topic (after losing Redis, or to rescore the log under a new
    scoring.toml), print who moves and why, and switch atomically (stream/rebuild.py)."""
    from broker.producer import Progress
    from leaderboard.rescore import Diff, format_diff
    from stream.rebuild import run

    rules = ScoringRules.load(args.scoring or settings.scoring.path or None)
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

    result = run(settings, rules, decide, progress, args.allow_truncated)
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


def cmd_web(settings: Settings, args: argparse.Namespace) -> int:
    from kudos.logs import configure
    from web.server import run

    configure(settings.log)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    asyncio.run(run(settings))
    return 0


def cmd_deliver(settings: Settings, args: argparse.Namespace) -> int:
    from deliver.deliverer import run
    from kudos.logs import configure

    configure(settings.log)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    asyncio.run(run(settings))
    return 0


def cmd_webhooks_log(settings: Settings, args: argparse.Namespace) -> int:
    async def go(store: Store) -> int:
        entries = await store.webhook_log(args.limit)
        if args.json:
            for e in entries:
                sys.stdout.buffer.write(orjson.dumps(e) + b"\n")
            return 0
        if not entries:
            print("no webhook attempts yet")
        for e in entries:
            at = _utc(float(e["at"]), "%Y-%m-%d %H:%M:%S")
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

    return asyncio.run(_with_store(settings, go))


def cmd_webhooks_replay(settings: Settings, args: argparse.Namespace) -> int:
    async def go(store: Store) -> int:
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

    return asyncio.run(_with_store(settings, go))


def alert_line(a: dict[str, Any]) -> str:
    """One throttle decision (an alert or an explain throttle line) as a line of text."""
    what = f"post {a['post']}" if a.get("post") else "comments without a post"
    since = f"since {_utc(a['detected_at'], '%Y-%m-%d %H:%M:%S')}" if a.get("detected_at") else ""
    state = a["state"]
    if a.get("ended_at") is not None:
        state = f"ended {_utc(a['ended_at'], '%Y-%m-%d %H:%M:%S')}"
    reasons = ", ".join(a.get("reasons") or ()) or "-"
    return f"{what}: x{a['multiplier']:g} {since} ({state}); reasons: {reasons}"


def cmd_alerts(settings: Settings, args: argparse.Namespace) -> int:
    async def go(store: Store) -> int:
        alerts = await store.alerts(args.limit, args.member)
        if args.json:
            sys.stdout.buffer.write(orjson.dumps({"alerts": alerts}) + b"\n")
            return 0
        if not alerts:
            print("no comment-bait alerts" + (f" for {args.member}" if args.member else ""))
        for a in alerts:
            print(f"{a['target']:<20} {alert_line(a)}")
        return 0

    return asyncio.run(_with_store(settings, go))


def cmd_bait_eval(settings: Settings, args: argparse.Namespace) -> int:
    from baiteval.pipeline import evaluate

    data = Path(args.data)
    if not (data / "youtube_spam").is_dir():
        raise KudosError(
            f"no data at {data} (expected higgs/, mathoverflow/ and youtube_spam/); pass --data DIR"
        )
    seeds = args.seed or [1, 2]
    sections, passed = asyncio.run(
        evaluate(data, settings.home / "bait-eval", seeds, not args.no_real, args.scale)
    )
    print("\n\n".join(sections))
    return 0 if passed or not args.strict else 1


def cmd_perks(settings: Settings, args: argparse.Namespace) -> int:
    from leaderboard.perks import Unlock

    async def go(store: Store) -> int:
        if args.member is None:
            rows = []
            for fields in await store.outbox_recent(args.limit):
                try:
                    rows.append(Unlock.from_fields(fields).data())
                except ValueError:
                    continue
            body: dict[str, Any] = {"perks": rows}
        else:
            found = await store.perks_of(args.member)
            if found is None:
                if args.json:
                    sys.stdout.buffer.write(orjson.dumps({"error": not_seen(args.member)}) + b"\n")
                else:
                    print(f"{args.member}: {not_seen(args.member)}", file=sys.stderr)
                return 1
            rows = found
            body = {"member": args.member, "perks": rows}
        if args.json:
            sys.stdout.buffer.write(orjson.dumps(body) + b"\n")
            return 0
        if not rows:
            print("no perks unlocked yet" + (f" by {args.member}" if args.member else ""))
        for r in rows:
            at = _utc(float(r["at"])) if r.get("at") is not None else "-"
            print(
                f"{at}  {r['member']:<20} {r['title']}  ({r['rule']} on {r['board']}, "
                f"#{r['rank']}, {float(r['score']):.3f} pts)  {r['id']}"
            )
        return 0

    return asyncio.run(_with_store(settings, go))


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


#: Eight levels of a sparkline; the lowest is also what an empty slot shows.
BLOCKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], per: int = 1) -> str:
    """One block per ``per`` consecutive values (summed), scaled to the largest slot.

    An empty slot shows the lowest block and any non-empty one at least the second lowest, so a
    small amount never looks like nothing.
    """
    slots = [sum(values[i : i + per]) for i in range(0, len(values), per)]
    top = max(slots, default=0.0)
    out = []
    for v in slots:
        if v <= 0 or top <= 0:
            out.append(BLOCKS[0])
        else:
            out.append(BLOCKS[max(1, math.ceil(v / top * (len(BLOCKS) - 1)))])
    return "".join(out)


def _utc(ts: float, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return datetime.fromtimestamp(ts, UTC).strftime(fmt)


def print_explanation(body: dict[str, Any], out: TextIO) -> None:
    """The human form of an explain body (``Explanation.to_json()``)."""
    as_of = body["as_of"]
    when = ""
    if as_of is not None:
        when = f"; as of event time {as_of:.0f} = {_utc(as_of, '%Y-%m-%d %H:%M:%S')} UTC"
    print(f"{body['member']}  (scoring {body['scoring_version']}{when})", file=out)
    for b, pl in body["boards"].items():
        top = 100 - pl["percentile"] + 100 / max(pl["members"], 1)
        print(
            f"  {b:<10} rank {pl['rank']:>7,} of {pl['members']:<9,} "
            f"score {pl['score']:>12.3f}  percentile {pl['percentile']:>6.2f} (top {top:.2f}%)",
            file=out,
        )
    if body["kinds"]:
        print("  why:", file=out)
        print(
            f"    {'kind':<11} {'count':>7} {'points':>12} {'discounted':>12} {'withheld':>12}",
            file=out,
        )
        rows = [*body["kinds"].items(), ("total", body["totals"])]
        for kind, k in rows:
            print(
                f"    {kind:<11} {k['count']:>7,} {k['points']:>12.3f} "
                f"{k['discounted']:>12.3f} {k['withheld']:>12.3f}",
                file=out,
            )
        print(
            "    (discounted: lost to diminishing returns; withheld: by the comment-bait throttle)",
            file=out,
        )
    print(f"  self-interactions ignored: {body['self_ignored']:,}", file=out)
    if body.get("throttles"):
        print("  comment-bait throttles (comments on these count only the multiplier):", file=out)
        for t in body["throttles"]:
            print(f"    {alert_line(t)}  withheld {t['withheld']:.3f}", file=out)
    if body["top_posts"]:
        print("  top posts:", file=out)
        for p in body["top_posts"]:
            print(f"    {p['points']:>12.3f}  {p['post']}", file=out)
    trend = body["trend"]
    rank = f"#{trend['rank']:,}" if trend["rank"] is not None else "-"
    print(f"  trend: 24h {trend['24h']:.3f}  7d {trend['7d']:.3f}  rank on all {rank}", file=out)
    hourly = trend["hourly"]
    if hourly:
        per = 6 if len(hourly) > 48 else 1
        line = sparkline([h["points"] for h in hourly], per)
        print(
            f"  hourly ({per} h a block): {_utc(hourly[0]['hour'])} {line} "
            f"{_utc(hourly[-1]['hour'] + 3600)} UTC",
            file=out,
        )


def cmd_member(settings: Settings, args: argparse.Namespace) -> int:
    async def go(store: Store) -> int:
        explanation = await store.explanation(args.id)
        if explanation is None:
            if args.json:
                sys.stdout.buffer.write(orjson.dumps({"error": not_seen(args.id)}) + b"\n")
            else:
                print(f"{args.id}: {not_seen(args.id)}", file=sys.stderr)
            return 1
        body = explanation.to_json()
        if args.json:
            sys.stdout.buffer.write(orjson.dumps(body) + b"\n")
        else:
            print_explanation(body, sys.stdout)
        return 0

    return asyncio.run(_with_store(settings, go))


def cmd_stats(settings: Settings, args: argparse.Namespace) -> int:
    async def go(store: Store) -> int:
        stats = await store.stats()
        wm, lm = await store.clock()
        sys.stdout.buffer.write(orjson.dumps({**stats, "watermark": wm, "landmark": lm}) + b"\n")
        return 0

    return asyncio.run(_with_store(settings, go))


_N = TypeVar("_N", int, float)


def cmd_watch(settings: Settings, args: argparse.Namespace) -> int:
    from kudos import watch

    try:
        channels = [watch.parse_channel(c) for c in args.channels]
    except ValueError as exc:
        raise KudosError(str(exc)) from None
    url = args.url or watch.default_url(settings.web.host, settings.web.port)
    token = settings.web.token if args.token is None else args.token
    opts = watch.Options(
        url, channels, args.limit, token, args.json, args.scores, args.count, args.seconds
    )
    return watch.run(opts)


def _positive(kind: Callable[[str], _N]) -> Callable[[str], _N]:
    def parse(text: str) -> _N:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text}: must be positive")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kudos", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("up", help="start the embedded stack (broker, Redis, worker, web, deliver)")
    s.add_argument("--background", action="store_true", help="detach and return once healthy")
    s.set_defaults(fn=cmd_up)
    sub.add_parser("down", help="stop the embedded stack").set_defaults(fn=cmd_down)
    s = sub.add_parser("worker", help="run one Faust worker")
    s.add_argument(
        "--loglevel",
        default=None,
        help="lowest level logged (default: KUDOS_LOG_LEVEL, or warning)",
    )
    s.set_defaults(fn=cmd_worker)
    sub.add_parser("web", help="run the web process (read API and page)").set_defaults(fn=cmd_web)
    s = sub.add_parser(
        "topics", help="create the Kafka topics with KUDOS_BROKER_PARTITIONS partitions, check them"
    )
    s.add_argument(
        "--timeout", type=_positive(float), default=60.0, help="seconds to wait for the broker"
    )
    s.set_defaults(fn=cmd_topics)

    sub.add_parser(
        "deliver",
        help="run the delivery process: perk unlocks (perk-unlocks topic, websocket, webhooks) "
        "and bait alerts (bait-alerts topic, websocket)",
    ).set_defaults(fn=cmd_deliver)
    s = sub.add_parser("webhooks", help="webhook attempts log and dead-letter replay")
    wsub = s.add_subparsers(dest="webhooks_command", required=True)
    w = wsub.add_parser("log", help="the latest webhook attempts, with status and latency")
    w.add_argument("--limit", type=_positive(int), default=50)
    w.add_argument("--json", action="store_true", help="one JSON object a line")
    w.set_defaults(fn=cmd_webhooks_log)
    w = wsub.add_parser("replay", help="send dead-lettered webhook jobs again")
    w.add_argument("--endpoint", metavar="ID", help="only this endpoint's jobs")
    w.add_argument(
        "--enable",
        action="store_true",
        help="also re-enable the endpoint(s) disabled by a 410 Gone and replay their jobs",
    )
    w.set_defaults(fn=cmd_webhooks_replay)
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
    s.set_defaults(fn=cmd_rebuild)
    s = sub.add_parser(
        "alerts", help="comment-bait alerts (throttles started and ended), newest first"
    )
    s.add_argument("--member", default=None, help="only this author's throttles, one per post")
    s.add_argument("--limit", type=_positive(int), default=20, help="alerts to list")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_alerts)
    s = sub.add_parser(
        "bait-eval",
        help="measure the comment-bait detector through the real pipeline (own servers)",
    )
    s.add_argument(
        "--seed", type=int, action="append", help="labelled stream seed (repeat; default 1 and 2)"
    )
    s.add_argument("--scale", type=_positive(float), default=1.0, help="size of the streams")
    s.add_argument("--no-real", action="store_true", help="skip the full Higgs/MathOverflow runs")
    s.add_argument("--data", default=str(DEFAULT_DATA), help="the shared data directory")
    s.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    s.set_defaults(fn=cmd_bait_eval)
    s = sub.add_parser("perks", help="perk unlocks: the latest ones, or one member's")
    s.add_argument("member", nargs="?", metavar="MEMBER")
    s.add_argument("--limit", type=_positive(int), default=20, help="latest unlocks to list")
    s.add_argument("--json", action="store_true")
    s.set_defaults(fn=cmd_perks)
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
        type=_positive(int),
        metavar="N",
        help="exit 0 after N updates (1 if --for ends first)",
    )
    s.add_argument(
        "--for", dest="seconds", type=_positive(float), metavar="SECONDS", help="exit after SECONDS"
    )
    s.set_defaults(fn=cmd_watch)
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
