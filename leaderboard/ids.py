"""What an id may be, defined once: events (``leaderboard.events``) and the detector's evidence
records (``leaderboard.bait.evidence``) check their ids by the same rule.

1-``MAX_ID`` characters and no control characters (nor U+2028/U+2029, which break lines in
JavaScript and in logs).
"""

from __future__ import annotations

import re

MAX_ID = 128
CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def id_problem(value: str) -> str | None:
    """What keeps ``value`` from being an id ("must be 1-128 characters", ...), or None."""
    if not 1 <= len(value) <= MAX_ID:
        return f"must be 1-{MAX_ID} characters, got {len(value)}"
    if CONTROL.search(value):
        return "has a control character"
    return None
