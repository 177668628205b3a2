"""A soak of steady traffic over weeks of event time: ``python -m bench.soak``.

Plays ``--days`` (30) days of event time at ``--per-day`` (20,000) events a day through the
worker's own :class:`stream.processor.Processor` (no Kafka: the messages are built here, one
envelope of ``--envelope`` events of one partition each, the partition of its targets by the
producer's :func:`broker.producer.partition_for`) into its own Valkey, with the de-duplication
horizon at ``--horizon-days`` (7) and the bait throttle on (its evidence goes back in as
messages of the other partitions, as the worker produces it).

The traffic is steady and synthetic: ``--members`` (20,000) accounts, actors and targets drawn
Zipf-like; ``--posts-per-day`` new posts (a ``post`` event each), which ~45 % of the events
name (comments, replies, likes, shares on today's and yesterday's posts, the post's author the
target); one of 8 communities on ~30 % of the events; every id new; event times evenly spread
over each day, in order.

After each day it reads Redis's ``used_memory`` and ``DBSIZE``, the bytes of each key family
(``SCAN`` + ``MEMORY USAGE … SAMPLES 0``: every key of a family of at most ``SAMPLE`` keys,
a random ``SAMPLE`` of a bigger one, scaled to its count) and the worker's own dedupe state
(``seen.nbytes() + dr.nbytes()`` over its partitions), with the members seen (``ZCARD`` of
board:all) and the rows of every posts:<member>. It prints a table, an ASCII plot, the growth
per day before the horizon against the growth per day over the last days − horizon − 1 days,
the families that still grow then, and how much of that growth the members still arriving
account for (state per member is bounded by the population, not by time); and writes ``--svg``
(docs/soak.svg). It exits non-zero if the store did not count every event sent.

About 2-3 minutes on 2 cores at the defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import redis.asyncio as aioredis

from broker.producer import partition_for
from kudos import servers
from leaderboard.bait import Evidence
from leaderboard.plan import DeadLetter
from leaderboard.scoring import ScoringRules
from leaderboard.settings import BaitSettings, WorkerSettings
from leaderboard.store import Store
from stream.processor import Processor, Raw

DAY = 86400
#: the first simulated day starts here (2023-11-15 00:00 UTC: a whole day, as the stores count)
T0 = 19_676 * DAY
PARTITIONS = 4
COMMUNITIES = tuple(f"c{i}" for i in range(8))
#: keys of a family measured one by one; a bigger family is sampled and scaled
SAMPLE = 2000
#: messages per Processor.process call (~5k events: what one worker batch holds at this rate)
BATCH = 16
#: after/before growth ratios: below LEVELLED a family has levelled off; at LINEAR or more it
#: grows as fast as before the horizon (state that nothing prunes)
LEVELLED, LINEAR = 0.05, 0.8
#: the families the table shows, in this order (throttle includes withheld); the rest: "other"
SHOWN = ("ids", "drc", "board", "bucket", "explain", "posts", "mcomm", "bait", "throttle")
#: families that hold one key or row per member (bounded by the population, not by time)
PER_MEMBER = ("board", "explain", "mcomm")
#: kinds of events that name no post, and of those that do (weights: a social network's mix)
PLAIN = (
    ("like", 30),
    ("click", 30),
    ("share", 10),
    ("follow", 4),
    ("mention", 6),
    ("conversion", 4),
)
ON_POST = (("comment", 30), ("reply", 20), ("like", 30), ("share", 10), ("click", 10))
# fmt: off
WORDS = (
    "the", "a", "this", "great", "post", "thanks", "agree", "no", "why", "how", "really", "good",
    "bad", "point", "idea", "see", "more", "link", "data", "paper", "result", "wrong", "right",
    "love", "fun", "cool", "read", "later", "nice", "work", "true", "false", "maybe",
)
# fmt: on


@dataclass(frozen=True, slots=True)
class Sample:
    day: int
    events: int
    used_memory: int
    keys: int
    #: members on board:all (the population seen so far: bounds boards, explain, mcomm)
    members: int
    #: rows of every posts:<member> (one per post a member earned on)
    post_rows: int
    families: dict[str, int]
    worker: int
    detector: int
    seconds: float


class Traffic:
    """The synthetic stream, one day at a time (deterministic for a seed)."""

    def __init__(self, members: int, per_day: int, posts_per_day: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.members = [f"u{i}" for i in range(members)]
        # Zipf-like: member i is drawn with weight 1 / (i + 1)^s (targets more skewed than actors)
        self.actor_w = list(itertools.accumulate(1 / (i + 1) ** 0.7 for i in range(members)))
        self.target_w = list(itertools.accumulate(1 / (i + 1) ** 1.0 for i in range(members)))
        self.per_day = per_day
        self.posts_per_day = posts_per_day
        self.posts: list[list[tuple[str, str]]] = []  # per day: (post, author)
        self.next_id = 0

    def day(self, d: int) -> list[dict[str, object]]:
        rng, n = self.rng, self.per_day
        authors = rng.choices(self.members, cum_weights=self.target_w, k=self.posts_per_day)
        today = [(f"p{d}-{j}", a) for j, a in enumerate(authors)]
        self.posts.append(today)
        recent = today + (self.posts[-2] if len(self.posts) > 1 else [])
        # a post's popularity: Zipf over the recent posts, so a few draw most of the comments
        post_w = list(itertools.accumulate(1 / (i + 1) ** 0.9 for i in range(len(recent))))
        order = recent[:]
        rng.shuffle(order)
        actors = rng.choices(self.members, cum_weights=self.actor_w, k=n)
        targets = rng.choices(self.members, cum_weights=self.target_w, k=n)
        plain_kinds = rng.choices([k for k, _ in PLAIN], [w for _, w in PLAIN], k=n)
        post_kinds = rng.choices([k for k, _ in ON_POST], [w for _, w in ON_POST], k=n)
        picks = rng.choices(order, cum_weights=post_w, k=n)
        # the day's new posts announced at evenly spaced times among the interactions
        announce = {j * n // len(today): p for j, p in enumerate(today)}
        out: list[dict[str, object]] = []
        base = T0 + d * DAY
        for i in range(n):
            ts = base + i * DAY // n
            if i in announce:
                new, author = announce[i]
                out.append(self._event(ts, "post", author, author, new))
            actor = actors[i]
            post: str | None = None
            if rng.random() < 0.45:
                post, target = picks[i]
                kind = post_kinds[i]
            else:
                target, kind = targets[i], plain_kinds[i]
            if actor == target:
                actor = self.members[(int(actor[1:]) + 1) % len(self.members)]
            e = self._event(ts, kind, actor, target, post)
            if kind in ("comment", "reply"):
                e["text"] = " ".join(rng.choices(WORDS, k=rng.randint(3, 12)))
            if rng.random() < 0.3:
                e["communities"] = [rng.choice(COMMUNITIES)]
            out.append(e)
        return out

    def _event(
        self, ts: int, kind: str, actor: str, target: str, post: str | None
    ) -> dict[str, object]:
        self.next_id += 1
        e: dict[str, object] = {
            "id": f"soak-{self.next_id}",
            "ts": ts,
            "kind": kind,
            "actor": actor,
            "target": target,
        }
        if post is not None:
            e["post"] = post
        return e


class Feed:
    """The log: envelopes of one partition each, and the evidence records the worker's sink
    produces (one message each, to the other partitions). Offsets are given as messages reach
    the log, in the order the processor consumes them: evidence produced by one batch comes
    before the next batch's envelopes."""

    def __init__(self, envelope: int) -> None:
        self.envelope = envelope
        self.offsets = [0] * PARTITIONS
        self.evidence: list[Raw] = []
        self.memo: dict[str, int] = {}
        self.dead: Counter[str] = Counter()

    def raw(self, p: int, value: bytes, ts: float) -> Raw:
        o = self.offsets[p]
        self.offsets[p] += 1
        return Raw(p, o, value, ts)

    def envelopes(self, events: list[dict[str, object]]) -> list[tuple[int, bytes, float]]:
        """(partition, value, newest ts) of each envelope, as a producer would cut them."""
        held: dict[int, list[dict[str, object]]] = defaultdict(list)
        out: list[tuple[int, bytes, float]] = []
        for e in events:
            t = str(e["target"])
            p = self.memo.get(t)
            if p is None:
                p = self.memo[t] = partition_for(t.encode(), PARTITIONS)
            batch = held[p]
            batch.append(e)
            if len(batch) >= self.envelope:
                out.append((p, orjson.dumps(batch), float(str(batch[-1]["ts"]))))
                held[p] = []
        for p, batch in sorted(held.items()):
            if batch:
                out.append((p, orjson.dumps(batch), float(str(batch[-1]["ts"]))))
        return out

    def batch(self, messages: Sequence[tuple[int, bytes, float]]) -> list[Raw]:
        """The evidence produced since the last batch, then ``messages``, with their offsets."""
        out, self.evidence = self.evidence, []
        return out + [self.raw(*m) for m in messages]

    async def send_evidence(self, records: Sequence[tuple[int, Evidence]]) -> None:
        for p, e in records:
            self.evidence.append(self.raw(p, orjson.dumps(e.to_json()), e.at))

    async def dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        self.dead.update(d.reason for d in letters)


