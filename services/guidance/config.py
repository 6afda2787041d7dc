from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import PersonalDataSettings


class GuidanceSettings(PersonalDataSettings):
    model_config = SettingsConfigDict(env_prefix="GUIDANCE_", extra="ignore")

    service_name: str = "guidance"

    # The plan's targets and the service's rules (defaults named once).
    offline_sessions_target: int = Field(default=6, ge=1)  # §2(4): ≥ 6 offline sessions a year
    link_code_days: int = Field(default=30, ge=1)  # a family's link code expires after this
    link_attempts_per_hour: int = Field(default=10, ge=1)  # wrong codes per parent before a 429
