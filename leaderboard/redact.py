"""One place that decides what of a URL or a secret may be shown: in errors, logs and answers.

Connection URLs carry passwords (``redis://:pw@host``, ``kafka://user:pw@host``) and webhook URLs
often carry tokens in their path or query (``https://hooks.example/T0/B1/xyz?token=...``). Every
message that names one goes through :func:`url`; settings whose value is a secret (tokens,
passwords) are never echoed (:func:`setting_value`). Redacted text keeps what an operator needs to
tell two destinations apart: scheme, host and port.
"""

from __future__ import annotations

from urllib.parse import urlsplit

#: What stands in for a hidden part.
HIDDEN = "***"

#: Settings (``KUDOS_<SECTION>_<NAME>``) whose values are secrets, whole.
SECRET_SETTINGS = frozenset(
    {"KUDOS_WEB_TOKEN", "KUDOS_WEB_INGEST_TOKEN", "KUDOS_WEB_ADMIN_TOKENS", "KUDOS_BAIT_KEY"}
)
#: Settings whose values are URLs that may carry a password.
URL_SETTINGS = frozenset({"KUDOS_REDIS_URL", "KUDOS_BROKER_URL"})


def url(value: str) -> str:
    """``value`` with its password, path beyond the first segment, query and fragment hidden:
    ``redis://:pw@h:6379/0`` → ``redis://***@h:6379/0``, ``https://h/hooks/T/B/x?k=v`` →
    ``https://h/hooks/***``. Text that is not a URL comes back with nothing after a ``@``."""
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return value.rpartition("@")[2] if "@" in value else value
    if not parts.scheme or not parts.netloc:
        return value.rpartition("@")[2] if "@" in value else value
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{port}" if port is not None else "")
    if parts.username is not None or parts.password is not None:
        netloc = f"{HIDDEN}@{netloc}"
    segments = [s for s in parts.path.split("/") if s]
    path = ""
    if segments:
        # one segment (a Redis db number, /hooks) says where; the rest may be a token
        path = "/" + segments[0] + (f"/{HIDDEN}" if len(segments) > 1 else "")
    if parts.query or parts.fragment:
        path += f"?{HIDDEN}"
    return f"{parts.scheme}://{netloc}{path}"


def url_secrets(value: str) -> tuple[str, ...]:
    """The parts of ``value`` that :func:`url` hides (the whole URL first, then its password,
    query, fragment and path beyond the first segment), for :func:`text`."""
    try:
        parts = urlsplit(value)
    except ValueError:
        return (value,)
    found = [value, parts.password or "", parts.query, parts.fragment]
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) > 1:
        found.append("/".join(segments[1:]))
    return tuple(f for f in found if f)


def setting_value(name: str, value: object) -> str:
    """How a setting's value may appear in an error about it (``repr`` of what is safe)."""
    if name in SECRET_SETTINGS:
        return HIDDEN
    if name in URL_SETTINGS and isinstance(value, str):
        return repr(url(value))
    return repr(value)


def text(message: str, secrets: tuple[str, ...]) -> str:
    """``message`` with every occurrence of each (non-empty) secret replaced by ``***``: for text
    from a library (an exception's words) that may quote a URL or token it was given."""
    for s in secrets:
        if s:
            message = message.replace(s, HIDDEN)
    return message
