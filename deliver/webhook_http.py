"""One webhook attempt over HTTP, with the destination policy enforced where it cannot be bypassed.

:func:`deliver` POSTs a signed body (headers from :func:`leaderboard.webhooks.headers`) and reports
an :class:`Attempt`; it never raises for anything the network or the receiver does. Deciding what
happens next (retry when, disable, dead-letter) is :mod:`leaderboard.webhooks`'s job.

SSRF guard, in three layers, all before a single byte goes out:

1. :func:`leaderboard.webhooks.check_url`: http/https only, and a host that is literally a refused
   address in any spelling (``2130706433``, ``0x7f.1``, ``[::ffff:127.0.0.1]``) is refused at once.
2. The session's resolver refuses a name if *any* address it resolves to is refused, so a name
   with one private answer among public ones is refused as a whole (DNS rebinding).
3. The connector's socket factory checks every address right before its socket is created: IP
   literals (which aiohttp never hands to the resolver) and cached answers pass through it too.

The connection goes to exactly the addresses that were checked (there is no second lookup), so a
name cannot resolve to something else between the check and the connect.

No proxy is used (``trust_env=False``: a proxy would make the check apply to the proxy), redirects are
never followed, cookies are not kept, and at most :data:`MAX_RESPONSE_BYTES` of a response body are
read (undecoded), the rest is dropped with the connection.
"""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from aiohappyeyeballs import AddrInfoType, SocketFactoryType
from aiohttp.abc import AbstractResolver, ResolveResult

from leaderboard import redact
from leaderboard.errors import ConfigError, DestinationRefused
from leaderboard.webhooks import (
    AllowList,
    Outcome,
    check_destination,
    check_url,
    classify,
    retry_after_for,
)