def family_of(key: str, prefix: str) -> str:
    rest = key[len(prefix) + 1 :]
    return rest.split(":", 1)[0].split("|", 1)[0]


async def family_bytes(
    r: aioredis.Redis, prefix: str, rng: random.Random
) -> tuple[dict[str, int], int]:
    """Bytes per key family (every key of a small family, a sample of a big one, scaled), and
    the rows of every posts:<member> (exact: the sampled bytes of a small family are noisy)."""
    keys: dict[str, list[str]] = defaultdict(list)
    async for k in r.scan_iter(match=f"{prefix}:*", count=5000):
        keys[family_of(k, prefix)].append(k)
    out: dict[str, int] = {}
    for fam, ks in keys.items():
        picked = ks if len(ks) <= SAMPLE else rng.sample(ks, SAMPLE)
        pipe = r.pipeline(transaction=False)
        for k in picked:
            pipe.memory_usage(k, samples=0)
        sizes = [int(s or 0) for s in await pipe.execute()]
        out[fam] = round(sum(sizes) * len(ks) / len(picked))
    pipe = r.pipeline(transaction=False)
    for k in keys.get("posts", []):
        pipe.zcard(k)
    return out, sum(int(n) for n in await pipe.execute())


def worker_bytes(p: Processor) -> tuple[int, int]:
    """(bytes of the dedupe ids and dr counters the worker holds, entries of its detectors)."""
    parts = p.owned.partitions.values()
    dedupe = sum(o.seen.nbytes() + o.dr.nbytes() for o in parts)
    return dedupe, sum(o.bait.size() for o in parts if o.bait is not None)


