"""Webhook endpoints and the messages sent to them.

Endpoints are ``[[endpoint]]`` tables of the perks file (:func:`parse_endpoints`); a message body
is :func:`message_body`. ``deliver/deliverer.py`` runs the deliveries.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from leaderboard.errors import ConfigError
from leaderboard.perks import tables
from leaderboard.webhooks.addresses import AllowList, check_url
from leaderboard.webhooks.signing import parse_secret

#: The ``type`` of the message for a perk unlock.
UNLOCK_TYPE = "perk.unlocked"

_ENDPOINT_FIELDS = frozenset({"id", "url", "secrets", "rules"})


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
