"""The two outboxes ``kudos deliver`` fans out, described once each as data.

The worker's apply script appends perk unlocks to the ``perkbox`` stream and bait alerts to the
``alerts`` stream, each in the same atomic step as the scores behind it. Both fan out the same way
(:meth:`deliver.deliverer.Deliverer.fan_out`): produce each new entry to its Kafka topic with its
id in a header, then once each (marked in a hash, read under WATCH) push it to the live channels
and, for unlocks, create the webhook jobs. An :class:`Outbox` says what differs: the stream, the
marks, the topic and header, whether the ``alerts`` channel gets it too, how an entry decodes
into an :class:`Item`, and how many acknowledged entries the stream keeps.

After acknowledging a batch the deliverer trims the stream to that many entries, counting only
entries every consumer group has acknowledged (:meth:`leaderboard.store.Store.outbox_trim`): an
entry no deliverer has fanned out stays however long the deliverers are stopped, so a cap never
loses an unlock or an alert. The unlocks themselves stay in ``perks:<member>``, untrimmed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from leaderboard.calendar import live_board
from leaderboard.metrics import Counter
from leaderboard.perks import Unlock
from leaderboard.settings import Settings
from leaderboard.store import ALERT_MARKS, ALERTS, ALERTS_MAXLEN, PERK_MARKS, PERKBOX
from web import feed

#: Kafka header naming the unlock; consumers of ``perk-unlocks`` de-duplicate by it.
UNLOCK_HEADER = "kudos-unlock-id"
#: Kafka header naming a bait alert; consumers of ``bait-alerts`` de-duplicate by it.
ALERT_HEADER = "kudos-alert-id"

#: (job id, fields) of one webhook job.
Job = tuple[str, dict[str, str]]


@dataclass(frozen=True, slots=True)
class Item:
    """One outbox entry, decoded into what goes out."""

    id: str
    #: the Kafka key, and the member whose live channel gets ``record``
    member: str
    #: the Kafka record value
    value: bytes
    #: the member channel's frame (``web.feed.member_record``)
    record: bytes
    #: webhook jobs to create with the mark
    jobs: Sequence[Job] = ()
    #: (board, frame) when the board's channel gets the item too
    board: tuple[str, bytes] | None = None


@dataclass(frozen=True, slots=True)
class Outbox:
    """One outbox stream and how its entries fan out."""

    #: the outbox stream (a ``leaderboard.store`` key family) and the hash of ids fanned out
    stream: str
    marks: str
    #: plural noun for logs ("unlocks", "bait alerts") and the singular for a bad entry
    things: str
    thing: str
    topic: str
    header: str
    #: every item also goes to the ``alerts`` channel
    to_alerts_channel: bool
    #: an entry's fields → its item; raises ValueError (or KeyError) for an entry that is not one
    decode: Callable[[Mapping[str, str]], Item]
    #: counts the items fanned out
    fanned: Counter
    #: acknowledged entries the stream keeps (the newest; unacknowledged ones are never trimmed)
    keep: int


def unlocks(settings: Settings, jobs_for: Callable[[Unlock], list[Job]], fanned: Counter) -> Outbox:
    """Perk unlocks: topic ``perk-unlocks`` (key = member), the member's and the board's
    channels, and one webhook job per endpoint that wants the rule."""

    def decode(fields: Mapping[str, str]) -> Item:
        u = Unlock.from_fields(fields)
        return Item(
            u.id,
            u.member,
            orjson.dumps(u.data()),
            feed.member_record(None, [u.event()], u.at),
            jobs_for(u),
            # the unlock also rides on its board's channel, as a frame with no changes (a
            # winners' perk on the live board's, board:week for week@2012-W27: the announcement)
            (
                u.board if u.period is None else live_board(u.board),
                feed.encode_board_record([], [u.event()], u.at, 0),
            ),
        )

    return Outbox(
        PERKBOX,
        PERK_MARKS,
        "unlocks",
        "an unlock",
        settings.broker.perks_topic,
        UNLOCK_HEADER,
        False,
        decode,
        fanned,
        # the newest for `kudos perks`; every unlock stays in perks:<member>
        settings.perks.outbox_keep,
    )


def alert_event(alert: dict[str, Any]) -> dict[str, Any]:
    """A bait alert as a live ``event`` of kind ``bait`` (on the author's and the alerts
    channel): the alert's own fields, plus a one-line ``reason`` for chat bots."""
    reasons = ", ".join(alert.get("reasons") or ())
    if alert["state"] == "ended":
        text = "throttle ended: comments calmed down"
    else:
        text = f"comments count {alert['multiplier']:g}x ({reasons})"
        back = alert.get("clawed_back")
        if back:
            # (a ring found after the fact: its earlier interactions' points were taken back)
            text += f"; {len(back)} earlier interactions' points taken back"
    return {"event": "bait", "member": alert["target"], "reason": text, **alert}


def alerts(settings: Settings, fanned: Counter) -> Outbox:
    """Bait alerts: topic ``bait-alerts`` (key = the post's author), then once each the author's
    channel and the ``alerts`` channel; no webhooks."""

    def decode(fields: Mapping[str, str]) -> Item:
        a = orjson.loads(fields["r"])
        if not isinstance(a, dict):
            raise ValueError("not a JSON object")
        at = a["ended_at"] or a["detected_at"]
        return Item(
            str(a["id"]),
            str(a["target"]),
            orjson.dumps(a),
            feed.member_record(None, [alert_event(a)], at),
        )

    return Outbox(
        ALERTS,
        ALERT_MARKS,
        "bait alerts",
        "an alert",
        settings.broker.alerts_topic,
        ALERT_HEADER,
        True,
        decode,
        fanned,
        # GET /api/alerts lists from the stream
        ALERTS_MAXLEN,
    )
