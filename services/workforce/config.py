from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import PersonalDataSettings

# DOMAIN.md's defaults, named once.
DEFAULT_RATIOS = {"infant": 3, "toddler": 5, "preschool": 7}
DEFAULT_ROLE_CERTIFICATES = {
    "infant_carer": ["infant_carer"],
    "childcare_worker": ["childcare_worker"],
    "health_worker": ["health_worker"],
    "teacher": ["teacher"],
    "director": ["director"],
}
DEFAULT_CARING_ROLES = ["infant_carer", "childcare_worker", "teacher"]
# 健康合格证明: every role, to be hired and to keep working (DOMAIN.md, "Health").
HEALTH_CERTIFICATE = "health"


class WorkforceSettings(PersonalDataSettings):
    model_config = SettingsConfigDict(env_prefix="WORKFORCE_", extra="ignore")

    service_name: str = "workforce"

    ratios: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_RATIOS))
    role_certificates: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_ROLE_CERTIFICATES))
    caring_roles: list[str] = Field(default_factory=lambda: list(DEFAULT_CARING_ROLES))
    training_skills_hours: float = 72.0
    training_ethics_hours: float = 40.0
    ban_acknowledge_hours: float = Field(default=24.0, gt=0)
    recheck_every_days: int = Field(default=365, ge=1)
    # A health certificate is valid this long from its issue (a year).
    health_certificate_valid_days: int = Field(default=365, ge=1)
    # Hire without a valid health certificate, provisionally until one is recorded (default: refuse).
    provisional_hire_without_health_certificate: bool = False
    # A flagged background check suspends the employment until the district decides; after this many
    # days without a decision, the default action is taken.
    suspension_decision_days: int = Field(default=30, ge=1)
    suspension_default_action: Literal["end", "reinstate"] = "end"
    # How often the scheduled jobs (escalation, expiry, annual re-check) run; 0 turns them off.
    jobs_interval_seconds: float = Field(default=300.0, ge=0)

    @field_validator("ratios")
    @classmethod
    def _ratios_cover_every_age_class(cls, ratios: dict[str, int]) -> dict[str, int]:
        if set(ratios) != set(DEFAULT_RATIOS) or any(r < 1 for r in ratios.values()):
            raise ValueError("one ratio ≥ 1 per age class: infant, toddler, preschool")
        return ratios
