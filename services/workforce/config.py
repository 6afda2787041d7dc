from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.pii import KEY_BYTES, MIN_HMAC_KEY_BYTES, KeyedHasher, PiiCipher, decode_key
from shared.settings import ServiceSettings

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


class WorkforceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="WORKFORCE_", extra="ignore")

    service_name: str = "workforce"

    # Personal data keys: no defaults, a deployment must bring its own (`cradle up` generates them).
    # WORKFORCE_PII_KEYS='{"k2026a": "<base64 of 32 bytes>"}'; every listed key decrypts, the
    # active one encrypts, so a key is rotated by adding a new one and making it active.
    pii_keys: dict[str, SecretStr]
    pii_active_key_id: str
    # WORKFORCE_PII_HMAC_KEY: base64 of ≥ 32 bytes. Changing it orphans every lookup hash.
    pii_hmac_key: SecretStr

    ratios: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_RATIOS))
    role_certificates: dict[str, list[str]] = Field(default_factory=lambda: dict(DEFAULT_ROLE_CERTIFICATES))
    caring_roles: list[str] = Field(default_factory=lambda: list(DEFAULT_CARING_ROLES))
    training_skills_hours: float = 72.0
    training_ethics_hours: float = 40.0
    ban_acknowledge_hours: float = Field(default=24.0, gt=0)
    recheck_every_days: int = Field(default=365, ge=1)
    # How often the scheduled jobs (escalation, expiry, annual re-check) run; 0 turns them off.
    jobs_interval_seconds: float = Field(default=300.0, ge=0)

    @field_validator("pii_keys")
    @classmethod
    def _pii_keys_are_aes_256(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if not keys:
            raise ValueError("at least one key is needed")
        for key_id, key in keys.items():
            if not key_id or len(key_id) > 32:
                raise ValueError("key ids are 1–32 characters")
            try:
                decode_key(key.get_secret_value(), min_bytes=KEY_BYTES)
            except ValueError as exc:
                raise ValueError(f"key {key_id!r}: {exc}") from None
        return keys

    @field_validator("pii_hmac_key")
    @classmethod
    def _hmac_key_is_strong(cls, key: SecretStr) -> SecretStr:
        try:
            decode_key(key.get_secret_value(), min_bytes=MIN_HMAC_KEY_BYTES, exact=False)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return key

    @field_validator("ratios")
    @classmethod
    def _ratios_cover_every_age_class(cls, ratios: dict[str, int]) -> dict[str, int]:
        if set(ratios) != set(DEFAULT_RATIOS) or any(r < 1 for r in ratios.values()):
            raise ValueError("one ratio ≥ 1 per age class: infant, toddler, preschool")
        return ratios

    @model_validator(mode="after")
    def _active_key_exists(self) -> WorkforceSettings:
        if self.pii_active_key_id not in self.pii_keys:
            raise ValueError("pii_active_key_id must name one of pii_keys")
        return self

    def cipher(self) -> PiiCipher:
        return PiiCipher(
            {k: decode_key(v.get_secret_value()) for k, v in self.pii_keys.items()}, self.pii_active_key_id
        )

    def hasher(self) -> KeyedHasher:
        return KeyedHasher(decode_key(self.pii_hmac_key.get_secret_value(), exact=False))
