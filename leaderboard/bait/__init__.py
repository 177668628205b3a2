"""The comment-bait detector (pure, no I/O): which comments on which posts count in full.

Bait ("tea or coffee? comment below", "type YES if you agree") farms cheap comments. The detector
watches the comment stream of every post (of every target, for comments that name no post) in event
time and throttles a post once several kinds of evidence agree. It *demotes*: from the comment at
which it decides, every comment/reply on the post scores ``multiplier`` × its points, and the rest is
recorded as withheld (explain view); counts stay visible and nothing is deleted.

Where it runs. Events are partitioned by target, so a post's events, its author's and the author's
other posts all reach one partition, in one order. The worker feeds every new (de-duplicated) event
of a partition to that partition's :class:`Detector` while it plans a batch; the detector's state is
written in the same atomic apply as the scores and the partition fence, and loaded with the fence, so
a crash, a rebalance or a replay makes the same decisions (Kafka Streams' state-store pattern).
Decisions depend only on the partition's events and their order, never on batch boundaries or the
wall clock: expiry is applied lazily by event time when an entry is next touched.

The package, by concept:

- :mod:`leaderboard.bait.patterns`: the wording the detector reads (Facebook's engagement-bait
  categories, the features of a comment's text, text normalisation);
- :mod:`leaderboard.bait.state`: the records a partition's detector keeps (per post, author and
  commenter) and their stored form;
- :mod:`leaderboard.bait.evidence`: the record that carries "these accounts took part in a
  throttled post" to the other partitions, through the events topic;
- :mod:`leaderboard.bait.detector`: the :class:`Detector` itself, its tunables
  (:class:`BaitParams`) and its decisions (:class:`Decision`); the signals, the decision rule, the
  multiplier and the end of a throttle are described there.

Importers use this package (``from leaderboard.bait import Detector``); it re-exports the
submodules' public names.
"""

from __future__ import annotations

from leaderboard.bait.detector import (
    COMMENT_KINDS,
    DETECTOR_VERSION,
    ENGAGEMENT_KINDS,
    LN2,
    POD_KINDS,
    SWEEP_EVERY_S,
    BaitParams,
    Clawback,
    Decision,
    Detector,
    identity,
)
from leaderboard.bait.evidence import MARKER, BadEvidence, Evidence
from leaderboard.bait.patterns import BAIT_PATTERNS, comment_features, normalise, phrasing, words
from leaderboard.bait.state import (
    FULL,
    TABLES,
    Author,
    Commenter,
    Group,
    Shadow,
    group_key,
    pod_key,
)

__all__ = [
    "BAIT_PATTERNS",
    "COMMENT_KINDS",
    "DETECTOR_VERSION",
    "ENGAGEMENT_KINDS",
    "FULL",
    "LN2",
    "MARKER",
    "POD_KINDS",
    "SWEEP_EVERY_S",
    "TABLES",
    "Author",
    "BadEvidence",
    "BaitParams",
    "Clawback",
    "Commenter",
    "Decision",
    "Detector",
    "Evidence",
    "Group",
    "Shadow",
    "comment_features",
    "group_key",
    "identity",
    "normalise",
    "phrasing",
    "pod_key",
    "words",
]