async def soak(args: argparse.Namespace, url: str) -> list[Sample]:
    rules = ScoringRules.load()
    prefix = "soak"
    store = Store.connect(url, prefix, rules)
    r = aioredis.Redis.from_url(url, decode_responses=True)
    feed = Feed(args.envelope)
    settings = WorkerSettings(dedupe_horizon_s=args.horizon_days * DAY)
    proc = Processor(
        store,
        rules,
        settings,
        feed.dead_letters,
        bait=BaitSettings().params(),
        partitions=PARTITIONS,
        evidence=feed.send_evidence,
    )
    traffic = Traffic(args.members, args.per_day, args.posts_per_day, args.seed)
    rng = random.Random(args.seed + 1)
    empty = int((await r.info("memory"))["used_memory"])
    samples = [Sample(0, 0, empty, int(await r.dbsize()), 0, 0, {}, 0, 0, 0.0)]
    events = 0
    try:
        for d in range(args.days):
            started = time.perf_counter()
            day = traffic.day(d)
            events += len(day)
            messages = feed.envelopes(day)
            for i in range(0, len(messages), BATCH):
                await proc.process(feed.batch(messages[i : i + BATCH]))
            while feed.evidence:
                await proc.process(feed.batch([]))
            seconds = time.perf_counter() - started
            dedupe, detector = worker_bytes(proc)
            families, post_rows = await family_bytes(r, prefix, rng)
            s = Sample(
                d + 1,
                events,
                int((await r.info("memory"))["used_memory"]),
                int(await r.dbsize()),
                int(await r.zcard(store.key("board", "all"))),
                post_rows,
                families,
                dedupe,
                detector,
                seconds,
            )
            samples.append(s)
            print(row(s), flush=True)
        stats = await store.stats()
        print(
            f"\nstore stats: {dict(stats)}; dead letters: {dict(feed.dead) or 'none'}; "
            f"messages: {sum(feed.offsets):,} (evidence records among them: "
            f"{proc.metrics.evidence.value(direction='sent'):,.0f} sent)"
        )
        if stats["total"] != events:  # (the evidence records are no events: not counted)
            raise SystemExit(f"the store counted {stats['total']:,} events of {events:,} sent")
    finally:
        await store.close()
        await r.aclose()
    return samples


def mb(n: float) -> str:
    return f"{n / 1e6:7.2f}"


def header() -> str:
    fams = "".join(f"{f:>9}" for f in (*SHOWN, "other"))
    return f"{'day':>4} {'events':>8} {'redis MB':>8} {'keys':>7} {'members':>7} {'post rows':>9} {'worker MB':>9} {'det':>6}{fams} {'s':>5}"


