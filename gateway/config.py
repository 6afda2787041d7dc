from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    database_url: str
    # Ed25519 private key (PEM) that signs the identity forwarded to the services.
    internal_signing_key: SecretStr = Field(
        validation_alias=AliasChoices("CRADLE_INTERNAL_SIGNING_KEY", "internal_signing_key")
    )
    # Client tokens: HS256 keys by key id; the active one signs, all of them verify (rotation).
    jwt_keys: dict[str, SecretStr]
    jwt_active_kid: str
    token_ttl_seconds: int = Field(default=900, ge=60, le=86400)
    registry_url: str = "http://127.0.0.1:8001"
    workforce_url: str = "http://127.0.0.1:8002"
    monitoring_url: str = "http://127.0.0.1:8003"
    guidance_url: str = "http://127.0.0.1:8004"
    upstream_timeout_seconds: float = 30.0
    max_body_bytes: int = 8 * 1024 * 1024
    log_format: str = Field(default="json", validation_alias=AliasChoices("CRADLE_LOG_FORMAT", "log_format"))
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("CRADLE_LOG_LEVEL", "log_level"))

    @field_validator("jwt_keys")
    @classmethod
    def _keys_are_strong(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if not keys:
            raise ValueError("at least one signing key is needed")
        for kid, secret in keys.items():
            if len(secret.get_secret_value()) < 32:
                raise ValueError(f"key {kid!r} is shorter than 32 characters")
        return keys

    @model_validator(mode="after")
    def _active_key_exists(self) -> GatewaySettings:
        if self.jwt_active_kid not in self.jwt_keys:
            raise ValueError("jwt_active_kid must name one of jwt_keys")
        return self

    def upstreams(self) -> dict[str, str]:
        return {
            "registry": self.registry_url,
            "workforce": self.workforce_url,
            "monitoring": self.monitoring_url,
            "guidance": self.guidance_url,
        }
