"""Standard Webhooks v1, pure (no I/O, no clock, no randomness of its own).

Everything a webhook sender decides without touching the network lives here, so it can be tested with
tables: the ``whsec_`` secrets, the signature and headers, the receiver's verification, what a
response status means, when to try again, and which destination addresses may be called at all.
``deliver/webhook_http.py`` sends one attempt and enforces the address policy at connect time.

Signatures (https://www.standardwebhooks.com/): ``base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))``
sent as ``webhook-signature: v1,<sig>``; during a secret rotation every secret signs and the header
holds the signatures space-separated, so a receiver holding either secret verifies.

Retry schedule (the spec's example, about 3.1 days from first to last attempt)::

    attempt   1    2     3      4       5     6     7      8      9      10
    delay     0    5 s   5 min  30 min  2 h   5 h   10 h   14 h   20 h   24 h
    elapsed   0    5 s   5 min  35 min  2.6 h 7.6 h 17.6 h 31.6 h 51.6 h 75.6 h

Each delay is jittered by ±20 % so endpoints that failed together do not come back together. After
attempt 10 fails the message goes to the dead-letter store. ``Retry-After`` (on 429 and 503) can only
lengthen a delay, up to a day: a receiver can ask for time, not for a faster retry loop.
``KUDOS_WEBHOOKS_SCHEDULE_S`` replaces the schedule (:func:`parse_schedule`; tests compress it).

Endpoints are ``[[endpoint]]`` tables of the perks file (:func:`parse_endpoints`); a message body
is :func:`message_body`. ``deliver/deliverer.py`` runs the deliveries.

Address policy: a destination must be a public unicast address (see :func:`refusal_reason` for what
is refused) unless an allow-list names it. The allow-list holds IP addresses and networks, never
host names, because the check applies to resolved addresses.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from leaderboard.errors import ConfigError, DestinationRefused, InvalidSignature
from leaderboard.perks import tables

#: Prefix of a serialized symmetric secret; the rest is the key in base64.
SECRET_PREFIX = "whsec_"
#: Key length bounds from the spec ("at least 24 bytes, 512 bits maximum").
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
#: A receiver rejects a ``webhook-timestamp`` further than this from its clock (replay window).
TOLERANCE_S = 5 * 60
#: Seconds to wait before attempt 2, 3, ... (attempt 1 goes at once); see the module docstring.
SCHEDULE_S: tuple[float, ...] = (
    5,
    5 * 60,
    30 * 60,
    2 * 3600,
    5 * 3600,
    10 * 3600,
    14 * 3600,
    20 * 3600,
    24 * 3600,
)
#: Attempts per message, the first included; after the last failure it is dead-lettered.
MAX_ATTEMPTS = len(SCHEDULE_S) + 1
#: Every scheduled delay is multiplied by a factor drawn uniformly from [1 - JITTER, 1 + JITTER).
JITTER = 0.2
#: A Retry-After longer than this is cut to it, so one header cannot park a message for weeks.
MAX_RETRY_AFTER_S = 24 * 3600
#: Statuses whose Retry-After is honoured (RFC 6585 for 429, RFC 9110 for 503).
RETRY_AFTER_STATUSES = frozenset({429, 503})
#: The setting that names trusted non-public destinations; refusal messages point to it.
ALLOW_SETTING = "KUDOS_WEBHOOKS_ALLOW"

#: What one attempt means for its message: done, try again later, or stop using the endpoint.
Outcome = Literal["delivered", "retry", "disable"]
IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
#: Networks that may be called although they are not public, from :func:`parse_allow_list`.
AllowList = tuple[IPNetwork, ...]


class RandomSource(Protocol):
    """Where jitter comes from; ``random.Random`` fits, tests pass a seeded or fixed one."""

    def random(self) -> float: ...


# --- secrets and signatures -------------------------------------------------------------------

# Visible ASCII without "." : the id is the first field of the signed content, and the spec warns
# that a "." in it would let one (id, timestamp, body) pass for another.
_MSG_ID = re.compile(r"[\x21-\x2d\x2f-\x7e]{1,256}")
_DIGITS = re.compile(r"[0-9]+")
_UNIX_SECONDS = re.compile(r"[0-9]{1,12}")


def parse_secret(text: str, *, name: str = "webhook secret") -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret (padding optional, surrounding spaces ignored).

    Raises ConfigError naming ``name`` and the expected format; the message never repeats the value.
    """
    text = text.strip()
    expected = (
        f"expected {SECRET_PREFIX}<base64 of {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} random bytes>,"
        f" e.g. {SECRET_PREFIX} + base64 of `openssl rand 32`"
    )
    if not text.startswith(SECRET_PREFIX):
        raise ConfigError(f"{name} does not start with {SECRET_PREFIX!r}; {expected}")
    encoded = text[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"{name} is not valid base64 after {SECRET_PREFIX!r}; {expected}"
        ) from None
    if not MIN_SECRET_BYTES <= len(key) <= MAX_SECRET_BYTES:
        raise ConfigError(f"{name} holds a {len(key)}-byte key; {expected}")
    return key


