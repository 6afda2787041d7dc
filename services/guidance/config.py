from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class GuidanceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GUIDANCE_", extra="ignore")

    service_name: str = "guidance"
