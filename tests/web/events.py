"""The event streams the live push tests replay (tests/web/test_hub.py, test_session.py,
test_clients.py; tests/kudos/test_watch.py): a base of twelve members and a member's climb."""

from __future__ import annotations

from typing import Any

T0 = 1_600_000_000


def base_events() -> list[dict[str, Any]]:
    """m0..m11 with 12, 11, ... 3, 2, 2 shares (4 points each) from distinct actors."""
    events = []
    for m in range(12):
        for a in range(max(12 - m, 2)):
            events.append(
                {
                    "id": f"b-{m}-{a}",
                    "ts": T0 + len(events),
                    "kind": "share",
                    "actor": f"a{a}",
                    "target": f"m{m}",
                }
            )
    return events


def climb(member: str, tag: str, conversions: int, ts: int) -> list[dict[str, Any]]:
    """A like then ``conversions`` conversions: odd scores never tie the others' multiples of 4."""
    out = [{"id": f"{tag}-like", "ts": ts, "kind": "like", "actor": f"{tag}-x", "target": member}]
    for k in range(conversions):
        out.append(
            {
                "id": f"{tag}-{k}",
                "ts": ts + 1 + k,
                "kind": "conversion",
                "actor": f"{tag}-c{k}",
                "target": member,
            }
        )
    return out