def format_secret(key: bytes) -> str:
    """The ``whsec_`` form of a key, as receivers and :func:`parse_secret` expect it."""
    return SECRET_PREFIX + base64.b64encode(key).decode("ascii")


def _signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    if not _MSG_ID.fullmatch(msg_id):
        raise ValueError(
            f"webhook id {msg_id!r} must be 1 to 256 visible ASCII characters without '.'"
        )
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError(
            f"webhook timestamp must be whole seconds since the epoch, not {timestamp!r}"
        )
    return b"%s.%d.%s" % (msg_id.encode("ascii"), timestamp, body)


def _mac(key: bytes, content: bytes) -> bytes:
    return hmac.new(key, content, hashlib.sha256).digest()


def sign(secrets: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64>`` per secret, space-separated.

    ``secrets`` are key bytes (from :func:`parse_secret`), current first; during a rotation the old
    one stays in the list until every receiver holds the new one. Raises ConfigError when
    ``secrets`` is empty and ValueError for an id with "." or a negative or non-integer timestamp.
    """
    if not secrets:
        raise ConfigError("a webhook endpoint needs at least one secret (whsec_...) to sign with")
    content = _signed_content(msg_id, timestamp, body)
    return " ".join("v1," + base64.b64encode(_mac(key, content)).decode("ascii") for key in secrets)


def headers(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[bytes]) -> dict[str, str]:
    """Every header a webhook POST carries besides the transport's own (JSON body assumed).

    ``msg_id`` stays the same across retries (receivers de-duplicate by it); ``timestamp`` is the
    attempt's, so each retry is signed anew. Raises what :func:`sign` raises.
    """
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secrets, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[bytes],
    *,
    now: float,
    tolerance_s: float = TOLERANCE_S,
) -> None:
    """Check a received webhook as a receiver must: headers present, timestamp within
    ``tolerance_s`` of ``now`` (unix seconds), and some ``v1`` signature made by some secret.

    Header names are matched case-insensitively. Signatures are compared in constant time.
    Raises InvalidSignature saying which check failed.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id", "")
    stamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    missing = [
        name
        for name, value in (
            ("webhook-id", msg_id),
            ("webhook-timestamp", stamp),
            ("webhook-signature", signatures),
        )
        if not value
    ]
    if missing:
        raise InvalidSignature(f"missing header {', '.join(missing)}")
    if not _UNIX_SECONDS.fullmatch(stamp):
        raise InvalidSignature(f"webhook-timestamp {stamp[:40]!r} is not whole unix seconds")
    timestamp = int(stamp)
    if abs(now - timestamp) > tolerance_s:
        raise InvalidSignature(
            f"webhook-timestamp is {now - timestamp:+.0f} s from now, outside ±{tolerance_s:g} s"
        )
    try:
        content = _signed_content(msg_id, timestamp, body)
    except ValueError as exc:
        raise InvalidSignature(str(exc)) from None
    expected = [_mac(key, content) for key in secrets]
    found = False
    for entry in signatures.split():
        version, _, encoded = entry.partition(",")
        if version != "v1":
            continue  # v1a (asymmetric) and future schemes: not ours to check
        try:
            given = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            continue
        for mac in expected:
            # no early exit: the time taken does not tell which signature or secret matched
            found |= hmac.compare_digest(mac, given)
    if not found:
        raise InvalidSignature("no v1 signature matches any secret")


# --- outcomes and retries ---------------------------------------------------------------------


def classify(status: int | None) -> Outcome:
    """What a response status means. None (no response: refused, unreachable, timed out) retries.

    2xx is delivered; 410 Gone disables the endpoint (the receiver asked for no more); everything
    else retries, 3xx included, since redirects are never followed (the endpoint URL should be
    updated instead).
    """
    if status is None:
        return "retry"
    if 200 <= status <= 299:
        return "delivered"
    if status == 410:
        return "disable"
    return "retry"


def parse_retry_after(value: str, now: float) -> float | None:
    """Seconds from ``now`` (unix seconds) that a ``Retry-After`` value asks to wait, at least 0.

    Accepts delay-seconds (``120``) and an HTTP-date in any of the three forms of RFC 9110 (a date
    without a zone is taken as UTC). Anything else is None: the schedule applies as if it were absent.
    """
    value = value.strip()
    if _DIGITS.fullmatch(value):
        return float(value)  # inf for absurd lengths; the policy caps it
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def retry_after_for(status: int, value: str | None, now: float) -> float | None:
    """The Retry-After to honour for a response: parsed for 429 and 503, None otherwise."""
    if status not in RETRY_AFTER_STATUSES or value is None:
        return None
    return parse_retry_after(value, now)


def next_attempt_delay(
    attempt: int,
    retry_after_s: float | None,
    rng: RandomSource,
    *,
    schedule: Sequence[float] = SCHEDULE_S,
) -> float | None:
    """Seconds to wait before the next attempt after attempt number ``attempt`` failed.

    ``attempt`` counts from 1 (the first, immediate attempt). Returns None when that was the last
    attempt (:data:`MAX_ATTEMPTS`, or ``len(schedule) + 1``): the message goes to the dead-letter
    store. Otherwise the scheduled delay times a jitter factor in [0.8, 1.2), or ``retry_after_s``
    (capped at :data:`MAX_RETRY_AFTER_S`) when that is longer. A Retry-After still uses up an
    attempt, so the number of attempts stays bounded. ``schedule`` replaces :data:`SCHEDULE_S`
    (from :func:`parse_schedule`). Raises ValueError when ``attempt`` < 1.
    """
    if attempt < 1:
        raise ValueError(f"attempts count from 1, not {attempt}")
    if attempt > len(schedule):
        return None
    delay = schedule[attempt - 1] * (1.0 + JITTER * (2.0 * rng.random() - 1.0))
    if retry_after_s is not None and not math.isnan(retry_after_s):
        delay = max(delay, min(retry_after_s, MAX_RETRY_AFTER_S))
    return delay


# --- destinations ------------------------------------------------------------------------------

# Checked in order; the first match names the reason. Python's is_global is the last word for
# anything not listed, but its tables vary between versions and call multicast, 6to4, NAT64,
# site-local and IPv4-compatible addresses "global", hence the explicit list.
_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ip_network(net), why)
    for net, why in (
        ("0.0.0.0/8", "this network, 0.0.0.0/8: 0.0.0.0 reaches this host"),
        ("10.0.0.0/8", "private, RFC 1918"),
        ("100.64.0.0/10", "carrier-grade NAT, 100.64.0.0/10"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local, where cloud metadata services live"),
        ("172.16.0.0/12", "private, RFC 1918"),
        ("192.0.0.0/24", "IETF protocol assignments, 192.0.0.0/24"),
        ("192.0.2.0/24", "documentation, TEST-NET-1"),
        ("192.88.99.0/24", "6to4 relay anycast, 192.88.99.0/24"),
        ("192.168.0.0/16", "private, RFC 1918"),
        ("198.18.0.0/15", "benchmarking, 198.18.0.0/15"),
        ("198.51.100.0/24", "documentation, TEST-NET-2"),
        ("203.0.113.0/24", "documentation, TEST-NET-3"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved, 240.0.0.0/4 with broadcast"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b::/32", "NAT64 local use or unassigned, 64:ff9b::/32"),
        ("::/8", "reserved, ::/8 with the IPv4-compatible forms"),
        ("100::/64", "discard-only, 100::/64"),
        ("2001::/23", "IETF protocol assignments, 2001::/23 with Teredo"),
        ("2001:db8::/32", "documentation, 2001:db8::/32"),
        ("3fff::/20", "documentation, 3fff::/20"),
        ("5f00::/16", "SRv6 segment identifiers, 5f00::/16"),
        ("fc00::/7", "unique local (private), fc00::/7"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated), fec0::/10"),
        ("ff00::/8", "multicast"),
    )
)
_NAT64 = IPv6Network("64:ff9b::/96")


