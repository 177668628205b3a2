"""Every Redis key family of Kudos, defined once: its name, shape, type, who writes it, whether
``kudos rebuild`` reproduces it from the log, how it is bounded, and the hash tag it takes on a
Redis Cluster. Nothing else in Kudos spells a key name: Python asks :meth:`Keys.key` (which refuses
an unregistered family) and the Lua scripts receive their keys in ``KEYS``.

``docs/keys.md`` is generated from this table (``python -m leaderboard.key_doc > docs/keys.md``);
a test fails when it is out of date.

Hash tags on a Redis Cluster (``KUDOS_REDIS_CLUSTER=true``): the whole namespace is one hash
tag, ``{<prefix>}`` (:func:`namespace_prefix`), so every script, transaction and pipeline of Kudos
touches one slot, as on a single Redis, and a namespace lives on one primary (with its replicas;
several namespaces spread over the primaries). A namespace kept as shards
(``KUDOS_REDIS_SHARDS``, docs/scaling.md) is one namespace per shard, ``{<prefix>|s<k>.<n>}``,
each one slot: the ``shard`` keys of the ``tag`` column live in the shard of their partition (a
member's in the shard of the partition its events are keyed to), so one apply touches one slot;
the live feed's ``channel`` and ``namespace`` keys stay in the namespace's own ``{<prefix>}``
slot (the plan puts a channel's keys in a slot of their own), and so do the ``webhooks`` keys.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Bait alerts kept in the ``alerts`` stream (``GET /api/alerts``, the deliverer's outbox), about;
#: more while the deliverers have not acknowledged them (see :meth:`Store.outbox_trim`).
ALERTS_MAXLEN = 100_000

#: Entries one outbox trim call looks at and removes at most (:meth:`Store.outbox_trim` repeats).
OUTBOX_TRIM_STEP = 1000

#: The outbox streams ``kudos deliver`` fans out: perk unlocks and bait alerts, and its group.
PERKBOX = "perkbox"

#: The hashes marking what ``kudos deliver`` fanned out: unlocks, and bait alerts.
PERK_MARKS = "perkfanout"

ALERT_MARKS = "alertfanout"

OUTBOX_GROUP = "deliver"

ALERTS = "alerts"

#: (``erased``: events about an erased member, read and not scored, leaderboard/moderation.py)
STAT_FIELDS = ("applied", "ignored", "duplicate", "invalid", "late", "future", "erased")

#: Applied events that scored without some of their communities' boards: not in the allow-list,
#: or beyond the cap on distinct communities. A part of ``applied``, so not in the sum above.
COMMUNITY_STAT_FIELDS = ("community_refused", "community_capped")

#: Attempts kept in the webhook attempts log (``wh:log``), about.
WEBHOOK_LOG_MAXLEN = 10_000


#: Who writes a family (the rest of Kudos only reads it).
APPLY = "worker apply"
WEB = "web"
DELIVER = "deliverer"
REBUILD = "kudos rebuild"
WORKER = "worker"
MODERATE = "kudos erase (and the web's moderation API)"


@dataclass(frozen=True, slots=True)
class Family:
    #: the first segment of the key after the namespace prefix
    name: str
    #: the whole key after the prefix, with ``<placeholders>``
    shape: str
    type: str
    owner: str
    #: generation-scoped (``<prefix>:g<N>:…``): ``kudos rebuild`` fills it in a new generation
    #: and switches the pointer to it (scoring state derived from the log, and the identity it
    #: was scored with); the others are serving state and stay across a rebuild
    rebuilt: bool
    #: the hash tag on a Redis Cluster: shard, channel, namespace or webhooks
    tag: str
    #: what bounds it (every family has a bound or says why it needs none)
    retention: str
    doc: str


FAMILIES: tuple[Family, ...] = (
    Family("fence", "fence", "hash", APPLY, True, "shard", "one field per partition",
           "partition → last applied offset (the exactly-once fence)"),
    Family("fencepart", "fencepart", "hash", APPLY, True, "shard", "one field per partition",
           "partition → \"<offset>:<n>\": the message after the fence is a big envelope applied "
           "in pieces, its first n events so far (written and deleted with the fence)"),
    Family("pwm", "pwm", "hash", APPLY, True, "shard", "one field per partition",
           "partition → newest event time applied in that partition"),
    Family("wm", "wm", "string", APPLY, True, "shard", "one value",
           "global watermark W (largest event time applied)"),
    Family("landmark", "landmark", "string", APPLY, True, "shard", "one value",
           "forward-decay landmark L (unix seconds, whole days)"),
    Family("board", "board:<id>", "zset", APPLY, True, "shard",
           "members with points; window boards lose what leaves the window; archived calendar "
           "periods (<unit>@<label>) are kept as archives says",
           "member → score (milli-points; decayed: stored against L)"),
    Family("bucket", "bucket:<id>|<i>", "zset", APPLY, True, "shard",
           "expired when bucket i leaves the window",
           "member → milli-points of window board <id> in bucket i"),
    Family("buckets", "buckets:<window>", "zset", APPLY, True, "shard",
           "the live buckets of one window",
           "\"<board>|<i>\" → i, the live buckets of one window (for expiry)"),
    Family("calendar", "calendar", "hash", APPLY, True, "shard", "one field per calendar unit",
           "unit (day, week, month) → \"<index>|<label>\" of the period holding W: the period the "
           "live day/week/month boards are the archive of (leaderboard/calendar.py)"),
    Family("archives", "archives:<unit>", "zset", APPLY, True, "shard",
           "KUDOS_PERIODS_KEEP_<UNIT>S periods (0: every one) × (1 + communities)",
           "archive board id (day@2012-07-04, day@2012-07-04:physics) → period index: every "
           "archived period's boards (retention drops them by index)"),
    Family("periods", "periods:<unit>", "zset", APPLY, True, "shard", "as archives",
           "label (2012-07-04, 2012-W27, 2012-07) → the end (unix seconds) of each archived "
           "period of the unit (GET /api/boards/<unit>/periods; winners' perks close by it)"),
    Family("boards", "boards", "set", APPLY, True, "shard", "base boards + admitted communities",
           "every board id that has ever had a member"),
    Family("communities", "communities", "set", APPLY, True, "shard",
           "at most the workers' max_communities",
           "the communities admitted to boards (only grows, checked by every apply that admits "
           "or refuses one for the cap; on shards the namespace's own set decides the cap for "
           "every shard, lua/admit.lua)"),
    Family("mcomm", "mcomm:<member>", "set", APPLY, True, "shard", "a subset of communities",
           "the communities the member has points in (explain reads only their boards)"),
    Family("decayed_boards", "decayed_boards", "set", APPLY, True, "shard", "one per decayed board",
           "keys of the decayed boards (rescaled when L moves)"),
    Family("rescale", "rescale", "hash", APPLY, True, "shard", "deleted when the move completes",
           "a landmark move under way: to (the new L), factor, prune, and c:<board> → ZSCAN "
           "cursor of each decayed board not copied yet"),
    Family("rescaled", "rescaled:<id>", "zset", APPLY, True, "shard",
           "swapped in when the move completes",
           "decayed board <id> rescaled to the new L"),
    Family("ids", "ids:<p>:<day>:<part>", "string", APPLY, True, "shard",
           "whole days pruned at partition watermark − dedupe horizon; a part ≤ 64 MB",
           "the 16-byte fingerprints of the ids applied that UTC day (de-duplication; APPENDed, "
           "leaderboard/fingerprint.py), in parts far below Redis's 512 MB string cap"),
    Family("idparts", "idparts:<p>", "zset", APPLY, True, "shard", "as ids",
           "\"<day>:<part>\" → day × 1000 + part: the ids strings (for loading and pruning)"),
    Family("drc", "drc:<p>:<period>:<part>", "string", APPLY, True, "shard",
           "periods behind the horizon deleted; a part ≤ 64 MB",
           "diminishing returns: one 16-byte fingerprint of \"actor␟target\" per event scored "
           "that period, up to the largest weight + 1 (APPENDed)"),
    Family("drcparts", "drcparts:<p>", "zset", APPLY, True, "shard", "as drc",
           "\"<period>:<part>\" → period × 1000 + part: the drc strings"),
    Family("drdays", "drdays:<p>", "zset", APPLY, True, "shard", "as dr",
           "legacy: the periods that have a dr hash (for pruning)"),
    Family("seen", "seen:<p>", "zset", APPLY, True, "shard",
           "legacy: written no more; read on load and drained by the same pruning",
           "event id → ts: de-duplication before fingerprints"),
    Family("dr", "dr:<p>:<day>", "hash", APPLY, True, "shard",
           "legacy: written no more; read on load, deleted with its day",
           "\"actor␟target\" → count: diminishing returns before fingerprints"),
    Family("explain", "explain:<member>", "hash", APPLY, True, "shard",
           "one field per kind and counter (bounded by the scoring rules)",
           "n:<kind>, full:<kind>, mp:<kind>, self (read also: wh:<kind>)"),
    Family("profile", "profile:<member>", "hash", APPLY, True, "shard", "two fields and their stamps",
           "name, avatar: the member's display name and avatar URL from profile events, and "
           "name@ / avatar@ → \"<ts>|<id>\" of the event that set each (the latest wins)"),
    Family("posts", "posts:<member>|<k>", "zset", APPLY, True, "shard",
           "two 30-day periods of event time per member: writing period k drops k − 2",
           "post → milli-points the member earned on it in period k = floor(ts / 30 days) "
           "(top posts: the current and the previous period)"),
    Family("bait", "bait:<t>:<p>", "hash", APPLY, True, "shard",
           "the detector's own bounds (docs/bait.md)",
           "the comment-bait detector's state of partition p, table t (g: posts, a: authors, "
           "c: commenters, m: clock, ...), written with the fence"),
    Family("throttle", "throttle:<member>", "hash", APPLY, True, "shard",
           "records decided in the two 30-day periods of W: older ones are dropped when the "
           "member's records change (reads show the same ones)",
           "group (p:<post>/t:<member>/e:<post>) → the latest throttle decision (JSON)"),
    Family("withheld", "withheld:<member>|<k>", "hash", APPLY, True, "shard",
           "two 30-day periods of the interactions' event time: writing period k drops k − 2",
           "group → milli-points the throttle withheld there in period k"),
    Family("alerts", "alerts", "stream", APPLY, True, "shard",
           "about ALERTS_MAXLEN; with a deliverer group, what it acknowledged is trimmed",
           "one entry per throttle decision (r: JSON with its id): GET /api/alerts and the "
           "deliverer's outbox (topic bait-alerts and the websocket)"),
    Family("alertfanout", "alertfanout", "hash", DELIVER, False, "shard",
           "a mark goes when the outbox trim removes its alert",
           "alert id → unix time kudos deliver fanned it out"),
    Family("stats", "stats", "hash", APPLY, True, "shard", "fixed fields",
           "applied / ignored / duplicate / invalid / late / future / erased event counts, and "
           "community_refused / community_capped"),
    Family("changes", "changes", "hash", APPLY, False, "shard", "one field per board",
           "board → change counter, bumped by every apply that touches it (live feed)"),
    Family("feedepoch", "feedepoch", "string", WEB, False, "channel", "one value",
           "the live feed's epoch; a new one means the feed history is gone"),
    Family("feed", "feed:<channel>", "hash", WEB, False, "channel", "one per followed channel",
           "seq, src (change counter at the last publish), snap (published state)"),
    Family("feedlog", "feedlog:<channel>", "stream", WEB, False, "channel", "capped (resume window)",
           "entry <seq>-1 → r: the frame record (resume replays it)"),
    Family("watched", "watched", "zset", WEB, False, "channel", "entries expire by wall-clock",
           "member → unix time until which some web process has a subscriber"),
    Family("perks", "perks:<member>", "hash", APPLY, False, "shard",
           "one field per (rule, member), ever",
           "rule id → the unlock record (JSON); set once, never revoked (on shards, a rank "
           "rule's by the worker right after the batch, stream/rank_judge.py)"),
    Family("perkseen", "perkseen", "hash", APPLY, False, "shard", "one field per rank rule",
           "rank rule → the board's change mark when the rule last looked (one namespace; on "
           "shards the worker keeps the merged mark in memory)"),
    Family("perkclosed", "perkclosed", "hash", APPLY, True, "shard", "one field per winners' rule",
           "winners' rule (at = \"close\") → end of the last period it judged (a rebuild judges "
           "again: perks:<member> keeps each unlock once)"),
    Family("perkties", "perkties", "hash", APPLY, False, "shard", "one field per rank rule",
           "rank rule → JSON {at, board, rank, tied, cap} of its latest check that left a tie out"),
    Family("perkbox", "perkbox", "stream", APPLY, False, "shard",
           "what the deliverer acknowledged beyond KUDOS_PERKS_OUTBOX_KEEP is trimmed",
           "one entry per unlock (id, rule, title, member, board, rank, score, at, payload), "
           "written with the scores that earned it (on shards, a rank rule's right after the "
           "batch); read by the consumer group deliver"),
    Family("perkfanout", "perkfanout", "hash", DELIVER, False, "shard",
           "a mark goes when the outbox trim removes its unlock",
           "unlock id → unix time kudos deliver pushed it to the websocket and made its jobs"),
    Family("wh", "wh:job:<job> | wh:due | wh:dead | wh:disabled | wh:log", "hash/zset/stream",
           DELIVER, False, "webhooks",
           "jobs deleted once delivered; dead ones wait for a replay; the log is capped",
           "webhook jobs (<endpoint>:<unlock id>), their due and dead-letter sets, disabled "
           "endpoints and the attempts log"),
    Family("tombstones", "tombstones", "set", MODERATE, False, "shard", "one per member ever erased",
           "the erased members, as SHA-1 of a salt and the id (leaderboard/moderation.py): "
           "kudos erase adds one; every plan leaves their events unscored, a rebuild too"),
    Family("erasures", "erasures", "string", MODERATE, False, "shard", "one value",
           "erasures so far: an apply planned before the latest is refused (the worker reloads "
           "the tombstones)"),
    Family("hidden", "hidden", "hash", MODERATE, False, "shard", "at most MAX_HIDDEN members",
           "member → JSON {by, at, reason}: members kudos hide took off every board (their points "
           "stay and accrue; every read leaves them out, lua/hidden.lua) until kudos unhide"),
    Family("modlog", "modlog", "stream", MODERATE, False, "namespace", "about MODLOG_MAXLEN",
           "the moderation audit log: action (erase), subject (the tombstone: the log keeps no "
           "erased id), by, at, reason (kudos moderation, GET /api/moderation)"),
    Family("meta", "meta", "hash", WORKER, True, "namespace", "fixed fields",
           "scoring_version: the scoring identity the generation was built with (applies must "
           "match it)"),
    Family("shards", "shards", "string", WORKER, False, "namespace", "one value",
           "how many shards the namespace is kept as (KUDOS_REDIS_SHARDS; <prefix>|s<k> each), "
           "claimed by its first worker on shards; absent: one piece (every process with "
           "another count refuses it)"),
    Family("live", "live", "string", REBUILD, False, "namespace", "one value",
           "the live generation N (0 when absent): the pointer every reader follows, set by "
           "the kudos rebuild switch; applies planned from an older generation are refused "
           "(the worker reloads)"),
    Family("generation", "generation", "string", REBUILD, False, "namespace",
           "deleted by the next kudos rebuild",
           "before generations: a counter the rebuild switch bumped (no longer read: an old "
           "namespace's keys are generation 0 whatever it says)"),
    Family("rebuilding", "rebuilding", "string", REBUILD, False, "namespace",
           "expires if the rebuild dies", "the lock of a running kudos rebuild"),
    Family("generations", "generations", "string", REBUILD, False, "namespace", "one value",
           "the last generation number a kudos rebuild took (INCR under the lock): every rebuild "
           "builds into a number never used before, so two can never share one"),
)  # fmt: skip

BY_NAME: dict[str, Family] = {f.name: f for f in FAMILIES}
#: Families ``kudos rebuild`` replaces with the rebuilt generation's: they live under
#: ``<prefix>:g<N>:`` for generation N > 0 (under ``<prefix>:`` itself for generation 0, the
#: layout from before generations, so an existing namespace is generation 0 as it stands).
REBUILT_FAMILIES: tuple[str, ...] = tuple(f.name for f in FAMILIES if f.rebuilt)
_SCOPED = frozenset(REBUILT_FAMILIES)


class UnknownKeyFamily(KeyError):
    """A key of a family this registry does not define (a typo, or a family added elsewhere)."""


def namespace_prefix(prefix: str, cluster: bool) -> str:
    """The prefix every key of namespace ``prefix`` starts with: on a Redis Cluster the prefix
    in braces, a hash tag, so that the whole namespace is one slot (scripts may touch any key of
    the namespace, transactions and pipelines stay on one node)."""
    return "{" + prefix + "}" if cluster else prefix


def generation_prefix(prefix: str, generation: int) -> str:
    """The prefix of generation ``generation``'s keys (the namespace's own for generation 0)."""
    return f"{prefix}:g{generation}" if generation else prefix


class Keys:
    """Key names of one namespace (``<prefix>:<family>:…``) as of one rebuild generation: the
    rebuilt families are ``<prefix>:g<N>:<family>:…`` (N > 0), serving state ``<prefix>:…``."""

    __slots__ = ("generation", "prefix", "scoped")

    def __init__(self, prefix: str, generation: int = 0) -> None:
        self.prefix = prefix
        self.generation = generation
        #: the prefix of this generation's rebuilt families
        self.scoped = generation_prefix(prefix, generation)

    def key(self, family: str, *parts: object) -> str:
        if family not in BY_NAME:
            raise UnknownKeyFamily(family)
        base = self.scoped if family in _SCOPED else self.prefix
        if not parts:
            return f"{base}:{family}"
        return ":".join((base, family, *map(str, parts)))

    def generation_pattern(self) -> str:
        """A SCAN pattern of this generation's keys (N > 0; generation 0 has no segment of its
        own: :meth:`is_unscoped` picks its keys out of :meth:`pattern`)."""
        if not self.generation:
            raise ValueError("generation 0 keys have no pattern of their own")
        return glob_escape(self.scoped) + ":*"

    def is_unscoped(self, key: str) -> bool:
        """Whether ``key`` (of this namespace) is a generation-0 key of a rebuilt family."""
        rest = key[len(self.prefix) + 1 :]
        return rest.partition(":")[0] in _SCOPED

    def pattern(self) -> str:
        """A SCAN/KEYS pattern of every key of this namespace (its prefix glob-escaped)."""
        return glob_escape(self.prefix) + ":*"


def glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