#: Spec's recommendation is 15 to 30 s; a receiver should queue slow work and answer at once.
DEFAULT_TIMEOUT_S = 15.0
#: Response bytes kept for the delivery log; receivers' answers beyond this are not read.
MAX_RESPONSE_BYTES = 2048
USER_AGENT = "Kudos-Webhooks/1"


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one POST did. ``status`` is None when no response came (refused, unreachable, timed
    out); ``error`` is empty only when delivered, else it says what happened and what to do;
    ``retry_after_s`` is the honoured Retry-After (429/503), for
    :func:`leaderboard.webhooks.next_attempt_delay`; ``response`` is the start of the body."""

    outcome: Outcome
    status: int | None
    latency_ms: float
    retry_after_s: float | None = None
    error: str = ""
    response: str = ""


class GuardedConnector(aiohttp.TCPConnector):
    """A TCP connector that connects only to public or allowed addresses (see the module doc)."""

    def __init__(self, allow: AllowList, *, resolver: AbstractResolver | None = None) -> None:
        self.allow = allow
        super().__init__(
            resolver=_GuardedResolver(resolver or aiohttp.ThreadedResolver(), allow),
            socket_factory=_socket_factory(allow),
        )


class _GuardedResolver(AbstractResolver):
    def __init__(self, inner: AbstractResolver, allow: AllowList) -> None:
        self._inner = inner
        self._allow = allow

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            check_destination(result["host"], self._allow, host=host)
        return results

    async def close(self) -> None:
        await self._inner.close()


def _socket_factory(allow: AllowList) -> SocketFactoryType:
    def create(addr_info: AddrInfoType) -> socket.socket:
        family, kind, proto, _, sockaddr = addr_info
        # last line of defence: raised before the socket exists, so nothing can be sent
        check_destination(str(sockaddr[0]), allow)
        return socket.socket(family, kind, proto)

    return create


def guarded_session(
    allow: AllowList = (), *, resolver: AbstractResolver | None = None
) -> aiohttp.ClientSession:
    """An aiohttp session for many deliveries (keeps connections alive between them).

    Connects only to public addresses or those in ``allow``; ``resolver`` replaces the system
    resolver (tests use it to make a name resolve to a chosen address). Call it inside a running
    event loop and close it (``async with``) when done.
    """
    return aiohttp.ClientSession(
        connector=GuardedConnector(allow, resolver=resolver),
        trust_env=False,
        auto_decompress=False,
        cookie_jar=aiohttp.DummyCookieJar(),
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
    )


async def deliver(
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    allow: AllowList = (),
    timeout_s: float = DEFAULT_TIMEOUT_S,
    session: aiohttp.ClientSession | None = None,
) -> Attempt:
    """POST ``body`` with ``headers`` to ``url`` once and report what happened.

    ``timeout_s`` bounds the whole attempt (connect, send, response headers and the capped body).
    With ``session`` (from :func:`guarded_session`, whose allow-list applies; ``allow`` must then be
    left empty) connections are reused; without it a session is made for this one attempt.
    Never raises for network or receiver trouble; raises TypeError when ``session`` is not guarded.
    """
    if session is not None:
        if not isinstance(session.connector, GuardedConnector):
            raise TypeError("deliver() needs a session from guarded_session()")
        if allow:
            raise TypeError("pass the allow-list to guarded_session(), not to deliver()")
        guard = session.connector.allow
    else:
        guard = allow
    started = time.monotonic()
    try:
        check_url(url, guard)
    except ConfigError as exc:
        return hide_url(Attempt("retry", None, 0.0, error=str(exc)), url)
    if session is not None:
        return hide_url(await _post(session, url, headers, body, timeout_s, started), url)
    async with guarded_session(allow) as own:
        return hide_url(await _post(own, url, headers, body, timeout_s, started), url)


def hide_url(attempt: Attempt, url: str) -> Attempt:
    """``attempt`` with its error free of ``url``'s token parts: the error goes to the attempts
    log (``kudos webhooks log``) and the deliverer's log, and a library's message may quote the
    URL it was given (``https://hooks.example/T0/<token>``)."""
    if not attempt.error:
        return attempt
    error = attempt.error.replace(url, redact.url(url))
    return dataclasses.replace(attempt, error=redact.text(error, redact.url_secrets(url)[1:]))


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    timeout_s: float,
    started: float,
) -> Attempt:
    def failed(error: str) -> Attempt:
        return Attempt("retry", None, _ms_since(started), error=error)

    try:
        async with session.post(
            url,
            data=body,
            headers=headers,
            allow_redirects=False,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            latency_ms = _ms_since(started)
            status = resp.status
            retry_after = retry_after_for(status, resp.headers.get("Retry-After"), time.time())
            location = resp.headers.get("Location", "")
            reason = resp.reason or ""
            # The status is the receiver's answer; a body that is slow or cut short changes nothing.
            try:
                excerpt = await _read_capped(resp.content, MAX_RESPONSE_BYTES)
            except (aiohttp.ClientError, TimeoutError):
                excerpt = b""
    except DestinationRefused as exc:
        return failed(str(exc))
    except aiohttp.ClientConnectorError as exc:
        # aiohttp wraps what the guarded resolver and socket factory raise
        if isinstance(exc.os_error, DestinationRefused):
            return failed(str(exc.os_error))
        if isinstance(exc, aiohttp.ClientConnectorDNSError):
            return failed(f"cannot resolve {exc.host} ({exc.os_error}); check the host in the URL")
        if isinstance(exc, aiohttp.ClientConnectorCertificateError):
            return failed(
                f"the TLS certificate of {exc.host} is not valid ({exc.certificate_error});"
                " the receiver needs a certificate for its host name from a trusted authority"
            )
        return failed(
            f"cannot connect to {exc.host}:{exc.port} ({exc.strerror or exc.os_error});"
            " is the receiver running and reachable from here?"
        )
    except TimeoutError:
        return failed(
            f"no response within {timeout_s:g} s; the receiver should answer 2xx at once and"
            " do slow work afterwards"
        )
    except aiohttp.InvalidURL as exc:
        return failed(f"the webhook URL is not valid ({exc}); fix it in the endpoint settings")
    except aiohttp.ClientError as exc:
        return failed(f"the request failed ({type(exc).__name__}: {exc})")
    except (OSError, ValueError) as exc:  # raised around the client, e.g. by a socket call
        return failed(f"the request failed ({type(exc).__name__}: {exc})")

    outcome = classify(status)
    text = excerpt.decode("utf-8", "replace")
    if outcome == "delivered":
        return Attempt(outcome, status, latency_ms, response=text)
    answer = f"the receiver answered {status} {reason}".rstrip()
    if 300 <= status <= 399:
        target = f" to {location[:200]}" if location else ""
        error = (
            f"{answer} (a redirect{target}); redirects are never followed:"
            " set the endpoint URL to the final address"
        )
    elif outcome == "disable":
        error = f"{answer}: it wants no more webhooks, so the endpoint is to be disabled"
    elif retry_after is not None:
        error = f"{answer} and asked to retry after {retry_after:g} s"
    else:
        error = answer
    return Attempt(outcome, status, latency_ms, retry_after, error, text)


async def _read_capped(stream: aiohttp.StreamReader, cap: int) -> bytes:
    data = bytearray()
    while len(data) < cap:
        chunk = await stream.read(cap - len(data))
        if not chunk:
            break
        data += chunk
    return bytes(data)


def _ms_since(started: float) -> float:
    return (time.monotonic() - started) * 1000.0
