"""The one exception tree of Kudos.

::

    KudosError
    ├── ConfigError(ValueError)          a setting or scoring.toml value is wrong; names the setting
    ├── InvalidEvent(ValueError)         an event breaks the schema; ``reason`` is a short code
    ├── UnknownBoard(LookupError)        a board id that is not a valid board name
    ├── StoreConflict                    another writer moved a partition fence or the decay landmark
    ├── StackError(RuntimeError)         the embedded stack cannot start or stop (port taken, binary missing)
    ├── InvalidSignature(ValueError)     a received webhook fails Standard Webhooks verification
    ├── DestinationRefused(ConnectionError)  a webhook destination is not a public address (SSRF guard)
    ├── BrokerUnavailable(ConnectionError)   the broker did not acknowledge produced messages in time
    ├── InvalidBody(ValueError)          an HTTP ingest body is neither JSON nor NDJSON
    ├── ScoringVersionMismatch           the namespace is scored under other rules than this process's
    ├── ClientError(ValueError)          a websocket client's message breaks the protocol; ``code`` is sent
    ├── LiveError                        the live client (kudos.client) cannot go on; ``code`` says why
    │   └── WatchError                   ``kudos watch`` cannot go on (unreachable, refused, no channel)
    └── ModerationError(ValueError)      an erase's reason or actor cannot be recorded

Every error a caller can act on is one of these; anything else escaping a public function is a bug.
Private control-flow exceptions (a retry signal inside one module) stay in their module.
"""

from __future__ import annotations


class KudosError(Exception):
    """Root of every error Kudos raises on purpose."""


class ConfigError(KudosError, ValueError):
    """A setting or a scoring.toml value is invalid. The message names the setting and the fix."""


class InvalidEvent(KudosError, ValueError):
    """An event breaks the schema. ``reason`` is a stable short code, ``detail`` is for humans."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class UnknownBoard(KudosError, LookupError):
    """A board id that cannot exist (bad base board or bad community tag)."""


class PageTooDeep(KudosError, ValueError):
    """A page of a board kept as shards beyond the merged depth (each shard would send every
    row before it): page by score from the export instead."""


class StoreConflict(KudosError):
    """A batch was planned against state that another writer has since changed; re-plan and retry."""


class StackError(KudosError, RuntimeError):
    """The embedded stack cannot start or stop; the message says what to do next."""


class InvalidSignature(KudosError, ValueError):
    """A received webhook fails verification: a header is missing, its timestamp is outside the
    tolerance, or no ``v1`` signature matches any secret. A receiver answers it with 400 or 401."""


class DestinationRefused(KudosError, ConnectionError):
    """A webhook destination resolves to (or is) an address that is not public and not allowed.

    A ``ConnectionError`` (so an ``OSError``) because it is raised inside the HTTP client while it
    resolves and connects; nothing has been sent when it is raised. ``address`` is the refused IP.
    """

    def __init__(self, address: str, message: str) -> None:
        super().__init__(message)
        self.address = address


class BrokerUnavailable(KudosError, ConnectionError):
    """The broker could not be reached, or did not acknowledge every produced message in time.

    Part of what was sent may still have been written: callers retry the whole batch, which is
    safe because events carry ids and a re-sent id is applied once.
    """


class InvalidBody(KudosError, ValueError):
    """A ``POST /api/events`` body that cannot be read at all (not JSON, not NDJSON, empty).
    Answered with 400; a readable body with bad events is answered per event instead."""


class ScoringVersionMismatch(KudosError):
    """The namespace is scored under another ``scoring.toml`` version than this process's rules
    (``kudos rebuild`` switched it, or the file changed without a rebuild)."""

    def __init__(self, namespace_version: str, ours: str) -> None:
        super().__init__(
            f"the boards are on scoring {namespace_version!r} but this process has {ours!r} "
            f"(scoring.toml version + bait settings): run it with the scoring.toml and [bait] "
            f"settings of {namespace_version!r}, or rescore the log with `kudos rebuild` under "
            f"the new ones (nobody's score changes silently)"
        )
        self.namespace_version = namespace_version
        self.ours = ours


class ShardCountMismatch(KudosError):
    """The namespace is kept as another number of shards than ``KUDOS_REDIS_SHARDS`` says."""

    def __init__(self, namespace_shards: int, ours: int) -> None:
        super().__init__(
            f"the namespace is kept as {namespace_shards} shard(s) but KUDOS_REDIS_SHARDS="
            f"{ours}: set KUDOS_REDIS_SHARDS={namespace_shards} for every process, or use "
            "another KUDOS_REDIS_PREFIX (the count is fixed for a namespace's life: its "
            "partitions' state lives in their shards)"
        )
        self.namespace_shards = namespace_shards
        self.ours = ours


class ClientError(KudosError, ValueError):
    """A websocket client's message breaks the protocol (docs/protocol.md). The server answers
    it with an ``error`` frame carrying ``code``, never with a crash or a close."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class LiveError(KudosError):
    """The live client (:mod:`kudos.client`) cannot go on, or refused a subscription before
    sending it. ``code``: ``unreachable`` (no connection yet), ``refused`` (closed with 1008: a
    token or an origin), ``auth`` (the server needs a token and none was given), ``protocol``
    (not a Kudos web process), ``bad_channel``, or the server's error code for a channel it
    refused (``unknown_board``, ...)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class WatchError(LiveError):
    """``kudos watch`` cannot go on (server unreachable, token refused, no valid channel); the
    message says what to do next."""


class ModerationError(KudosError, ValueError):
    """An erase (or another moderation action) whose reason or actor the audit log cannot record:
    too long, control or invisible characters, a name outside ``[A-Za-z0-9._@-]{1,64}``."""
