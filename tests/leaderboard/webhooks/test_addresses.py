"""Standard Webhooks signing, retry policy and destination policy (leaderboard/webhooks.py), checked
against the independent ``standardwebhooks`` package where it has an opinion."""

from __future__ import annotations

import base64
import random
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from ipaddress import IPv4Address, IPv6Address, ip_network

import pytest
import standardwebhooks
from hypothesis import given
from hypothesis import strategies as st

from leaderboard import webhooks as wh
from leaderboard.errors import ConfigError, DestinationRefused, InvalidSignature

KEY = bytes(range(32))
OLD_KEY = bytes(range(100, 124))
SECRET = wh.format_secret(KEY)
OLD_SECRET = wh.format_secret(OLD_KEY)
BODY = b'{"type":"perk.unlocked","data":{"member":"m1","rule":"top10"}}'
MSG_ID = "unl_3f2a9c"


class Fixed:
    """A RandomSource that always returns one value."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def now_headers(body: bytes = BODY, secrets: tuple[bytes, ...] = (KEY,)) -> dict[str, str]:
    return wh.headers(MSG_ID, int(time.time()), body, secrets)


# --- signatures ---------------------------------------------------------------------------------


def test_known_vector_matches_the_reference_library() -> None:
    # the standardwebhooks libraries' own test vector
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id, ts, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, '{"test": 2432232314}'
    ours = wh.sign([wh.parse_secret(secret)], msg_id, ts, body.encode())
    theirs = standardwebhooks.Webhook(secret).sign(msg_id, datetime.fromtimestamp(ts, UTC), body)
    assert ours == theirs == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_headers_verify_with_standardwebhooks() -> None:
    headers = now_headers()
    assert set(headers) == {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type"}
    assert headers["webhook-id"] == MSG_ID
    assert headers["content-type"] == "application/json"
    assert headers["webhook-signature"].startswith("v1,")
    payload = standardwebhooks.Webhook(SECRET).verify(BODY, headers)
    assert payload["data"]["member"] == "m1"
    wh.verify(BODY, headers, [KEY], now=time.time())


@pytest.mark.parametrize("altered", ["body", "id", "timestamp"])
def test_any_alteration_fails_verification(altered: str) -> None:
    headers = now_headers()
    body = BODY
    if altered == "body":
        body = BODY.replace(b"m1", b"m2")
    elif altered == "id":
        headers["webhook-id"] = "unl_3f2a9d"
    else:
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(SECRET).verify(body, headers)
    with pytest.raises(InvalidSignature, match="no v1 signature matches"):
        wh.verify(body, headers, [KEY], now=time.time())


def test_rotation_signs_with_every_secret_and_either_verifies() -> None:
    headers = now_headers(secrets=(KEY, OLD_KEY))
    assert len(headers["webhook-signature"].split(" ")) == 2
    standardwebhooks.Webhook(SECRET).verify(BODY, headers)
    standardwebhooks.Webhook(OLD_SECRET).verify(BODY, headers)
    wh.verify(BODY, headers, [OLD_KEY], now=time.time())
    other = wh.format_secret(bytes(24))
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(other).verify(BODY, headers)
    with pytest.raises(InvalidSignature):
        wh.verify(BODY, headers, [bytes(24)], now=time.time())


@given(
    msg_id=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="."),
        min_size=1,
        max_size=60,
    ),
    text=st.text(max_size=300),
    key=st.binary(min_size=24, max_size=64),
)
def test_any_id_body_and_key_verify_with_standardwebhooks(
    msg_id: str, text: str, key: bytes
) -> None:
    body = text.encode()  # the reference verifier decodes the body as UTF-8
    headers = wh.headers(msg_id, int(time.time()), body, [key])
    standardwebhooks.Webhook(wh.format_secret(key)).verify(body, headers, json_parse=False)
    wh.verify(body, headers, [key], now=time.time())


def test_verify_reads_header_names_case_insensitively_and_skips_other_schemes() -> None:
    headers = {k.title(): v for k, v in now_headers().items()}
    headers["Webhook-Signature"] = "v1a,AAAA garbage v1,!!! " + headers["Webhook-Signature"]
    wh.verify(BODY, headers, [KEY], now=time.time())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"webhook-id": ""}, "missing header webhook-id"),
        ({"webhook-signature": ""}, "missing header webhook-signature"),
        ({"webhook-timestamp": "1e9"}, "not whole unix seconds"),
        ({"webhook-timestamp": "-5"}, "not whole unix seconds"),
        ({"webhook-id": "a.b"}, "without '.'"),
        ({"webhook-signature": "v1a,abc v2,def"}, "no v1 signature matches"),
    ],
)
def test_verify_says_which_check_failed(change: dict[str, str], message: str) -> None:
    headers = {**now_headers(), **change}
    with pytest.raises(InvalidSignature, match=message):
        wh.verify(BODY, headers, [KEY], now=time.time())


@pytest.mark.parametrize("skew", [-301, 301, -10_000])
def test_verify_refuses_timestamps_outside_five_minutes(skew: int) -> None:
    now = time.time()
    headers = wh.headers(MSG_ID, int(now), BODY, [KEY])
    wh.verify(BODY, headers, [KEY], now=now + 299)
    with pytest.raises(InvalidSignature, match="outside"):
        wh.verify(BODY, headers, [KEY], now=int(now) - skew)


def test_parse_secret_accepts_the_whsec_forms() -> None:
    assert wh.parse_secret(SECRET) == KEY
    assert wh.parse_secret("  " + SECRET.rstrip("=") + "\n") == KEY  # unpadded, stray spaces
    assert standardwebhooks.Webhook(SECRET)._whsecret == KEY


@pytest.mark.parametrize(
    "text",
    [
        "",
        "whsec_",
        base64.b64encode(KEY).decode(),  # no prefix
        "whsk_" + base64.b64encode(KEY).decode(),  # an asymmetric secret key
        "whsec_" + "!" * 32,
        "whsec_" + base64.urlsafe_b64encode(b"\xfb" * 30).decode(),  # url-safe alphabet
        "whsec_" + base64.b64encode(b"k" * 16).decode(),  # too short
        "whsec_" + base64.b64encode(b"k" * 65).decode(),  # too long
    ],
)
def test_bad_secrets_are_config_errors_that_do_not_echo_the_value(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        wh.parse_secret(text, name="webhooks.endpoints[0].secret")
    message = str(err.value)
    assert message.startswith("webhooks.endpoints[0].secret")
    assert "whsec_<base64 of 24 to 64 random bytes>" in message
    if len(text) > 8:
        assert text[6:] not in message


def test_sign_refuses_what_would_make_an_ambiguous_or_empty_signature() -> None:
    with pytest.raises(ConfigError, match="at least one secret"):
        wh.sign([], MSG_ID, 1, BODY)
    with pytest.raises(ValueError, match=r"without '\.'"):
        wh.sign([KEY], "unl.1", 1, BODY)
    with pytest.raises(ValueError, match=r"without '\.'"):
        wh.sign([KEY], "unl 1", 1, BODY)
    with pytest.raises(ValueError, match="whole seconds"):
        wh.sign([KEY], MSG_ID, -1, BODY)


# --- outcomes and retries ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (201, "delivered"),
        (204, "delivered"),
        (299, "delivered"),
        (None, "retry"),
        (100, "retry"),
        (301, "retry"),
        (302, "retry"),
        (304, "retry"),
        (307, "retry"),
        (308, "retry"),
        (400, "retry"),
        (401, "retry"),
        (404, "retry"),
        (409, "retry"),
        (410, "disable"),
        (413, "retry"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
        (504, "retry"),
    ],
)
def test_classify(status: int | None, outcome: wh.Outcome) -> None:
    assert wh.classify(status) == outcome


def test_schedule_is_monotone_and_spans_days() -> None:
    assert list(wh.SCHEDULE_S) == sorted(wh.SCHEDULE_S)
    assert wh.MAX_ATTEMPTS == 10
    for rng in (Fixed(0.0), Fixed(0.999999)):  # both jitter extremes
        delays = [wh.next_attempt_delay(n, None, rng) for n in range(1, wh.MAX_ATTEMPTS)]
        assert all(d is not None for d in delays)
        span = sum(d for d in delays if d is not None)
        assert 2 * 86400 < span < 4 * 86400
        assert delays == sorted(delays)
    assert sum(wh.SCHEDULE_S) == 75 * 3600 + 35 * 60 + 5  # the spec's 75:35:05


def test_after_the_last_attempt_the_message_is_dead_lettered() -> None:
    assert wh.next_attempt_delay(wh.MAX_ATTEMPTS - 1, None, Fixed(0.5)) == wh.SCHEDULE_S[-1]
    assert wh.next_attempt_delay(wh.MAX_ATTEMPTS, None, Fixed(0.5)) is None
    assert wh.next_attempt_delay(wh.MAX_ATTEMPTS, 60.0, Fixed(0.5)) is None
    with pytest.raises(ValueError):
        wh.next_attempt_delay(0, None, Fixed(0.5))


@given(attempt=st.integers(1, wh.MAX_ATTEMPTS - 1), r=st.floats(0.0, 1.0, exclude_max=True))
def test_jitter_stays_within_twenty_percent(attempt: int, r: float) -> None:
    base = wh.SCHEDULE_S[attempt - 1]
    delay = wh.next_attempt_delay(attempt, None, Fixed(r))
    assert delay is not None
    assert 0.8 * base <= delay < 1.2 * base + 1e-9


def test_jitter_comes_from_the_injected_source() -> None:
    delays = {wh.next_attempt_delay(3, None, random.Random(seed)) for seed in range(20)}
    assert len(delays) == 20
    again = {wh.next_attempt_delay(3, None, random.Random(seed)) for seed in range(20)}
    assert delays == again


def test_retry_after_lengthens_but_never_shortens_nor_exceeds_a_day() -> None:
    mid = Fixed(0.5)  # no jitter
    assert wh.next_attempt_delay(1, 120.0, mid) == 120.0  # 5 s scheduled, receiver asks 2 min
    assert wh.next_attempt_delay(4, 0.0, mid) == 2 * 3600  # cannot speed the schedule up
    assert wh.next_attempt_delay(1, 10 * 86400.0, mid) == 86400.0
    assert wh.next_attempt_delay(1, float("inf"), mid) == 86400.0
    assert wh.next_attempt_delay(1, float("nan"), mid) == 5.0


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 0 ", 0.0),
        (format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True), 90.0),
        (format_datetime(datetime.fromtimestamp(NOW - 90, UTC), usegmt=True), 0.0),  # past
        ("Tuesday, 14-Nov-23 22:15:20 GMT", 1_700_000_120.0 - NOW),  # RFC 850 form
        ("Tue Nov 14 22:15:20 2023", 1_700_000_120.0 - NOW),  # asctime form, no zone = UTC
        ("1.5", None),
        ("-5", None),
        ("soon", None),
        ("", None),
    ],
)
def test_parse_retry_after(value: str, seconds: float | None) -> None:
    assert wh.parse_retry_after(value, NOW) == seconds


def test_retry_after_is_honoured_on_429_and_503_only() -> None:
    assert wh.retry_after_for(429, "30", NOW) == 30.0
    assert wh.retry_after_for(503, "30", NOW) == 30.0
    assert wh.retry_after_for(500, "30", NOW) is None
    assert wh.retry_after_for(302, "30", NOW) is None
    assert wh.retry_after_for(429, None, NOW) is None


# --- destinations ------------------------------------------------------------------------------


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


# --- schedules, endpoints, messages ------------------------------------------------------------


def test_parse_schedule() -> None:
    assert wh.parse_schedule("") == wh.SCHEDULE_S
    assert wh.parse_schedule("  ") == wh.SCHEDULE_S
    assert wh.parse_schedule("0.5, 2 ,10") == (0.5, 2.0, 10.0)
    assert wh.parse_schedule("0") == (0.0,)


@pytest.mark.parametrize("text", ["5,x", "-1", "nan", "inf", "1e400", ",".join(["1"] * 101)])
def test_bad_schedules_name_the_setting(text: str) -> None:
    with pytest.raises(ConfigError, match=wh.SCHEDULE_SETTING):
        wh.parse_schedule(text)


def test_an_injected_schedule_bounds_the_attempts() -> None:
    mid = Fixed(0.5)
    schedule = (0.2, 0.4)
    assert wh.next_attempt_delay(1, None, mid, schedule=schedule) == 0.2
    assert wh.next_attempt_delay(2, None, mid, schedule=schedule) == 0.4
    assert wh.next_attempt_delay(3, None, mid, schedule=schedule) is None
    assert wh.next_attempt_delay(1, 3.0, mid, schedule=schedule) == 3.0  # Retry-After still wins


@pytest.mark.parametrize(
    ("outcome", "attempt", "retry_after", "expected"),
    [
        ("delivered", 1, None, ("done", None)),
        ("delivered", 3, 9.0, ("done", None)),
        ("disable", 1, None, ("disable", None)),
        ("retry", 1, None, ("retry", 1.0)),
        ("retry", 1, 7.0, ("retry", 7.0)),
        ("retry", 2, None, ("retry", 2.0)),
        ("retry", 3, None, ("dead", None)),
        ("retry", 3, 60.0, ("dead", None)),
    ],
)
def test_after_attempt(
    outcome: wh.Outcome,
    attempt: int,
    retry_after: float | None,
    expected: tuple[str, float | None],
) -> None:
    assert wh.after_attempt(outcome, attempt, retry_after, Fixed(0.5), schedule=(1, 2)) == expected


def perks_data(*endpoints: dict[str, object]) -> dict[str, object]:
    return {"rule": [{"id": "top10"}, {"id": "big"}], "endpoint": list(endpoints)}


def test_parse_endpoints() -> None:
    data = perks_data(
        {"id": "crm", "url": "https://crm.example.com/hooks", "secrets": [SECRET, OLD_SECRET]},
        {
            "id": "shop_2",
            "url": "http://127.0.0.1:9000/x",
            "secrets": [SECRET],
            "rules": ["big"],
        },
    )
    crm, shop = wh.parse_endpoints(data, ["top10", "big"], allow=wh.parse_allow_list("127.0.0.1"))
    assert (crm.id, crm.url, crm.secrets, crm.rules) == (
        "crm",
        "https://crm.example.com/hooks",
        (KEY, OLD_KEY),
        frozenset(),
    )
    assert crm.wants("top10") and crm.wants("big")
    assert shop.wants("big") and not shop.wants("top10")
    assert SECRET not in repr(crm) and "crm.example" not in repr(crm)
    assert wh.parse_endpoints({}, []) == []


GOOD = {"id": "crm", "url": "https://crm.example.com/hooks", "secrets": [SECRET]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"id": "a b"}, "endpoint #1: id must be"),
        ({"id": 5}, "endpoint #1: id must be"),
        ({"url": 5}, "endpoint 'crm': url must be a string"),
        ({"url": "ftp://crm.example.com/"}, "endpoint 'crm' url: only http"),
        ({"url": "http://127.0.0.1/h"}, "loopback.*KUDOS_WEBHOOKS_ALLOW"),
        ({"url": "http://2130706433/h"}, "loopback"),
        ({"url": "http://169.254.169.254/"}, "link-local"),
        ({"secrets": []}, "secrets must be a non-empty list"),
        ({"secrets": SECRET}, "secrets must be a non-empty list"),
        ({"secrets": [SECRET, "whsec_short"]}, r"endpoint 'crm' secrets\[1\]"),
        (
            {"rules": ["top10", "nope", "gone"]},
            "no \\[\\[rule\\]\\] has the id\\(s\\) 'gone', 'nope'",
        ),
        ({"rules": "top10"}, "rules must be a list"),
        ({"secret": SECRET}, "unknown field\\(s\\) secret"),
    ],
)
def test_bad_endpoints_are_config_errors_naming_the_endpoint(
    change: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=f"^perks.toml: .*{message}"):
        wh.parse_endpoints(perks_data({**GOOD, **change}), ["top10", "big"], source="perks.toml")


def test_duplicate_endpoints_and_non_tables_are_refused() -> None:
    with pytest.raises(ConfigError, match="endpoint 'crm': duplicate id"):
        wh.parse_endpoints(perks_data(GOOD, GOOD), [])
    with pytest.raises(ConfigError, match="endpoint #1: not a table"):
        wh.parse_endpoints({"endpoint": ["x"]}, [])
    with pytest.raises(ConfigError, match=r"array of tables"):
        wh.parse_endpoints({"endpoint": {"id": "x"}}, [])


def test_endpoint_errors_never_repeat_secrets_or_urls() -> None:
    secret = "whsec_" + base64.b64encode(b"s" * 10).decode()
    url = "http://user:tok3n@10.0.0.1/hook"
    for change in ({"secrets": [secret]}, {"url": url}):
        with pytest.raises(ConfigError) as err:
            wh.parse_endpoints(perks_data({**GOOD, **change}), [])
        assert secret[8:] not in str(err.value) and "tok3n" not in str(err.value)


def test_message_body_is_the_standard_webhooks_structure() -> None:
    body = wh.message_body("perk.unlocked", 1341100812.25, {"member": "m1", "title": "Top 10 ★"})
    assert (
        body
        == (
            '{"type":"perk.unlocked","timestamp":"2012-07-01T00:00:12.250Z",'
            '"data":{"member":"m1","title":"Top 10 ★"}}'
        ).encode()
    )
    headers = wh.headers(MSG_ID, int(time.time()), body, [KEY])
    assert standardwebhooks.Webhook(SECRET).verify(body, headers)["data"]["member"] == "m1"
