"""Evidence about accounts that crosses partitions: "these accounts took part in a throttled post".

Events are partitioned by target, so one partition's detector sees only its authors' posts. Bot
farms, rings and pods do not stay on one partition. When a partition's detector throttles a post
it names the accounts behind it (at most :data:`MAX_ACTORS`) in an :class:`Evidence` record; the
worker produces that record into the *events topic itself*, once to every other partition, as a
single (non-envelope) message (Kafka Streams' repartition topic, here the input log: the results
are in the log, so a restart, a redelivery or ``kudos rebuild`` reads them at the same place in
each partition's order and decides the same).

A partition's detector takes the record in partition order (:meth:`Detector.flag
<leaderboard.bait.detector.Detector.flag>`): the accounts count as flagged commenters from then
on, as if they had commented on a throttled post of that partition.

Wire form (one JSON object, the only value of its message)::

    {"kudos_evidence": 1, "id": "bait:comments:5f0c…", "ts": 1341705600.5,
     "source": "p:post-7", "kind": "comments", "actors": ["a", "b", ...]}

Only a single-object message with the ``kudos_evidence`` key is evidence; HTTP ingest refuses the
key (an outside producer can never forge it there) and envelopes never carry it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from leaderboard.ids import CONTROL as _CONTROL
from leaderboard.ids import MAX_ID as _MAX_ID

#: The marker key of an evidence message (and its wire version).
MARKER = "kudos_evidence"
VERSION = 1
#: Accounts named by one record at most (a throttled post's sampled commenters or engagers).
MAX_ACTORS = 64
#: What the accounts did: took part in a throttled post (``comments``, ``engagement``; ``ring``
#: and ``pod`` when the throttle rested on lockstep, so that a receiving partition also throttles,
#: retroactively, its own posts in lockstep with it: they count as flagged), or were the first
#: accounts behind a post (``commenters``, ``engagers``: for the lockstep check across
#: partitions; every post sends at most four such records per episode: detector.BROADCAST_AT).
THROTTLE_KINDS = frozenset({"comments", "engagement", "ring", "pod"})
#: lockstep throttle kinds → the kind of post sample they are compared with (comments, engagers)
LOCKSTEP_KINDS = {"ring": "c", "pod": "e"}
SAMPLE_KINDS = frozenset({"commenters", "engagers"})
EVIDENCE_KINDS = THROTTLE_KINDS | SAMPLE_KINDS


class BadEvidence(ValueError):
    """An evidence record that does not follow the wire form (the worker dead-letters it)."""


@dataclass(frozen=True, slots=True)
class Evidence:
    """Accounts that took part in a post throttled at ``at`` (event time) on another partition."""

    id: str
    at: float
    source: str
    kind: str
    actors: tuple[str, ...]

    @classmethod
    def of(cls, source: str, at: float, kind: str, actors: tuple[str, ...]) -> Evidence:
        """The record about group ``source`` (started or throttled at ``at``): its id is fixed by
        what it says, so a redelivered or re-planned batch produces the same record, which the
        receiving partitions de-duplicate like an event."""
        actors = actors[:MAX_ACTORS]
        digest = hashlib.blake2b(
            f"{source}\x00{at!r}\x00{kind}\x00{len(actors)}".encode(), digest_size=12
        ).hexdigest()
        return cls(f"bait:{kind}:{digest}", at, source, kind, actors)

    def to_json(self) -> dict[str, Any]:
        return {
            MARKER: VERSION,
            "id": self.id,
            "ts": self.at,
            "source": self.source,
            "kind": self.kind,
            "actors": list(self.actors),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Evidence:
        """Validate a decoded evidence object (one carrying :data:`MARKER`).

        Raises:
            BadEvidence: a field missing, of the wrong type or out of bounds.
        """
        if obj.get(MARKER) != VERSION:
            raise BadEvidence(f"{MARKER!r} must be {VERSION}")
        ts = obj.get("ts")
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            raise BadEvidence("'ts' must be a finite number")
        kind = obj.get("kind")
        # (str first: a list or an object is unhashable, and must be refused, not crash the decoder)
        if not isinstance(kind, str) or kind not in EVIDENCE_KINDS:
            raise BadEvidence(f"'kind' must be one of {', '.join(sorted(EVIDENCE_KINDS))}")
        actors = obj.get("actors")
        if not isinstance(actors, list) or not 1 <= len(actors) <= MAX_ACTORS:
            raise BadEvidence(f"'actors' must be a list of 1-{MAX_ACTORS} ids")
        source = obj.get("source")
        # (a group key: "p:" or "e:" and a post id of up to 128 characters)
        if (
            not isinstance(source, str)
            or not 2 < len(source) <= _MAX_ID + 2
            or _CONTROL.search(source)
        ):
            raise BadEvidence(f"'source' must be a group key of at most {_MAX_ID + 2} characters")
        for name, value in (("id", obj.get("id")), *(("actors", a) for a in actors)):
            if (
                not isinstance(value, str)
                or not 0 < len(value) <= _MAX_ID
                or _CONTROL.search(value)
            ):
                raise BadEvidence(f"{name!r}: ids are 1-{_MAX_ID} characters, no control chars")
        return cls(obj["id"], float(ts), obj["source"], kind, tuple(dict.fromkeys(actors)))
