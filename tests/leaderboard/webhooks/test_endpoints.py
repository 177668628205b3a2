"""Endpoints from the perks file and message bodies (leaderboard/webhooks/endpoints.py), the
bodies checked against the independent ``standardwebhooks`` package."""

from __future__ import annotations

import base64
import time

import pytest
import standardwebhooks

# endpoints need secrets, allow-lists and headers too: every public name is in the package
from leaderboard import webhooks as wh
from leaderboard.errors import ConfigError

KEY = bytes(range(32))
OLD_KEY = bytes(range(100, 124))
SECRET = wh.format_secret(KEY)
OLD_SECRET = wh.format_secret(OLD_KEY)
MSG_ID = "unl_3f2a9c"


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
