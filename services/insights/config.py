"""The settings insights read, gathered in one frozen record built from `Settings`.

`configs.config.Settings` does not have these fields yet (the lead adds them); `from_settings`
reads each one when it is there, so the package works before and after that change, and tests
build an `InsightsConfig` directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import SecretStr

from configs.config import Settings

RetentionMode = Literal["delete", "anonymise"]

# Average-linkage cosine distance under which two unanswered questions share a topic. Measured on
# the local MiniLM model: rephrasings of one question sit at 0.02-0.30, questions about related
# but different things (days of holiday vs the vacation policy) at 0.5-0.65.
DEFAULT_CLUSTER_DISTANCE = 0.45


@dataclass(frozen=True, slots=True)
class InsightsConfig:
    """What the report, the admin page, the digest and retention need to know."""

    admin_token: SecretStr | None = None  # ADMIN_TOKEN: bearer token, or typed once into the login form
    admin_username: str = "admin"  # ADMIN_USERNAME: basic-auth user, with ADMIN_PASSWORD
    admin_password: SecretStr | None = None  # ADMIN_PASSWORD: enables basic auth
    show_user_ids: bool = False  # INSIGHTS_SHOW_USER_IDS: user ids in the report and pages
    cluster_distance: float = DEFAULT_CLUSTER_DISTANCE  # INSIGHTS_CLUSTER_DISTANCE
    retention_days: int = 0  # RETENTION_DAYS: 0 keeps conversations forever
    retention_mode: RetentionMode = "delete"  # RETENTION_MODE: delete or anonymise
    digest_channel: str | None = None  # INSIGHTS_DIGEST_CHANNEL: "slack:C123" or "discord:123"
    digest_weekday: int = 0  # INSIGHTS_DIGEST_WEEKDAY: 0 = Monday
    digest_hour_utc: int = 9  # INSIGHTS_DIGEST_HOUR_UTC
    reindex_interval_minutes: float = 0.0  # REINDEX_INTERVAL_MINUTES (for the next scheduled run)

    @property
    def admin_enabled(self) -> bool:
        """The admin page is served only when a token or a password is set: never open by default."""
        return self.admin_token is not None or self.admin_password is not None

    @classmethod
    def from_settings(cls, settings: Settings) -> InsightsConfig:
        """The insights fields of `settings`, with the defaults above for those it lacks."""
        defaults = cls()
        names = {
            "admin_token": "admin_token",
            "admin_username": "admin_username",
            "admin_password": "admin_password",
            "show_user_ids": "insights_show_user_ids",
            "cluster_distance": "insights_cluster_distance",
            "retention_days": "retention_days",
            "retention_mode": "retention_mode",
            "digest_channel": "insights_digest_channel",
            "digest_weekday": "insights_digest_weekday",
            "digest_hour_utc": "insights_digest_hour_utc",
            "reindex_interval_minutes": "reindex_interval_minutes",
        }
        values = {field: getattr(settings, name, getattr(defaults, field)) for field, name in names.items()}
        return cls(**values)
