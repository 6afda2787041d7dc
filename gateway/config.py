from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from gateway.balancer import split_bases
from gateway.checkpoints import load_signing_key
from gateway.deprecations import DEPRECATED, Deprecated
from gateway.hashing import Argon2Cost
from shared.jsonlimits import DEFAULT_MAX_JSON_DEPTH
from shared.observability import MetricsListenerSettings
from shared.pii import MIN_HMAC_KEY_BYTES, decode_key
from shared.settings import DatabaseSettings, PersonalDataKeys, with_password

# Scope families: a route is reachable with any scope of its family (the service checks the exact one).
REGISTRY = ["registry:read", "registry:write", "registry:review"]
WORKFORCE = ["workforce:read", "workforce:write", "workforce:ban", "workforce:pii"]
MONITORING = ["monitoring:ingest", "monitoring:read", "monitoring:write", "monitoring:pii"]
GUIDANCE = ["guidance:read", "guidance:write", "guidance:pii", "parent"]
EVENTS = ["events:read", "events:subscribe"]  # the feed, and webhooks (the delivery service)


class RouteRule(BaseModel):
    """One line of the route table: a path pattern, the service that serves it, and the scopes of
    which a caller needs at least one (`Identity.has_scope`: the admin client passes with the
    oversight reads its `admin` scope implies). `public` methods need no token."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pattern: str = Field(min_length=2)
    service: str
    scopes: list[str] = Field(default_factory=list)
    public_methods: list[str] = Field(default_factory=list)


DEFAULT_ROUTES: list[RouteRule] = [
    # Ordered: the first match wins, so the facility sub-resources of other services come first.
    # The yearly figures behind /v1/indicators are also open to indicator readers.
    RouteRule(
        pattern=r"^/v1/monitoring/figures$", service="monitoring", scopes=[*MONITORING, "indicators:read"]
    ),
    RouteRule(pattern=r"^/v1/guidance/figures$", service="guidance", scopes=[*GUIDANCE, "indicators:read"]),
    # /v1/facilities/{id}/profile and /device-credentials never reach this table: the gateway answers
    # them itself (gateway/routes.py, is_own).
    RouteRule(pattern=r"^/v1/facilities/[^/]+/staffing$", service="workforce", scopes=WORKFORCE),
    RouteRule(pattern=r"^/v1/facilities/[^/]+/risk$", service="monitoring", scopes=MONITORING),
    RouteRule(pattern=r"^/v1/(divisions|public/.*)$", service="registry", public_methods=["GET", "HEAD"]),
    RouteRule(pattern=r"^/v1/(facilities|coverage)(/|$)", service="registry", scopes=REGISTRY),
    # HEALTH's figures are also open to indicator readers; the quality framework to registry readers.
    RouteRule(pattern=r"^/v1/health/figures$", service="registry", scopes=[*REGISTRY, "indicators:read"]),
    RouteRule(pattern=r"^/v1/quality(/|$)", service="registry", scopes=REGISTRY),
    RouteRule(
        pattern=r"^/v1/(subsidy-rates|subsidy-lists|subsidy-lines)(/|$)", service="registry", scopes=REGISTRY
    ),
    RouteRule(
        pattern=r"^/v1/(practitioners|employments|bans|ban-checks|compliance)(/|$)",
        service="workforce",
        scopes=WORKFORCE,
    ),
    # Complaints: anyone may lodge one and follow it with its reference and code, no token needed
    # (the anonymous rate limit applies); parents and the districts and bureaus do the rest.
    RouteRule(
        pattern=r"^/v1/complaints(/lookup)?$",
        service="monitoring",
        scopes=[*MONITORING, "parent"],
        public_methods=["POST", "GET"],
    ),
    RouteRule(
        pattern=r"^/v1/complaints/[^/]+(/[a-z]+)?$", service="monitoring", scopes=[*MONITORING, "parent"]
    ),
    # Parents report incidents from the app (and read back their own reports).
    RouteRule(pattern=r"^/v1/incidents(/[^/]+)?$", service="monitoring", scopes=[*MONITORING, "parent"]),
    RouteRule(
        pattern=(
            r"^/v1/(cameras|cctv-events|alerts|incidents|inspectors|inspection-plans|inspections|risk"
            r"|monitoring)(/|$)"
        ),
        service="monitoring",
        scopes=MONITORING,
    ),
    RouteRule(
        pattern=r"^/v1/(stations|places|families|home-visits|sessions|resources|guidance)(/|$)",
        service="guidance",
        scopes=GUIDANCE,
    ),
    # Parents read their own family's events on the feed; webhooks are for clients (events:subscribe).
    RouteRule(pattern=r"^/v1/events(/|$)", service="delivery", scopes=[*EVENTS, "parent"]),
    RouteRule(pattern=r"^/v1/subscriptions(/|$)", service="delivery", scopes=EVENTS),
    # Spreadsheets in: each kind to the service that owns its records.
    RouteRule(pattern=r"^/v1/imports/roster$", service="workforce", scopes=WORKFORCE),
    RouteRule(pattern=r"^/v1/imports/facilities$", service="registry", scopes=REGISTRY),
]


class RateLimit(BaseModel):
    """A token bucket: `rate` requests per second on average, bursts of up to `burst`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: float = Field(gt=0, le=1_000_000)
    burst: int = Field(ge=1, le=10_000_000)


