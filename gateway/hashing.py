"""Secrets and passwords hashed with argon2id, at a cost that is a setting (tests run cheap; one
test pins the production parameters)."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel, ConfigDict, Field


class Argon2Cost(BaseModel):
    """argon2id parameters; the defaults are RFC 9106's second recommendation (argon2-cffi's own)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_cost: int = Field(default=3, ge=1, le=20)
    memory_kib: int = Field(default=65_536, ge=8, le=4 * 1024 * 1024)
    parallelism: int = Field(default=4, ge=1, le=64)


class SecretHasher:
    """Built once in the gateway's lifespan from `GATEWAY_SECRET_HASHING`."""

    def __init__(self, cost: Argon2Cost) -> None:
        self.cost = cost
        self._argon2 = PasswordHasher(
            time_cost=cost.time_cost, memory_cost=cost.memory_kib, parallelism=cost.parallelism
        )
        # Verifying against this keeps an unknown account as slow as a wrong secret (no timing oracle).
        self._dummy = self._argon2.hash(secrets.token_urlsafe(16))

    def hash(self, secret: str) -> str:
        return self._argon2.hash(secret)

    def verify(self, secret_hash: str | None, secret: str) -> bool:
        """False for a wrong secret, a malformed hash, or no hash at all (then at the same cost)."""
        try:
            return self._argon2.verify(secret_hash if secret_hash is not None else self._dummy, secret) and (
                secret_hash is not None
            )
        except (VerificationError, InvalidHashError):
            return False