def _address(ip: IPAddress | str) -> IPAddress:
    return ip if isinstance(ip, IPv4Address | IPv6Address) else ip_address(ip)


def _embedded_ipv4(ip: IPv6Address) -> tuple[IPv4Address, str] | None:
    """The IPv4 address an IPv6 form carries to, and the form's name."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    return None


def refusal_reason(ip: IPAddress | str) -> str | None:
    """Why ``ip`` is not a public unicast address (e.g. ``"loopback"``), or None when it is.

    Refused: unspecified, loopback, private (RFC 1918, unique local fc00::/7), link-local
    (169.254/16 with the cloud metadata address, fe80::/10), carrier-grade NAT 100.64/10, 0.0.0.0/8,
    multicast, documentation, benchmarking and other reserved ranges, and IPv6 forms that carry an
    IPv4 address (IPv4-mapped ::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16) when that address
    is refused. Raises ValueError when ``ip`` is a string that is not an IP address.
    """
    ip = _address(ip)
    if isinstance(ip, IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None:
            inner, form = embedded
            why = refusal_reason(inner)
            return None if why is None else f"{why}, as {form} {inner}"
    for net, why in _REFUSED:
        if ip in net:
            return why
    if not ip.is_global:
        return "not globally routable"
    return None


def is_public_address(ip: IPAddress | str) -> bool:
    """True when ``ip`` is a public unicast address; see :func:`refusal_reason`."""
    return refusal_reason(ip) is None


def literal_address(host: str) -> IPAddress | None:
    """The address a URL host names literally, in any form a system resolver accepts, else None.

    Besides dotted quads and IPv6 (with or without brackets), the inet_aton forms count: 1 to 4
    parts, each decimal, octal (leading 0) or hex (0x), the last filling the remaining bytes, so
    ``2130706433``, ``0x7f.1`` and ``0177.0.0.1`` are all 127.0.0.1. A trailing "." is ignored.
    """
    host = host.strip()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if ":" in host:
        try:
            return IPv6Address(host)
        except ValueError:
            return None
    if host.endswith("."):
        host = host[:-1]
    parts = host.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    numbers: list[int] = []
    for part in parts:
        number = _inet_aton_part(part)
        if number is None:
            return None
        numbers.append(number)
    *leading, last = numbers
    if any(n > 0xFF for n in leading) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(leading):
        value |= n << (8 * (3 - i))
    return IPv4Address(value)


def _inet_aton_part(part: str) -> int | None:
    if not part.isascii():
        return None
    lowered = part.lower()
    if lowered.startswith("0x"):
        digits = lowered[2:]
        if digits == "":
            return 0
        return int(digits, 16) if re.fullmatch(r"[0-9a-f]+", digits) else None
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8) if re.fullmatch(r"[0-7]+", part) else None
    return int(part) if _DIGITS.fullmatch(part) else None


def parse_allow_list(text: str, *, name: str = ALLOW_SETTING) -> AllowList:
    """Networks from ``"127.0.0.1, 10.0.0.0/8 ::1"`` (comma and/or space separated; "" allows none).

    Host bits of a network are ignored (``10.0.0.1/8`` is 10.0.0.0/8). Raises ConfigError naming
    ``name`` for an entry that is not an IP address or network, host names included.
    """
    networks: list[IPNetwork] = []
    for entry in text.replace(",", " ").split():
        try:
            networks.append(ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            raise ConfigError(
                f"{name}: {entry!r} is not an IP address or network; expected e.g."
                " '127.0.0.1, 10.0.0.0/8, ::1' (host names cannot be allowed: the check applies"
                " to the addresses a name resolves to)"
            ) from None
    return tuple(networks)


def is_allowed(ip: IPAddress | str, allow: AllowList) -> bool:
    """True when ``ip`` is public or inside an allow-list network (an IPv4-mapped IPv6 address
    matches its IPv4 entries). Raises ValueError when ``ip`` is a string that is not an address."""
    ip = _address(ip)
    if is_public_address(ip):
        return True
    candidates: list[IPAddress] = [ip]
    if isinstance(ip, IPv6Address) and ip.ipv4_mapped is not None:
        candidates.append(ip.ipv4_mapped)
    return any(c in net for c in candidates for net in allow)


def check_destination(ip: IPAddress | str, allow: AllowList, *, host: str | None = None) -> None:
    """Raise DestinationRefused unless :func:`is_allowed`; ``host`` (the name that resolved to
    ``ip``) is only for the message. A string that is not an IP address is refused too."""
    origin = f" (from {host})" if host is not None and host != str(ip) else ""
    try:
        address = _address(ip)
    except ValueError:
        raise DestinationRefused(
            str(ip), f"destination {ip}{origin} is not an IP address; refusing to connect"
        ) from None
    if is_allowed(address, allow):
        return
    raise DestinationRefused(
        str(address),
        f"destination {address}{origin} is not a public address ({refusal_reason(address)});"
        f" add it to {ALLOW_SETTING} if you trust it",
    )


def check_url(url: str, allow: AllowList, *, name: str = "webhook URL") -> None:
    """Refuse an endpoint URL that can never be delivered to, before any I/O: a scheme other than
    http or https, no host, or a host that is literally a refused address in any form
    (:func:`literal_address`). Names are checked later, on the addresses they resolve to.

    Raises ConfigError naming ``name`` and what to fix. The message never repeats the whole URL,
    which may carry credentials or a token.
    """
    try:
        parts = urlsplit(url.strip())
        hostname = parts.hostname
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ConfigError(f"{name} is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https"):
        raise ConfigError(
            f"{name}: only http:// and https:// URLs are delivered, not {parts.scheme or 'none'!r}"
        )
    if not hostname:
        raise ConfigError(f"{name} has no host; expected e.g. https://example.com/hooks/kudos")
    literal = literal_address(hostname)
    if literal is not None:
        try:
            check_destination(literal, allow, host=hostname)
        except DestinationRefused as exc:
            raise ConfigError(f"{name}: {exc}") from None


# --- schedules, endpoints, messages -----------------------------------------------------------

#: The setting that replaces :data:`SCHEDULE_S`; errors from :func:`parse_schedule` name it.
SCHEDULE_SETTING = "KUDOS_WEBHOOKS_SCHEDULE_S"
#: More retries than this is a typo, not a policy.
MAX_SCHEDULE_ENTRIES = 100
#: What happens to a message after an attempt: delivered (done), tried again later, moved to the
#: dead-letter store (schedule exhausted), or dead-lettered with its endpoint disabled (410).
Action = Literal["done", "retry", "dead", "disable"]
#: The ``type`` of the message for a perk unlock.
UNLOCK_TYPE = "perk.unlocked"

_ENDPOINT_FIELDS = frozenset({"id", "url", "secrets", "rules"})


def parse_schedule(text: str, *, name: str = SCHEDULE_SETTING) -> tuple[float, ...]:
    """Delays before attempts 2, 3, ... from ``"5, 300, 1800"`` (seconds, comma and/or space
    separated); ``""`` is the default :data:`SCHEDULE_S`. Raises ConfigError naming ``name`` for
    an entry that is not a finite number ≥ 0, or for more than :data:`MAX_SCHEDULE_ENTRIES`."""
    entries = text.replace(",", " ").split()
    if not entries:
        return SCHEDULE_S
    if len(entries) > MAX_SCHEDULE_ENTRIES:
        raise ConfigError(f"{name}: {len(entries)} delays; at most {MAX_SCHEDULE_ENTRIES}")
    delays: list[float] = []
    for entry in entries:
        try:
            delay = float(entry)
        except ValueError:
            delay = math.nan
        if not math.isfinite(delay) or delay < 0:
            raise ConfigError(
                f"{name}: {entry!r} is not a delay in seconds; expected e.g. '5, 300, 1800'"
            )
        delays.append(delay)
    return tuple(delays)


def after_attempt(
    outcome: Outcome,
    attempt: int,
    retry_after_s: float | None,
    rng: RandomSource,
    *,
    schedule: Sequence[float] = SCHEDULE_S,
) -> tuple[Action, float | None]:
    """What happens to a message after attempt number ``attempt`` (from 1) had ``outcome``, and
    in how many seconds it is tried again (only for ``"retry"``). See :func:`next_attempt_delay`."""
    if outcome == "delivered":
        return "done", None
    if outcome == "disable":
        return "disable", None
    delay = next_attempt_delay(attempt, retry_after_s, rng, schedule=schedule)
    return ("dead", None) if delay is None else ("retry", delay)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A webhook destination from an ``[[endpoint]]`` table of the perks file."""

    id: str
    url: str = field(repr=False)  # may carry a token
    #: key bytes, current first; every one signs (rotation)
    secrets: tuple[bytes, ...] = field(repr=False)
    #: the rule ids it receives; empty: every rule
    rules: frozenset[str] = frozenset()

    def wants(self, rule_id: str) -> bool:
        return not self.rules or rule_id in self.rules


