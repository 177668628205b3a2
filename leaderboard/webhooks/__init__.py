"""Standard Webhooks v1, pure (no I/O, no clock, no randomness of its own).

Everything a webhook sender decides without touching the network lives here, so it can be tested with
tables: the ``whsec_`` secrets, the signature and headers, the receiver's verification, what a
response status means, when to try again, and which destination addresses may be called at all.
``deliver/webhook_http.py`` sends one attempt and enforces the address policy at connect time;
``deliver/deliverer.py`` runs the deliveries.

- :mod:`leaderboard.webhooks.signing`: secrets, signatures, headers and their verification
- :mod:`leaderboard.webhooks.schedule`: what a response means, the retry schedule, Retry-After
- :mod:`leaderboard.webhooks.addresses`: the destination address policy and allow-list (SSRF guard)
- :mod:`leaderboard.webhooks.endpoints`: ``[[endpoint]]`` tables of the perks file, message bodies

Every public name of those modules is importable from here.
"""

from leaderboard.webhooks.addresses import (
    ALLOW_SETTING,
    AllowList,
    IPAddress,
    IPNetwork,
    check_destination,
    check_url,
    is_allowed,
    is_public_address,
    literal_address,
    parse_allow_list,
    refusal_reason,
)
from leaderboard.webhooks.endpoints import (
    UNLOCK_TYPE,
    Endpoint,
    message_body,
    parse_endpoints,
)
from leaderboard.webhooks.schedule import (
    JITTER,
    MAX_ATTEMPTS,
    MAX_RETRY_AFTER_S,
    MAX_SCHEDULE_ENTRIES,
    RETRY_AFTER_STATUSES,
    SCHEDULE_S,
    SCHEDULE_SETTING,
    Action,
    Outcome,
    RandomSource,
    after_attempt,
    classify,
    next_attempt_delay,
    parse_retry_after,
    parse_schedule,
    retry_after_for,
)
from leaderboard.webhooks.signing import (
    MAX_SECRET_BYTES,
    MIN_SECRET_BYTES,
    SECRET_PREFIX,
    TOLERANCE_S,
    format_secret,
    headers,
    parse_secret,
    sign,
    verify,
)

__all__ = [
    "ALLOW_SETTING",
    "JITTER",
    "MAX_ATTEMPTS",
    "MAX_RETRY_AFTER_S",
    "MAX_SCHEDULE_ENTRIES",
    "MAX_SECRET_BYTES",
    "MIN_SECRET_BYTES",
    "RETRY_AFTER_STATUSES",
    "SCHEDULE_S",
    "SCHEDULE_SETTING",
    "SECRET_PREFIX",
    "TOLERANCE_S",
    "UNLOCK_TYPE",
    "Action",
    "AllowList",
    "Endpoint",
    "IPAddress",
    "IPNetwork",
    "Outcome",
    "RandomSource",
    "after_attempt",
    "check_destination",
    "check_url",
    "classify",
    "format_secret",
    "headers",
    "is_allowed",
    "is_public_address",
    "literal_address",
    "message_body",
    "next_attempt_delay",
    "parse_allow_list",
    "parse_endpoints",
    "parse_retry_after",
    "parse_schedule",
    "parse_secret",
    "refusal_reason",
    "retry_after_for",
    "sign",
    "verify",
]
