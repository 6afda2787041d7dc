from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class WorkforceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WORKFORCE_", extra="ignore")

    service_name: str = "workforce"