def row(s: Sample) -> str:
    other = sum(v for k, v in s.families.items() if k not in SHOWN and k != "withheld")
    fams = [s.families.get(f, 0) for f in SHOWN]
    fams[-1] += s.families.get("withheld", 0)  # throttle + withheld: one concern
    cols = "".join(f"{mb(v):>9}" for v in (*fams, other))
    return (
        f"{s.day:>4} {s.events:>8} {mb(s.used_memory):>8} {s.keys:>7} {s.members:>7} {s.post_rows:>9} {mb(s.worker):>9} "
        f"{s.detector:>6}{cols} {s.seconds:5.1f}"
    )


def ascii_plot(samples: list[Sample], horizon: int, height: int = 16) -> str:
    """Redis MB (*) and worker MB (o) against days, one column per day, the horizon marked."""
    top = max(s.used_memory for s in samples) / 1e6 * 1.05
    width = len(samples)
    grid = [[" "] * (width * 2) for _ in range(height)]
    for s in samples:
        x = s.day * 2
        for value, ch in ((s.worker / 1e6, "o"), (s.used_memory / 1e6, "*")):
            y = min(height - 1, int(value / top * (height - 1) + 0.5))
            grid[height - 1 - y][x] = ch
    for y in range(height):
        if grid[y][horizon * 2] == " ":
            grid[y][horizon * 2] = ":"
    lines = []
    for i, cells in enumerate(grid):
        label = top * (height - 1 - i) / (height - 1)
        lines.append(f"{label:6.1f} |{''.join(cells)}")
    lines.append("       +" + "-" * (width * 2))
    ticks = "".join(f"{d:<10}" for d in range(0, width, 5))
    lines.append("        " + ticks)
    lines.append("        day  (* Redis used_memory MB, o worker dedupe MB, : the horizon)")
    return "\n".join(lines)


