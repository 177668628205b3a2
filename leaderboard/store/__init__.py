"""The one package that talks to Redis: key names, the Lua scripts, state reads and board reads.

Every key family is defined once, in :mod:`leaderboard.store.keys` (``docs/keys.md`` is generated
from it); every Lua script (``lua/``) receives its keys in ``KEYS``. The rest is split by concern,
each a mixin of :class:`Store`, the one facade the other packages use:

- :mod:`~leaderboard.store.apply`: load a partition's state, build and send the apply;
- :mod:`~leaderboard.store.boards`: board pages, standings, export, the board list, counters;
- :mod:`~leaderboard.store.members`: a member's explain view and unlocks;
- :mod:`~leaderboard.store.feed`: the live feed's shared state;
- :mod:`~leaderboard.store.outbox`: the perk and alert outboxes ``kudos deliver`` reads;
- :mod:`~leaderboard.store.webhook_jobs`: webhook delivery jobs;
- :mod:`~leaderboard.store.rebuild`: ``kudos rebuild``'s generations, lock, switch and drop.

No scoring key has a TTL: scoring state is pruned by event time, never by wall-clock, so a replay of
old data behaves exactly like live traffic. (The live feed is serving state about connected clients:
its ``watched`` entries expire by wall-clock.) Webhook state is bounded by the unlocks, which happen
once per (rule, member): delivered jobs are deleted, dead ones wait for a replay, the log is capped.
"""

from __future__ import annotations

from leaderboard.store.apply import ApplyMixin, alert_id
from leaderboard.store.boards import BoardsMixin, Standing
from leaderboard.store.feed import NO_FRAME, BoardPoll, FeedFrame, FeedMixin, MemberPoll
from leaderboard.store.keys import (
    ALERT_MARKS,
    ALERTS,
    ALERTS_MAXLEN,
    COMMUNITY_STAT_FIELDS,
    OUTBOX_GROUP,
    PERK_MARKS,
    PERKBOX,
    REBUILT_FAMILIES,
    STAT_FIELDS,
    WEBHOOK_LOG_MAXLEN,
)
from leaderboard.store.members import MembersMixin
from leaderboard.store.moderation import ModerationMixin
from leaderboard.store.outbox import OutboxMixin
from leaderboard.store.rebuild import RebuildMixin
from leaderboard.store.webhook_jobs import ClaimedJob, WebhookJobsMixin

__all__ = [
    "ALERTS",
    "ALERTS_MAXLEN",
    "ALERT_MARKS",
    "COMMUNITY_STAT_FIELDS",
    "NO_FRAME",
    "OUTBOX_GROUP",
    "PERKBOX",
    "PERK_MARKS",
    "REBUILT_FAMILIES",
    "STAT_FIELDS",
    "WEBHOOK_LOG_MAXLEN",
    "BoardPoll",
    "ClaimedJob",
    "FeedFrame",
    "MemberPoll",
    "Standing",
    "Store",
    "alert_id",
]


class Store(
    ApplyMixin,
    BoardsMixin,
    MembersMixin,
    FeedMixin,
    OutboxMixin,
    WebhookJobsMixin,
    ModerationMixin,
    RebuildMixin,
):
    """Kudos state in Redis. Create with :meth:`connect`; close with :meth:`close`."""
