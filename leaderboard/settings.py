"""Typed settings, read once from the environment and an optional TOML file, then passed explicitly.

Every field of every section can be set as ``KUDOS_<SECTION>_<NAME>`` (which wins) or in the config
file (``KUDOS_CONFIG``, default ``kudos.toml`` in the working directory when it exists) as
``[section] name = value``. ``KUDOS_HOME`` is the one section-less variable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints
from urllib.parse import parse_qs, urlsplit

from leaderboard import redact
from leaderboard.bait import BaitParams
from leaderboard.bait.keyed import MIN_KEY_CHARS, PUBLIC_KEY
from leaderboard.calendar import DEFAULT_GRACE_S, DEFAULT_IDLE_S, DEFAULT_KEEP
from leaderboard.errors import ConfigError
from leaderboard.events import valid_community
from leaderboard.explain import POSTS_PERIOD_S
from leaderboard.perks import DEFAULT_MAX_TIES, MAX_RANK
from leaderboard.scoring import ScoringRules
from leaderboard.webhooks import parse_allow_list, parse_schedule


@dataclass(frozen=True, kw_only=True)
class RedisSettings:
    #: Redis (or Valkey) holding the boards: redis://host:port/db (rediss:// for TLS).
    url: str = "redis://127.0.0.1:6379/0"
    #: Every key Kudos writes starts with this; two deployments can share one Redis.
    prefix: str = "kudos"
    #: A Redis Cluster (``KUDOS_REDIS_URL`` names any of its nodes): the client follows the
    #: slot map and its fail-overs, and every key of the namespace takes the hash tag
    #: ``{<prefix>}``, so each apply, read and transaction touches one slot (docs/scaling.md).
    cluster: bool = False
    #: Keep the namespace as this many shards, each a namespace of its own (``<prefix>|s<k>``,
    #: on a cluster one slot each) holding the partitions p with p mod shards = k, so that its
    #: writes spread over primaries. Fixed for the namespace's life (a worker with another
    #: count refuses to start). At most the topic's partition count; every event keyed by its
    #: target. Reads merge the shards' slices; a page deeper than 10,000 rows is refused
    #: (docs/scaling.md, "One namespace over many slots").
    shards: int = 1


@dataclass(frozen=True, kw_only=True)
class BrokerSettings:
    #: Kafka bootstrap server: kafka://host:port.
    url: str = "kafka://127.0.0.1:9092"
    #: The topic of interactions (one event or a JSON array envelope per message; key = target).
    topic: str = "interactions"
    #: Invalid and late events, with the reason in headers (kudos-error, kudos-detail, ...).
    dlq_topic: str = "interactions.dlq"
    #: Every perk unlock, keyed by member, JSON value, header ``kudos-unlock-id`` (``kudos deliver``).
    perks_topic: str = "perk-unlocks"
    #: Every comment-bait throttle started or ended, keyed by the post's author, JSON value, header
    #: ``kudos-alert-id`` (``kudos deliver``).
    alerts_topic: str = "bait-alerts"
    #: Partition count used when Kudos creates the topic. Changing it on a live topic moves targets
    #: between partitions, which breaks per-partition de-duplication (as in Kafka Streams).
    partitions: int = 4
    #: Replicas of each topic Kudos creates. 1 suits one broker (the embedded stack, the compose
    #: file); a production cluster wants 3, so a broker's loss loses no interaction.
    replication_factor: int = 1
    #: Idempotent producer; Tansu (the embedded broker) does not answer InitProducerId, so it is off
    #: by default and the compose stack (Apache Kafka) turns it on.
    idempotent_producer: bool = False


@dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    #: Faust application id, also the consumer group.
    app_id: str = "kudos"
    #: Messages taken from the stream per batch.
    batch_messages: int = 2000
    #: How long to wait to fill a batch (seconds): latency against per-batch overhead.
    batch_within_s: float = 0.02
    #: Upper bound of events per Redis apply call; keeps each Lua call short so reads stay fast.
    max_events_per_apply: int = 5000
    #: Upper bound of board rows one apply call expires (window buckets leaving W) or rescales (a
    #: decay landmark move) before its batch: a long jump of W runs in several short calls, so
    #: Redis keeps serving reads in between (they see exact boards). A batch that writes more
    #: board rows than this may expire as many as it writes (its call holds Redis that long
    #: anyway). 0 = no bound (one call).
    max_maintenance_rows_per_call: int = 3000
    #: How far behind its partition's newest event time an event may arrive and still be scored;
    #: ids are de-duplicated for this long (event time). Older events are dead-lettered as late.
    dedupe_horizon_s: int = 7 * 86400
    #: How far an event's ts may run ahead of its Kafka record's timestamp (seconds); further is
    #: dead-lettered as ``future`` (and refused by HTTP ingest). The record timestamp is in the
    #: log, so replays and rebuilds decide the same way; no wall clock is read.
    max_future_s: float = 300.0
    #: Comma-separated communities that get boards (``7d:physics``, five per community); an
    #: event's other communities get none: it scores on the base boards and its listed
    #: communities, counted as ``community_refused`` in ``kudos stats``. Empty: any community.
    allowed_communities: str = ""
    #: Most distinct communities one namespace gives boards, first come first served (the set
    #: lives in Redis); an event's communities beyond it get none, as above, counted as
    #: ``community_capped``. Which ones fill the last places depends on the order applies reach
    #: Redis (README "Interpretations and known limits"). 0 = no cap.
    max_communities: int = 10_000
    #: Move the forward-decay landmark after this much event time (2^(t/half-life) must not overflow).
    decay_rebase_after_s: int = 120 * 86400
    #: Consumer-group timeouts: how long a rebalance waits for members to rejoin (a batch never
    #: takes near this long).
    rebalance_timeout_s: float = 5.0
    #: A killed worker's partitions move to the others after this long without heartbeats. Tansu
    #: 0.6 also holds a new member's JoinGroup for half of it (measured: 10 s → 5 s, 6 s → 3 s),
    #: so a shorter one makes start-up and fail-over faster (heartbeats go every quarter of it).
    session_timeout_s: float = 10.0
    #: Faust's own HTTP server (off: the web process serves Kudos's API). 0 = off.
    faust_web_port: int = 0
    #: Longest a consumer fetch waits for data (Faust's fixed 1500 ms made the embedded broker
    #: hold every live event up to that long).
    fetch_max_wait_ms: int = 100
    #: How often (seconds) the worker runs Python's full cycle collection. Between them it
    #: collects what each apply left and freezes the survivors, so its long-lived state is not
    #: walked at every full collection (stream/heap.py). 0 = Python's own schedule.
    gc_full_every_s: float = 300.0
    #: Address of the worker's Prometheus endpoint (GET /metrics); 0.0.0.0 to be scraped from
    #: other hosts or containers.
    metrics_host: str = "127.0.0.1"
    #: Port of the worker's GET /metrics (events, batches, apply latency, consumer lag,
    #: watermark; docs/metrics.md). 0 = off. Each worker process on one host needs its own.
    metrics_port: int = 0

    def community_allow_list(self) -> frozenset[str] | None:
        """The communities of ``allowed_communities``; None: any."""
        names = frozenset(c.strip() for c in self.allowed_communities.split(",") if c.strip())
        return names or None


@dataclass(frozen=True, kw_only=True)
class WebSettings:
    #: Address the web process (read API, page, websocket) listens on.
    host: str = "127.0.0.1"
    #: Its port: HTTP and the websocket at /ws share it.
    port: int = 8000
    #: How often the live feed looks for changed boards (seconds; frames are coalesced per tick).
    tick_s: float = 0.05
    #: When set, websocket clients must send {"op": "auth", "token": ...} first.
    token: str = ""
    #: Comma-separated browser origins allowed to open the websocket and POST /api/events besides
    #: the page's own host ("*" allows any; others get 403). Clients that send no Origin (bots,
    #: services) are always allowed.
    allowed_origins: str = ""
    #: Largest client message (bytes); bigger closes the connection with 1009.
    max_message_bytes: int = 4096
    #: Channels one connection may follow at once.
    max_subscriptions: int = 50
    #: Client messages per second (burst: twice this); faster closes with 1008.
    max_messages_per_s: float = 20.0
    #: Websocket connections per web process; more are refused with HTTP 503.
    max_connections: int = 20000
    #: Websocket connections from one client address at once; more are refused with HTTP 429.
    max_connections_per_address: int = 100
    #: Proxies whose X-Forwarded-For names the client (IP addresses or networks, comma separated,
    #: e.g. the compose network's); empty: none, a connection's address is its peer's. Behind a
    #: proxy that is not listed every client has the proxy's address (and shares its cap).
    trusted_proxies: str = ""
    #: A connection that has not authenticated (when ``token`` is set) is closed after this long.
    auth_timeout_s: float = 5.0
    #: A connection that follows no channel and sends nothing for this long is closed (1001).
    idle_timeout_s: float = 300.0
    #: Comma-separated Host header values the web process answers besides localhost, 127.0.0.1,
    #: [::1] and its own listen address (an entry without a port matches any port; "*": any).
    #: Empty: only those when it listens on loopback, any host otherwise. Others get 421 (stops
    #: DNS rebinding against a loopback stack).
    allowed_hosts: str = ""
    #: Unsent bytes queued for one client before it is treated as slow (frames are conflated).
    slow_client_bytes: int = 1 << 20
    #: A client slow for this long is closed with 1013 (it can reconnect and resume).
    slow_client_timeout_s: float = 10.0
    #: Frames each board channel keeps for resuming clients (member channels keep a tenth).
    feed_retention: int = 2000
    #: Largest POST /api/events body (bytes); bigger is refused with 413 before it is read.
    ingest_max_bytes: int = 1 << 20
    #: When set, POST /api/events needs the header "Authorization: Bearer <this token>" (401
    #: otherwise). Empty: anyone who can reach the port may post events (the compose stack
    #: refuses to start so).
    ingest_token: str = ""
    #: Who may erase members over HTTP (POST /api/members/{member}/erase): comma-separated
    #: ``name:token`` pairs, a token of at least 16 characters each; the audit log records the
    #: name. Empty: the moderation endpoints answer 403 (``kudos erase`` still works).
    admin_tokens: str = ""
    #: How long POST /api/events waits for the broker to acknowledge a request's events before it
    #: answers 503 (at most 8 s: a request, its upload included, must be answered within 10 s).
    ingest_timeout_s: float = 5.0


@dataclass(frozen=True, kw_only=True)
class ScoringSettings:
    #: A scoring.toml; empty means the packaged default.
    path: str = ""


@dataclass(frozen=True, kw_only=True)
class PeriodsSettings:
    """Calendar boards (``day``/``week``/``month`` and their archives ``day@YYYY-MM-DD``, ...):
    how many archived periods of each unit are kept, counted back from the period of W (the
    live one included). Older archives are dropped as W moves, and late points for them are not
    kept. Every worker and ``kudos rebuild`` of a namespace must use the same values. 0 keeps
    every period. The memory cost: README "Calendar boards"."""

    #: Archived days kept (``day@YYYY-MM-DD``), the live day included; 0: every one.
    keep_days: int = DEFAULT_KEEP[0]
    #: Archived ISO weeks kept (``week@YYYY-Www``), the live week included; 0: every one.
    keep_weeks: int = DEFAULT_KEEP[1]
    #: Archived months kept (``month@YYYY-MM``), the live month included; 0: every one.
    keep_months: int = DEFAULT_KEEP[2]
    #: Seconds of event time after a period's end during which late events still count before
    #: its winners' perks (rules with ``at = "close"``) are judged.
    grace_s: int = DEFAULT_GRACE_S
    #: A period's winners are judged once every partition of the topic is past the period's
    #: end plus the grace (one catching up keeps its late events; one that has not carried an
    #: event yet counts as behind), or at the latest once W is this many seconds further (a
    #: partition with no new events holds it no longer).
    idle_s: int = DEFAULT_IDLE_S

    def apply(self, rules: ScoringRules) -> ScoringRules:
        """``rules`` keeping these many periods, closing them so."""
        return rules.keeping(
            self.keep_days, self.keep_weeks, self.keep_months, self.grace_s, self.idle_s
        )


@dataclass(frozen=True, kw_only=True)
class PerksSettings:
    #: A TOML file of perk rules ([[rule]]) and webhook endpoints ([[endpoint]]); empty: none.
    path: str = ""
    #: Members a tie at place N may add to one check of a ``rank <= N`` rule (0–1000): a tie that
    #: would pass N + this unlocks none of its members then (README "Perks and webhooks"). A
    #: rule's ``max_ties`` overrides it.
    max_ties: int = DEFAULT_MAX_TIES
    #: Unlocks kept in the ``perkbox`` outbox once every deliverer acknowledged them (the newest,
    #: for ``kudos perks``); entries not acknowledged yet are never trimmed.
    outbox_keep: int = 10_000


@dataclass(frozen=True, kw_only=True)
class WebhooksSettings:
    """``kudos deliver``: webhook endpoints are ``[[endpoint]]`` tables of the perks file."""

    #: Non-public destinations that may be called anyway: IP addresses or networks, comma
    #: separated (e.g. "127.0.0.1"); everything else must resolve to public addresses.
    allow: str = ""
    #: One attempt's limit: connect, send, response (Standard Webhooks recommends 15 to 30 s).
    timeout_s: float = 15.0
    #: Seconds before attempts 2, 3, ... (comma separated, jittered ±20 %); empty: the default
    #: schedule of leaderboard/webhooks/schedule.py (10 attempts over about 3 days).
    schedule_s: str = ""
    #: A claimed job goes back to due this long after its deliverer stopped (killed, hung);
    #: longer than ``timeout_s``. Also how long an outbox entry's consumer may stay silent.
    lease_s: float = 60.0
    #: Attempts in flight at once in one deliverer.
    concurrency: int = 16
    #: Address of the deliverer's Prometheus endpoint (GET /metrics).
    metrics_host: str = "127.0.0.1"
    #: Port of the deliverer's GET /metrics (webhook attempts and failures; docs/metrics.md).
    #: 0 = off.
    metrics_port: int = 0


@dataclass(frozen=True, kw_only=True)
class BaitSettings:
    """The comment-bait throttle (docs/bait.md). Changing a number changes scores from then on,
    like a new scoring.toml: replay or rebuild to apply it to the past."""

    #: The comment-bait throttle; false scores every comment in full (exact replays).
    enabled: bool = True
    #: Weighted evidence a post needs to be throttled (the sum of docs/bait.md's signals).
    threshold: float = 1.6
    #: Comments a post needs (this episode) before it can be throttled.
    min_comments: int = 12
    #: A throttle ends once the post's weighted comment rate falls below this many per hour.
    calm_per_hour: float = 3.0
    #: Multiplier of a throttled post's comment points at the threshold ...
    multiplier_max: float = 0.25
    #: ... falling to this for strong evidence (halved per recent throttle of the author).
    multiplier_min: float = 0.1
    #: Secret key of the detector's hashes of account ids (32 characters or more, e.g.
    #: `openssl rand -hex 32`). Empty: a public default, which lets anyone aim collisions
    #: (a sock passing for an author's friend, a few likes counting as hundreds of fans): set
    #: it where adversaries post. Every worker and `kudos rebuild` need the same key; a new
    #: key is a new scoring identity (rebuild to change it).
    key: str = ""

    def params(self) -> BaitParams | None:
        """The detector's parameters, or None when the throttle is off."""
        if not self.enabled:
            return None
        return BaitParams(
            threshold=self.threshold,
            min_comments=self.min_comments,
            calm_per_hour=self.calm_per_hour,
            multiplier_max=self.multiplier_max,
            multiplier_min=self.multiplier_min,
            key=self.key.encode(),
        )