def svg(samples: list[Sample], horizon: int) -> str:
    """A small line chart: Redis used_memory and the worker's dedupe state against days."""
    w, h, left, right, top_m, bottom = 640, 320, 56, 150, 28, 44
    pw, ph = w - left - right, h - top_m - bottom
    days = samples[-1].day
    peak = max(s.used_memory for s in samples) / 1e6
    step = next(t for t in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500) if peak / t <= 6)
    ymax = step * (int(peak / step) + 1)

    def x(d: float) -> float:
        return left + pw * d / days

    def y(v: float) -> float:
        return top_m + ph * (1 - v / ymax)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<text x="{left}" y="16" font-size="13">Memory over a {days}-day soak '
        f"({samples[-1].events // days:,} events/day, horizon {horizon} days)</text>",
    ]
    for i in range(int(ymax / step) + 1):
        v = i * step
        out.append(
            f'<line x1="{left}" y1="{y(v):.1f}" x2="{left + pw}" y2="{y(v):.1f}" stroke="#ddd"/>'
        )
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
    for d in range(0, days + 1, 5):
        out.append(f'<text x="{x(d):.1f}" y="{top_m + ph + 16}" text-anchor="middle">{d}</text>')
    out += [
        f'<line x1="{left}" y1="{top_m}" x2="{left}" y2="{top_m + ph}" stroke="black"/>',
        f'<line x1="{left}" y1="{top_m + ph}" x2="{left + pw}" y2="{top_m + ph}" stroke="black"/>',
        f'<text x="{left + pw / 2}" y="{h - 8}" text-anchor="middle">day of event time</text>',
        f'<text x="14" y="{top_m + ph / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top_m + ph / 2})">MB</text>',
        f'<line x1="{x(horizon):.1f}" y1="{top_m}" x2="{x(horizon):.1f}" y2="{top_m + ph}" '
        'stroke="#888" stroke-dasharray="5,4"/>',
        f'<text x="{x(horizon) + 4:.1f}" y="{top_m + 12}" fill="#555">dedupe horizon</text>',
    ]
    series = (
        ("Redis used_memory", "#c0392b", [s.used_memory for s in samples]),
        ("worker dedupe state", "#2471a3", [s.worker for s in samples]),
    )
    for i, (label, colour, values) in enumerate(series):
        pts = " ".join(
            f"{x(s.day):.1f},{y(v / 1e6):.1f}" for s, v in zip(samples, values, strict=True)
        )
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{pts}"/>')
        ly = top_m + 20 + 20 * i
        out.append(
            f'<line x1="{left + pw + 12}" y1="{ly}" x2="{left + pw + 32}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="2"/>'
        )
        out.append(f'<text x="{left + pw + 36}" y="{ly + 4}">{label}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def per_day(a: float, b: float, days: int) -> float:
    return (b - a) / days if days else 0.0


def plateau(samples: list[Sample], horizon: int) -> None:
    days = samples[-1].day
    late = days - horizon - 1
    if late < 2:
        print("\nplateau: needs days > horizon + 2")
        return
    first, at_h, start, last = samples[0], samples[horizon], samples[days - late], samples[-1]
    print(
        f"\nplateau (growth per day; before = days 0..{horizon}, after = days {days - late}..{days}):"
    )
    for label, field in (
        ("redis used_memory", "used_memory"),
        ("worker dedupe state", "worker"),
        ("keys", "keys"),
        ("members", "members"),
        ("post rows", "post_rows"),
    ):
        before = per_day(getattr(first, field), getattr(at_h, field), horizon)
        after = per_day(getattr(start, field), getattr(last, field), late)
        unit = " MB" if label.endswith(("memory", "state")) else ""
        scale = 1.0 if unit == "" else 1e6
        ratio = f"{after / before:.3f}" if before else "n/a"
        print(
            f"  {label:<20} before {before / scale:9.3f}{unit}/day  after {after / scale:9.3f}"
            f"{unit}/day  after/before {ratio}"
        )
    fams = sorted(set(at_h.families) | set(last.families))
    week = samples[max(days - horizon, horizon)]
    print(
        f"  per family, MB/day: before, after, the last {days - week.day} days; after/before "
        f"(levelled < {LEVELLED}, growing at its pre-horizon rate >= {LINEAR}):"
    )
    growing: list[str] = []
    for f in sorted(fams, key=lambda f: -last.families.get(f, 0)):
        before = per_day(first.families.get(f, 0), at_h.families.get(f, 0), horizon)
        after = per_day(start.families.get(f, 0), last.families.get(f, 0), late)
        recent = per_day(week.families.get(f, 0), last.families.get(f, 0), days - week.day)
        if max(abs(before), abs(after)) < 1000:
            continue  # (fixed-size keys: fences, stats, ...)
        r = after / before if before > 0 else float("inf")
        verdict = "levelled" if r < LEVELLED else "GROWING" if r >= LINEAR else "slowing"
        if verdict != "levelled":
            growing.append(f"{f} ({verdict.lower()})")
        print(
            f"    {f:<10} {before / 1e6:8.4f} {after / 1e6:8.4f} {recent / 1e6:8.4f}  "
            f"{r:6.3f}  {last.families.get(f, 0) / 1e6:7.2f} MB at day {days}  {verdict}"
        )
    print(f"  still growing after the horizon: {', '.join(growing) or 'none'}")
    # The state kept per member (bounded by the population, not by time): how much of the
    # growth after the horizon the members still arriving account for.
    held = sum(last.families.get(f, 0) for f in PER_MEMBER)
    grew = sum(last.families.get(f, 0) - start.families.get(f, 0) for f in PER_MEMBER)
    joined = last.members - start.members
    redis_after = last.used_memory - start.used_memory
    if last.members and redis_after > 0:
        print(
            f"  per-member state ({', '.join(PER_MEMBER)}): {held / last.members:.0f} B per member "
            f"at day {days}; {joined / late:.0f} new members/day after the horizon account for "
            f"{grew / late / 1e6:.3f} MB/day, {grew / redis_after:.0%} of Redis's growth then"
        )
    rows = (last.post_rows - start.post_rows) / late
    print(
        f"  posts:<member> rows: {last.post_rows:,} at day {days}, {rows:+.0f}/day after the "
        f"horizon (kept for two 30-day periods of event time: they level off after 60 days)"
    )


async def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--per-day", type=int, default=20_000)
    ap.add_argument("--horizon-days", type=int, default=7)
    ap.add_argument("--members", type=int, default=20_000)
    ap.add_argument("--posts-per-day", type=int, default=500)
    ap.add_argument("--envelope", type=int, default=300)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--svg", type=Path, default=Path("docs/soak.svg"))
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="kudos-soak-"))
    port = servers.free_port()
    redis_proc = servers.start_redis(port, workdir / "redis")
    t0 = time.perf_counter()
    print(
        f"soak: {args.days} days x {args.per_day:,} events/day, {args.members:,} members, "
        f"{args.posts_per_day} new posts/day, {PARTITIONS} partitions, envelopes of "
        f"{args.envelope}, dedupe horizon {args.horizon_days} days\n"
    )
    print(header())
    try:
        samples = await soak(args, f"redis://127.0.0.1:{port}/0")
    finally:
        servers.stop(redis_proc)
    print()
    print(ascii_plot(samples, args.horizon_days))
    plateau(samples, args.horizon_days)
    args.svg.write_text(svg(samples, args.horizon_days))
    print(f"\nwrote {args.svg}; {time.perf_counter() - t0:.0f} s in all")


if __name__ == "__main__":
    asyncio.run(main())
