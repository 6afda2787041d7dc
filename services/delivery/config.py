from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import ServiceSettings


class DeliverySettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="DELIVERY_", extra="ignore")

    service_name: str = "delivery"

    # Receivers. Only https:// unless this allows http://127.0.0.1 (tests, demos).
    allow_http_loopback: bool = False
    # Private, loopback and link-local targets are refused unless inside one of these networks
    # (CIDR), checked when subscribing and again, after DNS resolution, on every connection.
    allowed_networks: list[str] = Field(default_factory=list)
    max_subscriptions_per_client: int = Field(default=20, ge=1, le=1000)

    # Sending.
    workers: int = Field(default=64, ge=1, le=1024)  # attempts in flight in this process
    per_subscription_in_flight: int = Field(default=4, ge=1, le=64)  # so one receiver never holds all
    # Leased per subscription at most (by this replica or any): those in flight and those waiting, in
    # this process, for one of its slots, sent as soon as one frees instead of a round later. It sets
    # how much a round records and claims: 32 made rounds twice the size of 16's, each commit writing
    # its index pages once for twice the deliveries (SQLite: 8 % more deliveries a second in five
    # pairs, bench/README.md). One that would wait past its lease for a slot is not sent by this
    # replica (a dead receiver's, at 10 s an attempt): its lease lapses and it is claimed again.
    per_subscription_leased: int = Field(default=32, ge=1, le=1024)
    attempt_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=60)
    lease_seconds: float = Field(default=60.0, gt=0, le=3600)  # a crashed replica's claims come back
    poll_seconds: float = Field(default=1.0, gt=0, le=60)  # other replicas' new work, due retries
    # Claimed a round at most: a round's statements cost much the same for 256 leases as for 1,024, so
    # fewer, larger rounds (SQLite: 6–16 % more deliveries a second, bench/README.md).
    claim_batch: int = Field(default=1024, ge=1, le=10_000)
    # Retries: exponential from the first delay, doubled each time up to the cap, ±50 % jitter.
    retry_first_seconds: float = Field(default=5.0, gt=0)
    retry_max_seconds: float = Field(default=6 * 3600.0, gt=0)
    # A subscription whose every attempt failed for this long is disabled and its owner told.
    disable_after_seconds: float = Field(default=3 * 24 * 3600.0, gt=0)
    # After a secret is rotated, the old one still signs (beside the new one) for this long.
    secret_grace_seconds: float = Field(default=24 * 3600.0, ge=0, le=30 * 24 * 3600.0)

    # The feed.
    stream_heartbeat_seconds: float = Field(default=15.0, gt=0, le=120)
    stream_poll_seconds: float = Field(default=1.0, gt=0, le=60)  # other replicas' events
    stream_max_seconds: float = Field(default=600.0, gt=0, le=24 * 3600.0)  # then the client resumes
    stream_retry_ms: int = Field(default=2000, ge=0, le=600_000)  # the reconnection delay sent to clients
    replay_max_events: int = Field(default=10_000, ge=1, le=1_000_000)
