"""Settings common to every service; each service subclasses with its own env prefix."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import POOL_MAX_OVERFLOW, POOL_SIZE, POOL_TIMEOUT_SECONDS, make_engine
from shared.jsonlimits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_JSON_DEPTH
from shared.observability import MetricsListenerSettings
from shared.pii import KEY_BYTES, MIN_HMAC_KEY_BYTES, KeyedHasher, PiiCipher, decode_key

FILE_SUFFIX = "_FILE"


def read_secret_file(variable: str, path: str) -> str:
    """The content of a secret file named by `<variable>_FILE`, without its final line break (as the
    postgres image and `$(cat file)` read them)."""
    try:
        return Path(path).read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SettingsError(f"{variable}{FILE_SUFFIX}={path}: cannot read it ({reason})") from None


def env_or_file(variable: str) -> str | None:
    """`<variable>` from the environment, or the content of the file `<variable>_FILE` names."""
    value, path = os.environ.get(variable), os.environ.get(variable + FILE_SUFFIX)
    if value is not None and path is not None:
        raise SettingsError(f"{variable} and {variable}{FILE_SUFFIX} are both set: keep one")
    return read_secret_file(variable, path) if path is not None else value


def with_password(url: str, password: str | None) -> str:
    """The URL (a database's, Redis's) with this password in it, escaped as URLs need, so any
    character goes; a password already in the URL is replaced."""
    if not password:
        return url
    parts = urlsplit(url)
    user = parts.username or ""  # as written, still escaped
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


class EnvOrFileSettingsSource(EnvSettingsSource):
    """Environment variables, where `<VAR>_FILE=/run/secrets/…` stands for `<VAR>`: the value is that
    file's content. Secrets then live in files (compose or Kubernetes secrets) rather than in the
    environment, which `docker inspect` and child processes see. Setting both is refused. The files
    are read here, when the source is made, so an error reaches the caller as it is written (pydantic-
    settings would wrap one raised while fields are read into a message that names neither)."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        suffix = FILE_SUFFIX if self.case_sensitive else FILE_SUFFIX.lower()
        variables = dict(self.env_vars)
        names = {
            env_name
            for field_name, field in settings_cls.model_fields.items()
            for _key, env_name, _complex in self._extract_field_info(field, field_name)
        }
        for env_name in sorted(names):
            path = self.env_vars.get(env_name + suffix)
            if path is not None:
                variable = env_name.upper()
                if self.env_vars.get(env_name) is not None:
                    raise SettingsError(f"{variable} and {variable}{FILE_SUFFIX} are both set: keep one")
                variables[env_name] = read_secret_file(variable, path)
        self.env_vars = variables


class CradleSettings(BaseSettings):
    """Every settings class of the project: read from the environment, with `<VAR>_FILE` for secrets."""

    model_config = SettingsConfigDict(extra="ignore", env_file=None)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, EnvOrFileSettingsSource(settings_cls), dotenv_settings, file_secret_settings


class DatabaseSettings(CradleSettings):
    """A process's database: `<PREFIX>_DATABASE_URL` without a secret in it, and the role's password
    apart (`<PREFIX>_DATABASE_PASSWORD`, or `_FILE`), which is put into the URL escaped."""

    database_url: str
    database_password: SecretStr | None = None
    # The database pool (shared/db.py make_engine): a burst beyond size + overflow queues for up to
    # the timeout, which stays below the gateway's upstream timeout (30 s) so the caller gets an answer.
    # Size them to PostgreSQL's max_connections (100 by default): every process of every replica
    # may hold size + overflow at a peak.
    db_pool_size: int = Field(default=POOL_SIZE, ge=1, le=200)
    db_max_overflow: int = Field(default=POOL_MAX_OVERFLOW, ge=0, le=200)
    db_pool_timeout_seconds: float = Field(default=POOL_TIMEOUT_SECONDS, gt=0, le=60)

    @model_validator(mode="after")
    def _password_into_url(self) -> DatabaseSettings:
        if self.database_password is not None:
            self.database_url = with_password(self.database_url, self.database_password.get_secret_value())
        return self

    def engine(self) -> AsyncEngine:
        """A new engine on this database, its pool sized by these settings (each process's one)."""
        return make_engine(
            self.database_url,
            pool_size=self.db_pool_size,
            max_overflow=self.db_max_overflow,
            pool_timeout=self.db_pool_timeout_seconds,
        )


