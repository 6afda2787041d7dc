"""Sign-in under attack: attempts limited before any secret is checked, a legitimate client on
another address still served, argon2 work bounded, failed attempts audited under the id tried."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx
import pytest
from httpx import ASGITransport

from gateway.config import RateLimit, SignInLimits
from gateway.ratelimit import LocalLimiter, SignInGuard
from shared.errors import ServiceUnavailable
from tests.conftest import ADMIN_SECRET
from tests.gateway.conftest import start_gateway
from tests.support import DatabaseFactory

TIGHT = {
    "per_address": {"rate": 0.01, "burst": 8},
    "per_account_address": {"rate": 0.01, "burst": 3},
    "per_account": {"rate": 0.02, "burst": 6},
}


def token_form(client_id: str, secret: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}


def from_address(app: Any, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=ASGITransport(app=app, client=(address, 5000)), base_url="http://gateway")


async def test_guesses_are_refused_before_argon2_and_the_owner_elsewhere_is_served(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    async with start_gateway(databases=databases, keys=keys, sign_in_limits=TIGHT) as gw:
        hasher = gw.app.state.hasher
        checks = 0
        real_verify = hasher.verify

        def counting_verify(secret_hash: str | None, secret: str) -> bool:
            nonlocal checks
            checks += 1
            return real_verify(secret_hash, secret)

        hasher.verify = counting_verify
        async with from_address(gw.app, "203.0.113.9") as attacker:
            codes = [
                (await attacker.post("/v1/auth/token", data=token_form("admin", f"guess-{i}"))).status_code
                for i in range(6)
            ]
            assert codes == [401, 401, 401, 429, 429, 429]
            assert checks == 3  # the refused three cost no argon2
            refused = await attacker.post("/v1/auth/token", data=token_form("admin", "guess"))
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["status"] == 429 and int(refused.headers["retry-after"]) >= 1
            # Other accounts from the same address: its own bucket runs dry too.
            others = [
                (await attacker.post("/v1/auth/token", data=token_form(f"ghost-{i}", "x"))).status_code
                for i in range(6)
            ]
            assert others[-1] == 429
        async with from_address(gw.app, "198.51.100.20") as owner:
            served = await owner.post("/v1/auth/token", data=token_form("admin", ADMIN_SECRET))
            assert served.status_code == 200, served.text


async def test_a_failed_token_attempt_is_audited_under_the_client_id_tried(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    async with start_gateway(databases=databases, keys=keys) as gw:
        secret = "not-the-secret-5d1f"
        failed = await gw.client.post("/v1/auth/token", data=token_form("operator-abc123", secret))
        assert failed.status_code == 401
        await gw.audit_settled()
        audit = await gw.client.get(
            "/v1/audit", params={"client_id": "operator-abc123"}, headers=await gw.admin()
        )
        records = audit.json()["items"]
        assert [(r["path"], r["status"], r["client_kind"]) for r in records] == [
            ("/v1/auth/token", 401, "public")
        ]
        assert secret not in audit.text


async def test_argon2_work_is_bounded_and_the_excess_refused_at_once() -> None:
    guard = SignInGuard(
        LocalLimiter(),
        SignInLimits(per_account=RateLimit(rate=2, burst=60)),
        workers=1,
        queue=1,
    )
    release = threading.Event()
    try:
        running = [asyncio.create_task(guard.run(release.wait, 10)) for _ in range(2)]
        await asyncio.sleep(0.05)
        assert guard.in_flight == 2
        started = asyncio.get_running_loop().time()
        with pytest.raises(ServiceUnavailable):
            await guard.run(release.wait, 10)
        assert asyncio.get_running_loop().time() - started < 0.05  # refused, not queued
        release.set()
        assert await asyncio.gather(*running) == [True, True]
        assert guard.in_flight == 0
    finally:
        release.set()
        guard.close()
