"""Secrets are hashed at the production cost unless a deployment says otherwise; the suite runs cheap."""

from __future__ import annotations

from argon2 import extract_parameters

from gateway.config import GatewaySettings
from gateway.hashing import Argon2Cost, SecretHasher


def test_production_cost_is_rfc_9106_argon2id() -> None:
    cost = GatewaySettings.model_fields["secret_hashing"].default_factory()  # type: ignore[misc]
    assert cost == Argon2Cost(time_cost=3, memory_kib=65_536, parallelism=4)
    hashed = SecretHasher(cost).hash("s3cret")
    parameters = extract_parameters(hashed)
    assert (parameters.type.name, parameters.time_cost, parameters.memory_cost, parameters.parallelism) == (
        "ID",
        3,
        65_536,
        4,
    )


def test_verify_refuses_wrong_secret_malformed_hash_and_no_account() -> None:
    hasher = SecretHasher(Argon2Cost(time_cost=1, memory_kib=8, parallelism=1))
    hashed = hasher.hash("right")
    assert hasher.verify(hashed, "right")
    assert not hasher.verify(hashed, "wrong")
    assert not hasher.verify("not-a-hash", "right")
    assert not hasher.verify(None, "right")