class ServiceSettings(DatabaseSettings, MetricsListenerSettings):
    """Per-service settings. `REGISTRY_DATABASE_URL` etc. come from the subclass's env prefix;
    the cross-service ones (`NATS_URL`, the internal identity keys) are read unprefixed."""

    service_name: str = "service"
    nats_url: str = Field(
        default="nats://127.0.0.1:4222", validation_alias=AliasChoices("NATS_URL", "nats_url")
    )
    # This process's NATS credential (a `.creds` file: `cradle nats init` writes one per service).
    # Unset: an anonymous connection, which only a development server accepts.
    nats_creds: Path | None = Field(default=None, validation_alias=AliasChoices("NATS_CREDS", "nats_creds"))
    # The CA (PEM) that signed the NATS servers' certificates, for `tls://` URLs; unset, the
    # system's CAs verify them.
    nats_tls_ca: Path | None = Field(
        default=None, validation_alias=AliasChoices("NATS_TLS_CA", "nats_tls_ca")
    )
    # Subjects are `<event_namespace>.<service>.<entity>.<verb>`; tests use their own namespace so
    # parallel runs on one NATS server never see each other's events.
    event_namespace: str = Field(
        default="cradle", validation_alias=AliasChoices("CRADLE_EVENT_NAMESPACE", "event_namespace")
    )
    nats_replicas: int = Field(
        default=1, ge=1, le=5, validation_alias=AliasChoices("CRADLE_NATS_REPLICAS", "nats_replicas")
    )
    # The gateway signs each forwarded request with its Ed25519 key; services hold only the public key.
    internal_verify_key: SecretStr = Field(
        validation_alias=AliasChoices("CRADLE_INTERNAL_VERIFY_KEY", "internal_verify_key")
    )
    log_format: str = Field(default="json", validation_alias=AliasChoices("CRADLE_LOG_FORMAT", "log_format"))
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("CRADLE_LOG_LEVEL", "log_level"))

    outbox_poll_seconds: float = 2.0
    outbox_batch_size: int = 256
    outbox_keep_sent_days: float = 7.0
    consumer_max_deliver: int = 5
    consumer_ack_wait_seconds: float = 30.0
    consumer_backoff_seconds: list[float] = [1.0, 5.0, 15.0, 60.0]
    publish_timeout_seconds: float = 2.0
    # Request bodies: larger is a 413, JSON nested deeper a 422 (shared/jsonlimits.py).
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1024)
    max_json_depth: int = Field(default=DEFAULT_MAX_JSON_DEPTH, ge=2, le=256)

    @field_validator("event_namespace")
    @classmethod
    def _namespace_is_a_subject_token(cls, value: str) -> str:
        if not value or not value.replace("_", "").replace("-", "").isalnum():
            raise ValueError("must be one NATS subject token (letters, digits, - or _)")
        return value

    @field_validator("internal_verify_key")
    @classmethod
    def _verify_key_is_pem(cls, value: SecretStr) -> SecretStr:
        if "PUBLIC KEY" not in value.get_secret_value():
            raise ValueError("must be a PEM public key (set by `cradle up`, or from your secret store)")
        return value


class PersonalDataKeys(CradleSettings):
    """The keys of a process that holds personal data (ID or phone numbers), with no defaults — a
    deployment brings its own (`cradle up` generates them). `<PREFIX>_PII_KEYS='{"k2026a": "<base64
    of 32 bytes>"}'`: every listed key decrypts, the active one encrypts, so a key is rotated by
    adding one and making it active. `<PREFIX>_PII_HMAC_KEY` (base64 of ≥ 32 bytes) keys the lookup
    hashes: changing it orphans every one of them."""

    pii_keys: dict[str, SecretStr]
    pii_active_key_id: str
    pii_hmac_key: SecretStr

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
    def _active_key_exists(self) -> PersonalDataKeys:
        if self.pii_active_key_id not in self.pii_keys:
            raise ValueError("pii_active_key_id must name one of pii_keys")
        return self

    def cipher(self) -> PiiCipher:
        return PiiCipher(
            {k: decode_key(v.get_secret_value()) for k, v in self.pii_keys.items()}, self.pii_active_key_id
        )

    def hasher(self) -> KeyedHasher:
        return KeyedHasher(decode_key(self.pii_hmac_key.get_secret_value(), exact=False))


class PersonalDataSettings(PersonalDataKeys, ServiceSettings):
    """A service that holds personal data: its settings and its keys (PersonalDataKeys)."""