def parse_endpoints(
    data: Mapping[str, Any],
    rule_ids: Iterable[str],
    *,
    allow: AllowList = (),
    source: str = "perks file",
) -> list[Endpoint]:
    """The ``[[endpoint]]`` tables of a perks file (``data`` is the whole parsed TOML)::

        [[endpoint]]
        id = "crm"                                  # letters, digits, - and _
        url = "https://crm.example.com/hooks/kudos"
        secrets = ["whsec_..."]                     # current first; all sign during a rotation
        rules = ["top10-week"]                      # optional; missing or empty: every rule

    URLs are checked with :func:`check_url` against ``allow``, secrets with :func:`parse_secret`.
    Raises ConfigError naming ``source``, the endpoint and the field (and any rule ids that no
    ``[[rule]]`` defines); messages never repeat a URL or a secret.
    """
    known_rules = set(rule_ids)
    endpoints: list[Endpoint] = []
    for endpoint_id, where, table in tables(data, "endpoint", _ENDPOINT_FIELDS, source):
        url = table.get("url")
        if not isinstance(url, str):
            raise ConfigError(f"{where}: url must be a string, e.g. 'https://example.com/hooks'")
        check_url(url, allow, name=f"{where} url")
        texts = table.get("secrets")
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise ConfigError(
                f"{where}: secrets must be a non-empty list of strings, e.g. ['whsec_...']"
            )
        secrets = tuple(parse_secret(t, name=f"{where} secrets[{j}]") for j, t in enumerate(texts))
        rules = table.get("rules", [])
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise ConfigError(f"{where}: rules must be a list of rule ids")
        missing = sorted(set(rules) - known_rules)
        if missing:
            raise ConfigError(f"{where}: no [[rule]] has the id(s) {', '.join(map(repr, missing))}")
        endpoints.append(Endpoint(endpoint_id, url.strip(), secrets, frozenset(rules)))
    return endpoints


def message_body(event_type: str, at: float, data: Mapping[str, Any]) -> bytes:
    """A message in the Standard Webhooks payload structure: ``type``, ``timestamp`` (RFC 3339,
    UTC, when the event happened) and ``data``; compact UTF-8 JSON. It is made once per message
    and sent unchanged by every attempt."""
    stamp = datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")
    body = {"type": event_type, "timestamp": stamp.replace("+00:00", "Z"), "data": dict(data)}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
