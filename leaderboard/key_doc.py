"""Generate docs/keys.md from the key registry (leaderboard/store/keys.py, the one source).

    python -m leaderboard.key_doc > docs/keys.md

A test fails when the file is out of date.
"""

from __future__ import annotations

import sys

from leaderboard.store.keys import FAMILIES

HEADER = """# Redis keys

Generated from `leaderboard/store/keys.py` by `python -m leaderboard.key_doc`; do not edit by
hand. Every key is `<prefix>:<shape>` (`KUDOS_REDIS_PREFIX`); the rebuilt families of generation N > 0
are `<prefix>:g<N>:<shape>` (the `live` key says which generation is live). *Rebuilt*: `kudos rebuild` fills it
from the log and switches it in; the others are serving state that a rebuild keeps. *Tag*: the hash
tag the key takes on a Redis Cluster (see `docs/scaling.md`).

No scoring key has a TTL: scoring state is pruned by event time, never by wall-clock, so a replay of
old data behaves exactly like live traffic (the live feed's `watched` marks expire by wall-clock).

"""


def render() -> str:
    """The key table of ``docs/keys.md``."""
    rows = [
        "| key | type | written by | rebuilt | tag | bound | what |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in FAMILIES:
        shape = ", ".join(f"`{s}`" for s in f.shape.split(" | "))
        cells = (shape, f.type, f.owner, "yes" if f.rebuilt else "", f.tag, f.retention, f.doc)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
