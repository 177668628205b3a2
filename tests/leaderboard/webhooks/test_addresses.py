"""The destination address policy and allow-list, the SSRF guard
(leaderboard/webhooks/addresses.py)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_network

import pytest

from leaderboard.errors import ConfigError, DestinationRefused
from leaderboard.webhooks import addresses as wh


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.0.0.2", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("0.0.0.0", "this network"),
        ("0.1.2.3", "this network"),
        ("224.0.0.1", "multicast"),
        ("255.255.255.255", "reserved"),
        ("240.0.0.1", "reserved"),
        ("192.0.2.7", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.7", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("192.0.0.9", "IETF"),
        ("::", "unspecified"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback, as IPv4-mapped 127.0.0.1"),
        ("::ffff:10.0.0.1", "private, RFC 1918, as IPv4-mapped"),
        ("::ffff:169.254.169.254", "link-local"),
        ("::127.0.0.1", "reserved, ::/8"),  # deprecated IPv4-compatible form
        ("::ffff:0:7f00:1", "reserved, ::/8"),  # IPv4-translated (SIIT) form
        ("64:ff9b::a00:1", "as NAT64 10.0.0.1"),
        ("64:ff9b:1::1", "NAT64 local use"),
        ("2002:7f00:1::", "as 6to4 127.0.0.1"),
        ("2002:a9fe:a9fe::1", "link-local"),
        ("fc00::1", "unique local"),
        ("fd12:3456::1", "unique local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("2001:db8::1", "documentation"),
        ("3fff::1", "documentation"),
        ("2001::1", "IETF"),  # Teredo
        ("100::1", "discard-only"),
        ("5f00::1", "SRv6"),
    ],
)
def test_non_public_addresses_are_refused(address: str, why: str) -> None:
    assert not wh.is_public_address(address)
    reason = wh.refusal_reason(address)
    assert reason is not None and why in reason
    with pytest.raises(DestinationRefused) as err:
        wh.check_destination(address, ())
    assert err.value.address == str(wh._address(address))
    assert "not a public address" in str(err.value)
    assert wh.ALLOW_SETTING in str(err.value)


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700::1111",
        "2001:4860:4860::8888",
        "::ffff:93.184.216.34",  # IPv4-mapped public
        "64:ff9b::5db8:d822",  # NAT64 of a public address
        "2002:5db8:d822::1",  # 6to4 of a public address
        "100.63.255.255",  # just below carrier-grade NAT
        "100.128.0.0",  # just above it
        "172.32.0.1",  # just above 172.16/12
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert wh.is_public_address(address)
    assert wh.refusal_reason(address) is None
    wh.check_destination(address, ())


def test_address_objects_are_accepted_and_junk_is_a_value_error() -> None:
    assert not wh.is_public_address(IPv4Address("127.0.0.1"))
    assert wh.is_public_address(IPv6Address("2606:4700::1111"))
    with pytest.raises(ValueError):
        wh.is_public_address("localhost")
    with pytest.raises(DestinationRefused, match="not an IP address"):
        wh.check_destination("localhost", ())


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),  # decimal
        ("0x7f000001", "127.0.0.1"),  # hex
        ("0x7f.1", "127.0.0.1"),  # hex, two parts
        ("0X7F.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),  # octal
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("10.0.0.1.", "10.0.0.1"),  # trailing dot
        ("167772161", "10.0.0.1"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),
        ("0", "0.0.0.0"),
        ("[::1]", "::1"),
        ("::1", "::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("example.com", None),
        ("127.0.0.1.nip.io", None),
        ("1.2.3.4.5", None),
        ("256.0.0.1", None),
        ("4294967296", None),
        ("08.0.0.1", None),  # 8 is not octal: a name to a resolver
        ("0x1g", None),
        ("", None),
        ("[not-ipv6]", None),
    ],
)
def test_literal_address_reads_every_ipv4_spelling(host: str, address: str | None) -> None:
    found = wh.literal_address(host)
    assert (None if found is None else str(found)) == address


def test_allow_list_parses_addresses_and_networks() -> None:
    assert wh.parse_allow_list("127.0.0.1, 10.0.0.0/8") == (
        ip_network("127.0.0.1/32"),
        ip_network("10.0.0.0/8"),
    )
    assert wh.parse_allow_list("  ") == ()
    assert wh.parse_allow_list("::1 [fd00::1],10.1.2.3/8") == (
        ip_network("::1/128"),
        ip_network("fd00::1/128"),
        ip_network("10.0.0.0/8"),
    )


@pytest.mark.parametrize("text", ["localhost", "127.0.0.1, example.com", "10.0.0.0/33", "*"])
def test_allow_list_refuses_names_and_junk(text: str) -> None:
    with pytest.raises(ConfigError, match=r"KUDOS_WEBHOOKS_ALLOW: .* is not an IP address"):
        wh.parse_allow_list(text)


def test_allow_list_lets_exactly_what_it_names_through() -> None:
    allow = wh.parse_allow_list("127.0.0.1, 10.0.0.0/8")
    assert wh.is_allowed("127.0.0.1", allow)
    assert wh.is_allowed("::ffff:127.0.0.1", allow)
    assert wh.is_allowed("10.200.0.1", allow)
    assert wh.is_allowed("93.184.216.34", allow)  # public needs no entry
    assert not wh.is_allowed("127.0.0.2", allow)
    assert not wh.is_allowed("::1", allow)
    assert not wh.is_allowed("169.254.169.254", allow)
    wh.check_destination("127.0.0.1", allow, host="localhost")
    with pytest.raises(DestinationRefused, match=r"127\.0\.0\.2 \(from l2\.test\)"):
        wh.check_destination("127.0.0.2", allow, host="l2.test")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2/",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/",
        "http://2130706433/",
        "http://0x7f.1/",
        "http://0177.0.0.1:80/",
        "http://[::ffff:127.0.0.1]/",
        "https://100.64.0.1/",
        "http://0/",
    ],
)
def test_check_url_refuses_literal_non_public_hosts(url: str) -> None:
    with pytest.raises(ConfigError, match=f"not a public address.*{wh.ALLOW_SETTING}"):
        wh.check_url(url, ())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("gopher://example.com/", "only http:// and https://"),
        ("example.com/hook", "only http:// and https://"),
        ("http:///hook", "has no host"),
        ("http://[::1/", "not a valid URL"),
        ("http://example.com:99999/", "not a valid URL"),
    ],
)
def test_check_url_refuses_what_can_never_be_delivered(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        wh.check_url(url, ())


def test_check_url_never_repeats_credentials() -> None:
    with pytest.raises(ConfigError) as err:
        wh.check_url("ftp://user:s3cret@example.com/?token=t0ken", ())
    assert "s3cret" not in str(err.value) and "t0ken" not in str(err.value)


def test_check_url_passes_public_names_and_allowed_addresses() -> None:
    wh.check_url("https://example.com/hooks/kudos", ())
    wh.check_url("HTTP://93.184.216.34:8443/x", ())
    wh.check_url("http://localhost:9/", ())  # names are checked after resolution
    wh.check_url("http://127.0.0.1:9/", wh.parse_allow_list("127.0.0.1"))
