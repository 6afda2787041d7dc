from __future__ import annotations

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from shared.pii import KEY_BYTES, MIN_HMAC_KEY_BYTES, KeyedHasher, PiiCipher, decode_key
from shared.settings import ServiceSettings


class GuidanceSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="GUIDANCE_", extra="ignore")

    service_name: str = "guidance"

    # Guardians' phone numbers: no default keys, a deployment brings its own (`cradle up` generates
    # them). GUIDANCE_PII_KEYS='{"g2026a": "<base64 of 32 bytes>"}'; every listed key decrypts, the
    # active one encrypts, so a key is rotated by adding a new one and making it active.
    pii_keys: dict[str, SecretStr]
    pii_active_key_id: str
    # GUIDANCE_PII_HMAC_KEY: base64 of ≥ 32 bytes; keys the phone and link-code lookup hashes.
    pii_hmac_key: SecretStr

    # The plan's targets and the service's rules (defaults named once).
    offline_sessions_target: int = Field(default=6, ge=1)  # §2(4): ≥ 6 offline sessions a year
    link_code_days: int = Field(default=30, ge=1)  # a family's link code expires after this
    link_attempts_per_hour: int = Field(default=10, ge=1)  # wrong codes per parent before a 429

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

    @model_validator(mode="after")
    def _active_key_exists(self) -> GuidanceSettings:
        if self.pii_active_key_id not in self.pii_keys:
            raise ValueError("pii_active_key_id must name one of pii_keys")
        return self

    def cipher(self) -> PiiCipher:
        return PiiCipher(
            {k: decode_key(v.get_secret_value()) for k, v in self.pii_keys.items()}, self.pii_active_key_id
        )

    def hasher(self) -> KeyedHasher:
        return KeyedHasher(decode_key(self.pii_hmac_key.get_secret_value(), exact=False))
