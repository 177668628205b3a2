"""Which destination addresses a webhook may be sent to at all (the SSRF guard).

Address policy: a destination must be a public unicast address (see :func:`refusal_reason` for what
is refused) unless an allow-list names it. The allow-list holds IP addresses and networks, never
host names, because the check applies to resolved addresses. :func:`check_url` applies it to a
URL's literal host before any I/O; ``deliver/webhook_http.py`` enforces it at connect time.
"""

from __future__ import annotations

import re
from ipaddress import (
    IPv4Address,
    IPv4Network,
    IPv6Address,
    IPv6Network,
    ip_address,
    ip_network,
)
from urllib.parse import urlsplit

from leaderboard.errors import ConfigError, DestinationRefused

#: The setting that names trusted non-public destinations; refusal messages point to it.
ALLOW_SETTING = "KUDOS_WEBHOOKS_ALLOW"

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
#: Networks that may be called although they are not public, from :func:`parse_allow_list`.
AllowList = tuple[IPNetwork, ...]

_DIGITS = re.compile(r"[0-9]+")

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
