"""Standard Webhooks secrets, signatures and verification (leaderboard/webhooks/signing.py),
checked against the independent ``standardwebhooks`` package where it has an opinion."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
from hypothesis import given
from hypothesis import strategies as st

from leaderboard.errors import ConfigError, InvalidSignature
from leaderboard.webhooks import signing as wh

KEY = bytes(range(32))
OLD_KEY = bytes(range(100, 124))
SECRET = wh.format_secret(KEY)
OLD_SECRET = wh.format_secret(OLD_KEY)
BODY = b'{"type":"perk.unlocked","data":{"member":"m1","rule":"top10"}}'
MSG_ID = "unl_3f2a9c"


def now_headers(body: bytes = BODY, secrets: tuple[bytes, ...] = (KEY,)) -> dict[str, str]:
    return wh.headers(MSG_ID, int(time.time()), body, secrets)


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
