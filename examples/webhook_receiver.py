"""A webhook receiver for Kudos perk unlocks: verifies Standard Webhooks signatures and handles each
unlock once, however often it is delivered.

Kudos retries a webhook until it gets a 2xx answer (for days), and a restart of the sender can repeat
an attempt, so a receiver sees the same message more than once: it de-duplicates by the
``webhook-id`` header (the unlock id, the same on every attempt). Here the ids of handled messages are
kept in SQLite, so a restart of the receiver does not forget them.

Needs the standard library and the ``standardwebhooks`` package (``pip install standardwebhooks``);
nothing from Kudos. Run it, then point an ``[[endpoint]]`` of the perks file at it::

    python examples/webhook_receiver.py --port 9000 --secret whsec_...   # or WEBHOOK_SECRET=...
    # perks.toml:  [[endpoint]] id = "demo"  url = "http://127.0.0.1:9000/hooks/kudos"
    #              secrets = ["whsec_..."]   and KUDOS_WEBHOOKS_ALLOW=127.0.0.1 (a loopback address)

Answers: 204 for a new or an already handled message, 401 when the signature or timestamp does not
verify (an attacker, a wrong secret, or a clock off by more than five minutes), 400 for a body that
is not JSON, 404 for another path. ``--fail N`` answers 500 to the first N attempts of every
message, to watch Kudos retry.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

#: The largest body read; Kudos's perk messages are well under 10 KiB.
MAX_BODY = 1 << 20


class Receiver:
    """Verification and de-duplication, without the HTTP server (easy to reuse or test)."""

    def __init__(
        self,
        secrets: Sequence[str],
        db: str = ":memory:",
        handle: Callable[[dict[str, Any]], None] | None = None,
        fail_first: int = 0,
    ) -> None:
        if not secrets:
            raise ValueError("at least one whsec_ secret is needed")
        # during a rotation the sender signs with every secret; either one verifies
        self.webhooks = [Webhook(s) for s in secrets]
        self.handle = handle or print_unlock
        self.fail_first = fail_first
        self.attempts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.db = sqlite3.connect(db, check_same_thread=False)
        self.db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at REAL)")
        self.db.commit()

    def verify(self, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        """The message, or WebhookVerificationError."""
        error: Exception | None = None
        for wh in self.webhooks:
            try:
                message: dict[str, Any] = wh.verify(body, headers)
                return message
            except WebhookVerificationError as exc:
                error = exc
        assert error is not None
        raise error

    def receive(self, body: bytes, headers: dict[str, str]) -> int:
        """The HTTP status to answer with."""
        headers = {k.lower(): v for k, v in headers.items()}
        try:
            message = self.verify(body, headers)
        except WebhookVerificationError:
            return 401
        except (ValueError, json.JSONDecodeError):
            return 400
        msg_id = headers["webhook-id"]
        with self.lock:
            self.attempts[msg_id] += 1
            if self.attempts[msg_id] <= self.fail_first:
                return 500
            # INSERT OR IGNORE is the de-duplication: a second copy changes no row
            new = self.db.execute(
                "INSERT OR IGNORE INTO seen VALUES (?, julianday('now'))", (msg_id,)
            ).rowcount
            if new:
                try:
                    self.handle(message)
                except Exception:
                    self.db.rollback()  # not handled: let the sender try again
                    raise
            self.db.commit()
        return 204

    def handled(self) -> int:
        with self.lock:
            return int(self.db.execute("SELECT count(*) FROM seen").fetchone()[0])


def print_unlock(message: dict[str, Any]) -> None:
    data = message.get("data", {})
    print(
        f"{message.get('type')}: {data.get('member')} unlocked {data.get('title')!r} "
        f"({data.get('rule')} on {data.get('board')}, #{data.get('rank')}) id {data.get('id')}",
        flush=True,
    )


def make_server(receiver: Receiver, host: str, port: int, path: str) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if self.path != path:
                self._answer(404)
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(413)
                return
            body = self.rfile.read(length)
            try:
                status = receiver.receive(body, dict(self.headers.items()))
            except Exception as exc:  # the handler failed: 500, and the sender retries
                print(f"handling failed: {exc!r}", file=sys.stderr, flush=True)
                status = 500
            self._answer(status)

        def _answer(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per unlock is printed by the handler; no access log

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--path", default="/hooks/kudos")
    p.add_argument(
        "--secret",
        action="append",
        help="whsec_... (repeat during a rotation; default: $WEBHOOK_SECRET)",
    )
    p.add_argument("--db", default=":memory:", help="SQLite file of handled ids (default: memory)")
    p.add_argument("--fail", type=int, default=0, metavar="N", help="answer 500 N times first")
    args = p.parse_args(argv)
    secrets = args.secret or [s for s in [os.environ.get("WEBHOOK_SECRET", "")] if s]
    if not secrets:
        p.error("give --secret whsec_... or set WEBHOOK_SECRET")
    server = make_server(
        Receiver(secrets, args.db, fail_first=args.fail), args.host, args.port, args.path
    )
    print(f"listening on http://{args.host}:{server.server_address[1]}{args.path}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