@dataclass(frozen=True, kw_only=True)
class LogSettings:
    """Logging of ``kudos web``, ``kudos worker`` and ``kudos deliver``."""

    #: One JSON object per line (time, level, logger, message, and any extra fields) instead of
    #: text, for log collectors.
    json: bool = False
    #: Lowest level logged: debug, info, warning, error or critical. Empty: info (the worker:
    #: its --loglevel, warning by default).
    level: str = ""


@dataclass(frozen=True, kw_only=True)
class Settings:
    home: Path = Path(".kudos")
    redis: RedisSettings = field(default_factory=RedisSettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    web: WebSettings = field(default_factory=WebSettings)
    scoring: ScoringSettings = field(default_factory=ScoringSettings)
    bait: BaitSettings = field(default_factory=BaitSettings)
    perks: PerksSettings = field(default_factory=PerksSettings)
    periods: PeriodsSettings = field(default_factory=PeriodsSettings)
    webhooks: WebhooksSettings = field(default_factory=WebhooksSettings)
    log: LogSettings = field(default_factory=LogSettings)

    @property
    def broker_host_port(self) -> tuple[str, int]:
        return host_port(self.broker.url, "KUDOS_BROKER_URL", 9092)

    @property
    def redis_host_port(self) -> tuple[str, int]:
        return host_port(self.redis.url, "KUDOS_REDIS_URL", 6379)

    def secrets(self) -> tuple[str, ...]:
        """Every secret these settings hold (tokens, passwords in URLs, whole URLs that carry
        one), for :func:`leaderboard.redact.text` to hide in messages that quote them."""
        found = [self.web.token, self.web.ingest_token, self.bait.key]
        found += [t for _, t in admin_tokens(self.web.admin_tokens)]
        for u in (self.redis.url, self.broker.url):
            with contextlib.suppress(ValueError):
                password = urlsplit(u).password
                if password:
                    found += [u, password]
        return tuple(sorted({f for f in found if f}, key=len, reverse=True))


#: Shortest admin token (KUDOS_WEB_ADMIN_TOKENS): 16 characters of a random token are ~96 bits.
MIN_ADMIN_TOKEN = 16
_ADMIN_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


def admin_tokens(raw: str) -> tuple[tuple[str, str], ...]:
    """``KUDOS_WEB_ADMIN_TOKENS`` as (name, token) pairs.

    Raises:
        ConfigError: a pair without a name or token, a name outside ``[A-Za-z0-9._@-]{1,64}``,
            a token shorter than :data:`MIN_ADMIN_TOKEN`, or a name or token given twice.
    """
    out: list[tuple[str, str]] = []
    for i, item in enumerate(p.strip() for p in raw.split(",")):
        if not item:
            continue
        name, sep, token = item.partition(":")
        where = f"KUDOS_WEB_ADMIN_TOKENS: entry {i + 1}"
        if not sep or not _ADMIN_NAME.fullmatch(name):
            raise ConfigError(
                f"{where} is not name:token with a name of 1-64 letters, digits or ._@- "
                "(the audit log records it)"
            )
        if len(token) < MIN_ADMIN_TOKEN or any(c.isspace() or c == "," for c in token):
            raise ConfigError(
                f"{where} ({name}): the token must be at least {MIN_ADMIN_TOKEN} characters "
                "without spaces (e.g. `python -c 'import secrets; print(secrets.token_urlsafe())'`)"
            )
        out.append((name, token))
    if len({n for n, _ in out}) != len(out) or len({t for _, t in out}) != len(out):
        raise ConfigError("KUDOS_WEB_ADMIN_TOKENS: a name or a token is given twice")
    return tuple(out)


def host_port(url: str, name: str, default_port: int) -> tuple[str, int]:
    """Split ``scheme://host:port/...`` into (host, port), or raise ConfigError naming ``name``."""
    try:
        parts = urlsplit(url)
        port = parts.port or default_port
    except ValueError as exc:
        raise ConfigError(
            f"{name}={redact.setting_value(name, url)} is not a valid URL: {exc}"
        ) from exc
    if not parts.hostname:
        raise ConfigError(
            f"{name}={redact.setting_value(name, url)} has no host; expected e.g. "
            f"scheme://127.0.0.1:{default_port}"
        )
    return parts.hostname, port


_SECTIONS = (
    "redis", "broker", "worker", "web", "scoring", "bait", "perks", "periods", "webhooks", "log",
)  # fmt: skip


#: Values of ``KUDOS_LOG_LEVEL`` ("" = the process's default).
#: Shards a namespace may be kept as (KUDOS_REDIS_SHARDS): one per partition at most, and as
#: many as a 256-partition topic (docs/scaling.md) may want.
MAX_SHARDS = 256
LOG_LEVELS = ("", "debug", "info", "warning", "error", "critical")


def _coerce(raw: Any, typ: Any, name: str, key: str = "") -> Any:
    """``raw`` as ``typ``; ``name`` is how errors call the setting, ``key`` its variable (which
    decides whether the value may be shown: see :mod:`leaderboard.redact`)."""
    try:
        if typ is bool:
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError("expected true or false")
        if typ is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError("expected an integer")
            return int(raw)
        if typ is float:
            value = float(raw)
            if not math.isfinite(value):
                raise ValueError("expected a finite number")
            return value
        if typ is str:
            return str(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}={redact.setting_value(key or name, raw)}: {exc}") from exc
    raise ConfigError(f"{name}: unsupported setting type {typ!r}")  # pragma: no cover


def _section(
    cls: type[Any], name: str, file_values: Mapping[str, Any], env: Mapping[str, str]
) -> Any:
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(file_values) - known
    if unknown:
        raise ConfigError(
            f"unknown setting(s) in [{name}]: {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}"
        )
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        env_name = f"KUDOS_{name.upper()}_{f.name.upper()}"
        if env_name in env:
            values[f.name] = _coerce(env[env_name], hints[f.name], env_name)
        elif f.name in file_values:
            values[f.name] = _coerce(
                file_values[f.name], hints[f.name], f"[{name}] {f.name}", env_name
            )
    obj = cls(**values)
    _validate(obj, name)
    return obj


def _validate(obj: Any, name: str) -> None:
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
            raise ConfigError(
                f"KUDOS_{name.upper()}_{f.name.upper()}={value}: must not be negative"
            )
    if isinstance(obj, BrokerSettings) and obj.partitions < 1:
        raise ConfigError("KUDOS_BROKER_PARTITIONS must be at least 1")
    if isinstance(obj, WorkerSettings):
        if obj.max_maintenance_rows_per_call < 0:
            raise ConfigError("KUDOS_WORKER_MAX_MAINTENANCE_ROWS_PER_CALL must be ≥ 0")
        if obj.batch_messages < 1 or obj.max_events_per_apply < 1:
            raise ConfigError(
                "KUDOS_WORKER_BATCH_MESSAGES and KUDOS_WORKER_MAX_EVENTS_PER_APPLY must be ≥ 1"
            )
        if not 86400 <= obj.dedupe_horizon_s <= POSTS_PERIOD_S:
            # (at most one top-posts period: a late event must never land in a dropped one)
            raise ConfigError(
                "KUDOS_WORKER_DEDUPE_HORIZON_S must be between 86400 (24 h of event time) and "
                f"{POSTS_PERIOD_S} (30 days)"
            )
        bad = sorted(c for c in obj.community_allow_list() or () if not valid_community(c))
        if bad:
            raise ConfigError(
                f"KUDOS_WORKER_ALLOWED_COMMUNITIES: {bad[0][:70]!r} is not a community "
                "(1-64 of A-Z a-z 0-9 _ . -, comma separated)"
            )
    if isinstance(obj, WorkerSettings | WebhooksSettings) and obj.metrics_port > 65535:
        raise ConfigError(
            f"KUDOS_{name.upper()}_METRICS_PORT={obj.metrics_port}: not a TCP port (0 = off)"
        )
    if isinstance(obj, LogSettings) and obj.level.lower() not in LOG_LEVELS:
        raise ConfigError(
            f"KUDOS_LOG_LEVEL={obj.level!r}: expected one of {', '.join(LOG_LEVELS[1:])} "
            "(or empty for the default)"
        )
    if isinstance(obj, WebSettings):
        if not 0 <= obj.port <= 65535:
            raise ConfigError(f"KUDOS_WEB_PORT={obj.port}: not a TCP port")
        if not 0 < obj.tick_s <= 1:
            raise ConfigError(f"KUDOS_WEB_TICK_S={obj.tick_s}: must be in (0, 1] seconds")
        if obj.max_message_bytes < 256:
            raise ConfigError("KUDOS_WEB_MAX_MESSAGE_BYTES must be at least 256")
        if obj.max_subscriptions < 1 or obj.max_messages_per_s <= 0 or obj.feed_retention < 10:
            raise ConfigError(
                "KUDOS_WEB_MAX_SUBSCRIPTIONS and KUDOS_WEB_MAX_MESSAGES_PER_S must be positive, "
                "KUDOS_WEB_FEED_RETENTION at least 10"
            )
        parse_allow_list(obj.trusted_proxies, name="KUDOS_WEB_TRUSTED_PROXIES")
        if obj.ingest_max_bytes < 1024:
            raise ConfigError(
                f"KUDOS_WEB_INGEST_MAX_BYTES={obj.ingest_max_bytes}: must be at least 1024"
            )
        tokens = admin_tokens(obj.admin_tokens)
        if len({t for _, t in tokens} & {obj.token, obj.ingest_token}) > 0:
            raise ConfigError(
                "KUDOS_WEB_ADMIN_TOKENS: an admin token may not be KUDOS_WEB_TOKEN or "
                "KUDOS_WEB_INGEST_TOKEN (readers and producers must not be able to erase)"
            )
        if not 0 < obj.ingest_timeout_s <= 8:
            raise ConfigError(
                f"KUDOS_WEB_INGEST_TIMEOUT_S={obj.ingest_timeout_s:g}: must be in (0, 8] seconds "
                "(the web server drops a request that is not answered within 10 s)"
            )
    if isinstance(obj, RedisSettings) and obj.cluster:
        if not obj.prefix:
            raise ConfigError(
                "KUDOS_REDIS_PREFIX is empty: with KUDOS_REDIS_CLUSTER=true the prefix is the "
                "namespace's hash tag, and an empty one would spread it over every slot"
            )
        if "{" in obj.prefix or "}" in obj.prefix:
            raise ConfigError(
                f"KUDOS_REDIS_PREFIX={obj.prefix!r}: no braces with KUDOS_REDIS_CLUSTER=true "
                "(Kudos makes the prefix the namespace's hash tag itself)"
            )
        try:
            parts = urlsplit(obj.url)
            scheme, path, dbs = parts.scheme, parts.path, parse_qs(parts.query).get("db", [])
        except ValueError:
            scheme, path, dbs = "redis", "", []  # (a malformed URL gets its own error)
        if scheme not in ("redis", "rediss"):
            raise ConfigError(
                f"KUDOS_REDIS_URL={redact.setting_value('KUDOS_REDIS_URL', obj.url)}: a Redis "
                "Cluster is reached over TCP: redis://host:port or rediss://host:port"
            )
        if path.strip("/") not in ("", "0") or any(d != "0" for d in dbs):
            raise ConfigError(
                f"KUDOS_REDIS_URL={redact.setting_value('KUDOS_REDIS_URL', obj.url)}: a "
                "Redis Cluster has database 0 only; end the URL with /0 or no path"
            )
    if isinstance(obj, RedisSettings) and not 1 <= obj.shards <= MAX_SHARDS:
        raise ConfigError(f"KUDOS_REDIS_SHARDS={obj.shards}: must be between 1 and {MAX_SHARDS}")
    if isinstance(obj, BrokerSettings) and obj.replication_factor < 1:
        raise ConfigError("KUDOS_BROKER_REPLICATION_FACTOR must be at least 1")
    if isinstance(obj, BaitSettings):
        if obj.threshold <= 0 or obj.min_comments < 1 or obj.calm_per_hour <= 0:
            raise ConfigError(
                "KUDOS_BAIT_THRESHOLD, KUDOS_BAIT_MIN_COMMENTS and KUDOS_BAIT_CALM_PER_HOUR "
                "must be positive"
            )
        if not 0 < obj.multiplier_min <= obj.multiplier_max <= 1:
            raise ConfigError(
                f"KUDOS_BAIT_MULTIPLIER_MIN={obj.multiplier_min:g} and "
                f"KUDOS_BAIT_MULTIPLIER_MAX={obj.multiplier_max:g}: need 0 < min <= max <= 1"
            )
        if obj.key and len(obj.key) < MIN_KEY_CHARS:
            raise ConfigError(
                f"KUDOS_BAIT_KEY is {len(obj.key)} characters: use {MIN_KEY_CHARS} or more (e.g. "
                "openssl rand -hex 32), or leave it empty for the public default"
            )
        if obj.key.encode() == PUBLIC_KEY:
            raise ConfigError(
                "KUDOS_BAIT_KEY is the public default key, which anyone can read in the source: "
                "use a secret (e.g. openssl rand -hex 32)"
            )
    if isinstance(obj, PerksSettings) and obj.max_ties > MAX_RANK:
        raise ConfigError(f"KUDOS_PERKS_MAX_TIES={obj.max_ties}: must be at most {MAX_RANK}")
    if isinstance(obj, WebhooksSettings):
        parse_allow_list(obj.allow)
        parse_schedule(obj.schedule_s)
        if obj.timeout_s <= 0 or obj.concurrency < 1:
            raise ConfigError(
                "KUDOS_WEBHOOKS_TIMEOUT_S and KUDOS_WEBHOOKS_CONCURRENCY must be positive"
            )
        if obj.lease_s <= obj.timeout_s:
            raise ConfigError(
                f"KUDOS_WEBHOOKS_LEASE_S={obj.lease_s:g} must be longer than "
                f"KUDOS_WEBHOOKS_TIMEOUT_S={obj.timeout_s:g}, or a slow attempt would be sent twice"
            )


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (default: ``os.environ``) and the optional config file.

    Raises:
        ConfigError: a value does not parse or is out of range; the message names the variable.
    """
    env = os.environ if env is None else env
    config_path = env.get("KUDOS_CONFIG")
    data: dict[str, Any] = {}
    path = Path(config_path) if config_path else Path("kudos.toml")
    if config_path and not path.is_file():
        raise ConfigError(f"KUDOS_CONFIG={config_path!r}: no such file")
    if path.is_file():
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    unknown = set(data) - set(_SECTIONS)
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(sorted(unknown))}")
    known = {"KUDOS_HOME", "KUDOS_CONFIG"} | {
        f"KUDOS_{name.upper()}_{f.name.upper()}"
        for name in _SECTIONS
        for f in dataclasses.fields(get_type_hints(Settings)[name])
    }
    typos = sorted(k for k in env if k.startswith("KUDOS_") and k not in known)
    if typos:
        raise ConfigError(
            f"unknown setting(s) {', '.join(typos)}; see docs/configuration.md for the known ones"
        )
    hints = get_type_hints(Settings)
    sections = {name: _section(hints[name], name, data.get(name, {}), env) for name in _SECTIONS}
    home = Path(env.get("KUDOS_HOME", ".kudos"))
    shards, partitions = sections["redis"].shards, sections["broker"].partitions
    if shards > partitions:
        raise ConfigError(
            f"KUDOS_REDIS_SHARDS={shards} is more than KUDOS_BROKER_PARTITIONS={partitions}: a "
            "shard holds whole partitions, so the extra shards would stay empty"
        )
    return Settings(home=home, **sections)


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that reproduce ``settings`` in a child process."""
    out = {"KUDOS_HOME": str(settings.home)}
    for name in _SECTIONS:
        section = getattr(settings, name)
        for f in dataclasses.fields(section):
            value = getattr(section, f.name)
            out[f"KUDOS_{name.upper()}_{f.name.upper()}"] = (
                str(value).lower() if isinstance(value, bool) else str(value)
            )
    return out


__all__ = [
    "BaitSettings",
    "BrokerSettings",
    "LogSettings",
    "PeriodsSettings",
    "PerksSettings",
    "RedisSettings",
    "ScoringSettings",
    "Settings",
    "WebSettings",
    "WebhooksSettings",
    "WorkerSettings",
    "load_settings",
    "settings_env",
]
