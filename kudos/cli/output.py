"""Text forms shared by several commands (``member``'s explanation, ``alerts``' lines, the
sparkline); it holds no commands."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TextIO

from kudos.cli.common import utc

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


def alert_line(a: dict[str, Any]) -> str:
    """One throttle decision (an alert or an explain throttle line) as a line of text."""
    what = f"post {a['post']}" if a.get("post") else "comments without a post"
    since = f"since {utc(a['detected_at'], '%Y-%m-%d %H:%M:%S')}" if a.get("detected_at") else ""
    state = a["state"]
    if a.get("ended_at") is not None:
        state = f"ended {utc(a['ended_at'], '%Y-%m-%d %H:%M:%S')}"
    reasons = ", ".join(a.get("reasons") or ()) or "-"
    return f"{what}: x{a['multiplier']:g} {since} ({state}); reasons: {reasons}"


def print_explanation(body: dict[str, Any], out: TextIO) -> None:
    """The human form of an explain body (``Explanation.to_json()``)."""
    as_of = body["as_of"]
    when = ""
    if as_of is not None:
        when = f"; as of event time {as_of:.0f} = {utc(as_of, '%Y-%m-%d %H:%M:%S')} UTC"
    # (a display name is the member's own text: printed as is after the id, never in its place)
    named = f"  “{body['name']}”" if body.get("name") else ""
    print(f"{body['member']}{named}  (scoring {body['scoring_version']}{when})", file=out)
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
            f"  hourly ({per} h a block): {utc(hourly[0]['hour'])} {line} "
            f"{utc(hourly[-1]['hour'] + 3600)} UTC",
            file=out,
        )
