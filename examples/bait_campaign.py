"""Print a comment-bait campaign and an organic thread as JSONL events, for `make demo`.

The campaign: "Tea or coffee? Comment below!" by ``coffee_lover``, then 150 comments in ten minutes
from a small bot farm, with real spam comments from the UCI YouTube Spam Collection. Next to it, an
organic thread: a news post by ``science_desk`` with 80 genuine comments (real ham comments) and as
many shares and clicks. Replayed through Kudos, the first is throttled (an alert on the page, in
`kudos alerts`, in `kudos member coffee_lover`) and the second is not.

    python examples/bait_campaign.py --data ../shared/data --start 1341705600 \\
        | kudos replay - --format jsonl --rate 20 --wait

Standard library only.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import random
import re
import sys
from pathlib import Path

_TAG = re.compile(r"<[^>]*>")


def comments(data: Path, spam: bool) -> list[str]:
    out = []
    for f in sorted((data / "youtube_spam").glob("*.csv")):
        with f.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                if (row["CLASS"] == "1") == spam:
                    text = _TAG.sub(" ", html.unescape(row["CONTENT"])).replace("\ufeff", "")
                    text = " ".join(text.split())[:2000]
                    if text:
                        out.append(text)
    return out


def events(data: Path, start: float) -> list[dict[str, object]]:
    rng = random.Random(7)
    spam, ham = comments(data, True), comments(data, False)
    out: list[dict[str, object]] = []

    def add(ts: float, kind: str, actor: str, target: str, post: str, text: str = "") -> None:
        e: dict[str, object] = {"id": f"demo-{post}-{len(out)}", "ts": round(ts, 3)}
        e.update(kind=kind, actor=actor, target=target, post=post)
        if text:
            e["text"] = text
        out.append(e)

    add(
        start,
        "post",
        "coffee_lover",
        "coffee_lover",
        "tea-or-coffee",
        "Tea or coffee? Comment below! ☕",
    )
    add(start + 2, "post", "science_desk", "science_desk", "higgs-explainer",
        "Explainer: what the new boson means for physics")  # fmt: skip
    for i in range(150):
        add(start + 30 + i * 4, "comment", f"farm_{rng.randrange(60)}", "coffee_lover",
            "tea-or-coffee", rng.choice(spam))  # fmt: skip
    for i in range(80):
        ts = start + 20 + i * 7.5
        add(ts, "comment", f"reader_{i}", "science_desk", "higgs-explainer", rng.choice(ham))
        add(ts + 1, "share", f"sharer_{i}", "science_desk", "higgs-explainer")
        add(ts + 2, "click", f"clicker_{i}", "science_desk", "higgs-explainer")
    out.sort(key=lambda e: float(str(e["ts"])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data", help="the shared data directory")
    ap.add_argument("--start", type=float, required=True, help="event time of the first event")
    args = ap.parse_args()
    for e in events(Path(args.data), args.start):
        sys.stdout.write(json.dumps(e, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