DEFAULT_RATE_LIMITS: dict[str, RateLimit] = {
    "bureau": RateLimit(rate=50, burst=200),
    "district": RateLimit(rate=30, burst=120),
    "operator": RateLimit(rate=10, burst=60),
    "app": RateLimit(rate=200, burst=800),  # one app client speaks for many parents
    "admin": RateLimit(rate=50, burst=200),
    "parent": RateLimit(rate=5, burst=30),
    "public": RateLimit(rate=20, burst=60),  # anonymous callers, per address
}


class SignInLimits(BaseModel):
    """Buckets of failed sign-ins (wrong client secrets and parents' passwords; a success spends
    nothing), looked at before any argon2 work. Keyed three ways: by address, by account and address,
    and by account alone. The account-wide bucket refills faster and holds more than one address's
    bucket at one account (`per_account` > `per_account_address`, checked below), so an attacker on
    one address can never drain it and lock out the account's owner elsewhere; only many addresses at
    once can, and that is what it is for (a distributed guess at one secret). A pair that signed in
    recently is held to its own bucket only (SignInGuard)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    per_address: RateLimit = RateLimit(rate=0.1, burst=10)
    per_account_address: RateLimit = RateLimit(rate=1 / 60, burst=5)
    per_account: RateLimit = RateLimit(rate=0.1, burst=20)

    @model_validator(mode="after")
    def _one_address_cannot_drain_an_account(self) -> SignInLimits:
        if self.per_account.rate <= self.per_account_address.rate:
            raise ValueError("per_account.rate must exceed per_account_address.rate")
        if self.per_account.burst <= self.per_account_address.burst:
            raise ValueError("per_account.burst must exceed per_account_address.burst")
        return self


# What meets each of the plan's indicators (`/v1/indicators`, DOMAIN.md's table), by indicator id:
# a count or a share (0–1), or a dict of them for a compound target. The defaults are the plan's;
# a configured dict overrides the indicators it names.
Target = int | float | dict[str, int | float] | None  # None: the plan gives no number
PLAN_TARGETS: dict[str, Target] = {
    "new_inclusive_points": 50,
    "inclusive_town_coverage": 0.85,
    "central_street_coverage": 1.0,
    "kindergarten_nursery_share": 0.5,
    "guidance_station_coverage": 1.0,
    "child_friendly_sites": 50,
    "development_bases": {"districts": 16, "bases": 18},
    "certified_rate": 1.0,
    "training_compliance": 1.0,
    "annual_onsite_inspection": 1.0,
    "newborn_home_visits": 1.0,
    "offline_guidance": 1.0,
    "guidance_events": {"city": 2, "district": 16},
    "observation_room_pilots": 16,
    "handbook_coverage": None,  # T19 asks for full coverage of resident families, with no figure
}


class GatewaySettings(PersonalDataKeys, DatabaseSettings, MetricsListenerSettings):
    """`GATEWAY_PII_*`: the keys of parents' phone numbers (PersonalDataKeys: same names and checks as
    every service's); `GATEWAY_DATABASE_URL` and `_PASSWORD` (DatabaseSettings). Any variable may be
    given as a file instead, `<VAR>_FILE` (shared/settings.py)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    service_name: str = "gateway"
    # Ed25519 private key (PEM) that signs the identity forwarded to the services.
    internal_signing_key: SecretStr = Field(
        validation_alias=AliasChoices("CRADLE_INTERNAL_SIGNING_KEY", "internal_signing_key")
    )
    # Client tokens: HS256 keys by key id; the active one signs, all of them verify (rotation).
    jwt_keys: dict[str, SecretStr]
    jwt_active_kid: str
    token_ttl_seconds: int = Field(default=900, ge=60, le=86400)
    # argon2id cost for client secrets and parents' passwords (`GATEWAY_SECRET_HASHING='{"time_cost": 3,
    # "memory_kib": 65536, "parallelism": 4}'`); a changed cost applies to secrets set from then on.
    secret_hashing: Argon2Cost = Field(default_factory=Argon2Cost)
    # After a rotation the previous secret keeps working this long, so a client can roll over.
    secret_rotation_grace_seconds: int = Field(default=86400, ge=0, le=30 * 86400)
    # Parents: this many wrong passwords in a row lock the account for `parent_lockout_seconds`.
    parent_max_failures: int = Field(default=5, ge=1)
    parent_lockout_seconds: int = Field(default=900, ge=1)
    # `GATEWAY_SIGN_IN_LIMITS='{"per_address": {"rate": 0.1, "burst": 10}}'`: failed sign-ins allowed
    # (429 with Retry-After past them). Behind a load balancer, uvicorn must trust its X-Forwarded-For
    # (FORWARDED_ALLOW_IPS), or every caller shares the balancer's address and its buckets.
    sign_in_limits: SignInLimits = Field(default_factory=SignInLimits)
    # An (account, address) pair that signed in within this long is known: its argon2 runs on a lane of
    # its own and only its own failures can refuse it. At most `sign_in_known_max_pairs` are kept in
    # memory (the oldest forgotten first); with REDIS_URL they are kept in Redis too, for every replica.
    sign_in_known_seconds: int = Field(default=30 * 86400, ge=60, le=366 * 86400)
    sign_in_known_max_pairs: int = Field(default=100_000, ge=1, le=10_000_000)
    # The known lane: this many argon2 threads, at most `sign_in_known_queue` more waiting (then 503).
    sign_in_known_workers: int = Field(default=2, ge=1, le=64)
    sign_in_known_queue: int = Field(default=32, ge=0, le=10_000)
    # The general lane (every other pair, and registrations): this many argon2 threads, a short queue
    # holding at most one attempt per address, the rest refused at once (503 with Retry-After), so a
    # flood of guesses never queues hashing ahead of a client. Its threads run this much nicer (Linux;
    # 0: not at all), so while they hash, the known lane and the event loop keep the cores (measured
    # in bench/token_under_attack.py: 19 kept a known client's p99 closer to its baseline than 10).
    sign_in_hash_workers: int = Field(default=2, ge=1, le=64)
    sign_in_hash_queue: int = Field(default=4, ge=0, le=10_000)
    sign_in_hash_nice: int = Field(default=19, ge=0, le=19)
    # A disabled client is refused within this many seconds on every gateway replica.
    client_cache_seconds: float = Field(default=3.0, ge=0, le=60)
    # The signed internal identity lives 60 s; one signature is reused per caller for this long.
    identity_cache_seconds: float = Field(default=10.0, ge=0, le=30)

    # Each service's base URL, or its replicas' URLs comma-separated (gateway/balancer.py).
    registry_url: str = "http://127.0.0.1:8001"
    workforce_url: str = "http://127.0.0.1:8002"
    monitoring_url: str = "http://127.0.0.1:8003"
    guidance_url: str = "http://127.0.0.1:8004"
    delivery_url: str = "http://127.0.0.1:8005"
    routes: list[RouteRule] = Field(default_factory=lambda: list(DEFAULT_ROUTES))
    upstream_timeout_seconds: float = Field(default=30.0, gt=0)
    # A list answered as a file may pause longer between chunks: an XLSX is assembled before it is sent.
    upstream_file_timeout_seconds: float = Field(default=600.0, gt=0)
    upstream_connect_timeout_seconds: float = Field(default=2.0, gt=0)
    # A replica that refused a connection is passed over this long (the others take its requests).
    upstream_eject_seconds: float = Field(default=5.0, ge=0, le=300)
    upstream_max_connections: int = Field(default=512, ge=1)
    # Below uvicorn's 5 s keep-alive timeout, so the gateway drops idle connections before the service.
    upstream_keepalive_seconds: float = Field(default=4.0, gt=0)
    # `native` (asyncio + httptools, the fast path) or `httpx`; https services always use httpx.
    upstream_client: Literal["native", "httpx"] = "native"
    retry_after_seconds: int = Field(default=5, ge=1)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1)
    # The gateway's own JSON paths refuse bodies nested deeper (422); services check what they receive.
    max_json_depth: int = Field(default=DEFAULT_MAX_JSON_DEPTH, ge=2, le=256)
    # Each service's part of a composite view (profile, indicators) waits at most this long.
    view_part_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    plan_targets: dict[str, Target] = Field(default_factory=lambda: dict(PLAN_TARGETS))

    # Deprecated /v1 paths and fields (gateway/deprecations.py, docs/API-CHANGES.md): the code's own
    # declarations unless set, e.g. `GATEWAY_DEPRECATIONS='[{"path": "/v1/…", "since": "…",
    # "sunset": "…", "link": "…"}]'`.
    deprecations: list[Deprecated] = Field(default_factory=lambda: list(DEPRECATED))
    rate_limits: dict[str, RateLimit] = Field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    redis_url: str | None = Field(default=None, validation_alias=AliasChoices("REDIS_URL", "redis_url"))
    # Redis's password apart from its URL, so it can come from a file (`REDIS_PASSWORD_FILE`).
    redis_password: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("REDIS_PASSWORD", "redis_password")
    )
    redis_key_prefix: str = "cradle:ratelimit:"

    audit_retention_days: float = Field(default=180, gt=0)
    audit_flush_seconds: float = Field(default=0.2, gt=0, le=10)
    audit_batch_size: int = Field(default=500, ge=1, le=50_000)
    # Past this many unwritten records the gateway refuses calls (503): no call without evidence.
    audit_max_pending: int = Field(default=100_000, ge=1)
    # Keys every audit record's hash (HMAC-SHA256, base64 of ≥ 32 bytes): without it, a rewritten
    # record cannot be given a valid hash, even by someone who can write the database.
    audit_hmac_key: SecretStr
    # Ed25519 private key (PEM) that signs the audit checkpoints; its own key, not the identity key.
    audit_signing_key: SecretStr
    # A signed checkpoint of the chain head goes to JetStream this often: the window in which a
    # removed tail of the log can go unnoticed.
    audit_checkpoint_seconds: float = Field(default=30.0, gt=0, le=60)
    # Where checkpoints go: stream `<NAMESPACE>_GATEWAY`, subject `<namespace>.gateway.audit.checkpoint`.
    nats_url: str = Field(
        default="nats://127.0.0.1:4222", validation_alias=AliasChoices("NATS_URL", "nats_url")
    )
    event_namespace: str = Field(
        default="cradle", validation_alias=AliasChoices("CRADLE_EVENT_NAMESPACE", "event_namespace")
    )
    nats_replicas: int = Field(
        default=1, ge=1, le=5, validation_alias=AliasChoices("CRADLE_NATS_REPLICAS", "nats_replicas")
    )
    # The gateway's own NATS credential (`.creds`); it may publish `<namespace>.gateway.>` only.
    nats_creds: Path | None = Field(default=None, validation_alias=AliasChoices("NATS_CREDS", "nats_creds"))
    # The CA (PEM) of the NATS servers' certificates, for `tls://` URLs (unset: the system's CAs).
    nats_tls_ca: Path | None = Field(
        default=None, validation_alias=AliasChoices("NATS_TLS_CA", "nats_tls_ca")
    )
    # Device credentials (gateway/device_credentials.py), both from `cradle nats init`: the issuer's
    # keys (`device_issuer.json`) and the system-account `claims.creds` that pushes revocations. Unset:
    # the device-credential routes answer 503 (the list still works).
    device_issuer_file: Path | None = None
    nats_claims_creds: Path | None = None
    openapi_refresh_seconds: float = Field(default=60.0, ge=1)

    log_format: str = Field(default="json", validation_alias=AliasChoices("CRADLE_LOG_FORMAT", "log_format"))
    log_level: str = Field(default="INFO", validation_alias=AliasChoices("CRADLE_LOG_LEVEL", "log_level"))

    @field_validator("plan_targets")
    @classmethod
    def _every_indicator_has_a_target(cls, targets: dict[str, Target]) -> dict[str, Target]:
        unknown = sorted(set(targets) - set(PLAN_TARGETS))
        if unknown:
            raise ValueError(f"no such indicator: {', '.join(unknown)}")
        return {**PLAN_TARGETS, **targets}

    @field_validator("jwt_keys")
    @classmethod
    def _keys_are_strong(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        if not keys:
            raise ValueError("at least one signing key is needed")
        for kid, secret in keys.items():
            if len(secret.get_secret_value()) < 32:
                raise ValueError(f"key {kid!r} is shorter than 32 characters")
        return keys

    @field_validator("audit_hmac_key")
    @classmethod
    def _audit_key_is_strong(cls, key: SecretStr) -> SecretStr:
        try:
            decode_key(key.get_secret_value(), min_bytes=MIN_HMAC_KEY_BYTES, exact=False)
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return key

    @field_validator("audit_signing_key")
    @classmethod
    def _audit_signing_key_is_ed25519(cls, key: SecretStr) -> SecretStr:
        try:
            load_signing_key(key.get_secret_value())
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return key

    @field_validator("event_namespace")
    @classmethod
    def _namespace_is_a_subject_token(cls, value: str) -> str:
        if not value or not value.replace("_", "").replace("-", "").isalnum():
            raise ValueError("must be one NATS subject token (letters, digits, - or _)")
        return value

    @field_validator("rate_limits")
    @classmethod
    def _over_the_defaults(cls, limits: dict[str, RateLimit]) -> dict[str, RateLimit]:
        # `GATEWAY_RATE_LIMITS='{"operator": {...}}'` changes one kind and keeps the others.
        return {**DEFAULT_RATE_LIMITS, **limits}

    @model_validator(mode="after")
    def _consistent(self) -> GatewaySettings:
        if self.jwt_active_kid not in self.jwt_keys:
            raise ValueError("jwt_active_kid must name one of jwt_keys")
        unknown = sorted({r.service for r in self.routes} - set(self.upstreams()))
        empty = sorted(name for name, bases in self.upstreams().items() if not bases)
        if empty:
            raise ValueError(f"no URL for {', '.join(empty)}")
        if unknown:
            raise ValueError(f"routes name unknown services: {', '.join(unknown)}")
        if (self.device_issuer_file is None) != (self.nats_claims_creds is None):
            # Issuing without the power to revoke would hand out credentials no one can take back.
            raise ValueError("set both GATEWAY_DEVICE_ISSUER_FILE and GATEWAY_NATS_CLAIMS_CREDS, or neither")
        return self

    @model_validator(mode="after")
    def _redis_password_into_url(self) -> GatewaySettings:
        if self.redis_url and self.redis_password is not None:
            self.redis_url = with_password(self.redis_url, self.redis_password.get_secret_value())
        return self

    def upstreams(self) -> dict[str, str]:
        """Service → its replicas' base URLs, comma-separated (one URL: one replica)."""
        given = {
            "registry": self.registry_url,
            "workforce": self.workforce_url,
            "monitoring": self.monitoring_url,
            "guidance": self.guidance_url,
            "delivery": self.delivery_url,
        }
        return {name: ",".join(split_bases(value)) for name, value in given.items()}
