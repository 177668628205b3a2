"""What ``kudos deliver`` reads once at start: the webhook endpoints of the perks file and the
delivery policy (allow-list, retry schedule), validated before anything is sent."""

from __future__ import annotations

from dataclasses import dataclass

from leaderboard import webhooks as wh
from leaderboard.perks import Unlock, load_perks_file
from leaderboard.scoring import ScoringRules
from leaderboard.settings import Settings


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """The endpoints and the policy, read and validated once at start."""

    endpoints: dict[str, wh.Endpoint]
    allow: wh.AllowList = ()
    schedule: tuple[float, ...] = wh.SCHEDULE_S

    def jobs_for(self, unlock: Unlock) -> list[tuple[str, dict[str, str]]]:
        """(job id, fields) of one webhook job per endpoint that wants ``unlock``'s rule; the
        body is made here, once, and sent unchanged by every attempt."""
        body = wh.message_body(wh.UNLOCK_TYPE, unlock.at, unlock.data()).decode()
        return [
            (
                f"{e.id}:{unlock.id}",
                {
                    "endpoint": e.id,
                    "unlock": unlock.id,
                    "member": unlock.member,
                    "rule": unlock.rule,
                    "body": body,
                },
            )
            # a disabled endpoint gets its job too: the job loop dead-letters it unsent, so
            # `kudos webhooks replay --enable` sends every unlock made while it was disabled
            for e in self.endpoints.values()
            if e.wants(unlock.rule)
        ]


def load_config(settings: Settings) -> DeliveryConfig:
    """Endpoints from the ``[[endpoint]]`` tables of the perks file, checked against its rules.

    Raises ConfigError naming the file, endpoint and field (or the setting)."""
    scoring = settings.periods.apply(ScoringRules.load(settings.scoring.path or None))
    rules, data = load_perks_file(settings.perks.path, scoring)
    allow = wh.parse_allow_list(settings.webhooks.allow)
    endpoints = wh.parse_endpoints(
        data, [r.id for r in rules], allow=allow, source=settings.perks.path or "perks file"
    )
    return DeliveryConfig(
        {e.id: e for e in endpoints}, allow, wh.parse_schedule(settings.webhooks.schedule_s)
    )
