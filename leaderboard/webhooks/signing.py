"""Standard Webhooks v1 secrets and signatures: the ``whsec_`` secrets, the signature and
headers a sender puts on each attempt, and the receiver's verification.

Signatures (https://www.standardwebhooks.com/): ``base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}"))``
sent as ``webhook-signature: v1,<sig>``; during a secret rotation every secret signs and the header
holds the signatures space-separated, so a receiver holding either secret verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence

from leaderboard.errors import ConfigError, InvalidSignature

#: Prefix of a serialized symmetric secret; the rest is the key in base64.
SECRET_PREFIX = "whsec_"
#: Key length bounds from the spec ("at least 24 bytes, 512 bits maximum").
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64
#: A receiver rejects a ``webhook-timestamp`` further than this from its clock (replay window).
TOLERANCE_S = 5 * 60

# Visible ASCII without "." : the id is the first field of the signed content, and the spec warns
# that a "." in it would let one (id, timestamp, body) pass for another.
_MSG_ID = re.compile(r"[\x21-\x2d\x2f-\x7e]{1,256}")
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
