"""Facts of the live push protocol (docs/protocol.md) that both ends rely on: the version, the
fixed channel name, close codes and the limits a client can count on. The server (``web.hub``,
``web.session``, ``web.feed``, ``web.cohorts``) and the client (``kudos.client``,
``kudos.subscriptions``) both import them from here, so the two cannot drift apart. Plain constants with no imports: the client takes them without the server's
dependencies.
"""

from __future__ import annotations

#: The protocol version, sent in ``hello``; a client refuses a server that speaks another.
PROTOCOL = 1
#: The channel of every comment-bait alert (throttles started and ended), from ``kudos deliver``.
ALERTS_CHANNEL = "alerts"
#: A client further behind than this gets a snapshot rather than a replay.
MAX_REPLAY = 500
#: The largest ``limit`` of a board channel (the rows of a board the shared log tracks).
MAX_LIMIT = 100
#: Most members one cohort channel follows.
MAX_COHORT = 100
#: Web processes re-mark their members as watched this often, for twice as long.
WATCH_EVERY_S = 15.0

#: Closed as idle: it followed no channel and sent nothing for ``idle_timeout_s``.
CLOSE_GOING_AWAY = 1001
#: Closed for a policy violation: too many messages per second, no token or a wrong one.
CLOSE_POLICY = 1008
#: Closed as too slow (frames piled up): try again later, reconnect and resume.
CLOSE_TRY_AGAIN = 1013
