"""Sign-in under attack: failures (never successes) spend the buckets, and an emptied bucket refuses
before any secret is checked; a legitimate client on another address still served; a pair that
signed in recently served on its own lane while strangers fill the general one (503 past its short
queue, at once); the same across replicas sharing Redis; failed attempts audited under the id tried."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from httpx import ASGITransport

from gateway.sign_in import Lane
from shared.errors import ServiceUnavailable
from tests.conftest import ADMIN_SECRET
from tests.gateway.conftest import Gateway, start_gateway
from tests.gateway.test_ratelimit import REDIS_URL, redis_reachable
from tests.support import DatabaseFactory

TIGHT = {
    "per_address": {"rate": 0.01, "burst": 8},
    "per_account_address": {"rate": 0.01, "burst": 3},
    "per_account": {"rate": 0.02, "burst": 6},
}


def token_form(client_id: str, secret: str) -> dict[str, str]:
    return {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}


def from_address(app: Any, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=ASGITransport(app=app, client=(address, 5000)), base_url="http://gateway"
    )


async def sign_in(client: httpx.AsyncClient, client_id: str, secret: str) -> int:
    return (await client.post("/v1/auth/token", data=token_form(client_id, secret))).status_code


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
            codes = [await sign_in(attacker, "admin", f"guess-{i}") for i in range(6)]
            assert codes == [401, 401, 401, 429, 429, 429]
            assert checks == 3  # the refused three cost no argon2
            refused = await attacker.post("/v1/auth/token", data=token_form("admin", "guess"))
            assert refused.headers["content-type"] == "application/problem+json"
            assert refused.json()["status"] == 429 and int(refused.headers["retry-after"]) >= 1
            # Other accounts from the same address: its own bucket runs dry too.
            others = [await sign_in(attacker, f"ghost-{i}", "x") for i in range(6)]
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


async def test_failures_spend_the_buckets_and_successes_do_not(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    async with start_gateway(databases=databases, keys=keys, sign_in_limits=TIGHT) as gw:
        app = await gw.new_client(name="Parents' app", kind="app", scopes=["guidance:read"])
        client_id, secret = app["client_id"], app["client_secret"]
        async with from_address(gw.app, "198.51.100.20") as office:
            # Far more sign-ins than any bucket holds (8, 3, 6): successes spend nothing.
            for _ in range(12):
                assert await sign_in(office, client_id, secret) == 200
        checks = count_checks(gw)
        async with from_address(gw.app, "203.0.113.7") as guesser:
            codes = [await sign_in(guesser, client_id, f"guess-{i}") for i in range(4)]
            assert codes == [401, 401, 401, 429] and checks() == 3
            # The pair's failures are spent: even the right secret from here waits, unchecked.
            late = await guesser.post("/v1/auth/token", data=token_form(client_id, secret))
            assert late.status_code == 429 and checks() == 3
        async with from_address(gw.app, "203.0.113.8") as accomplice:
            for i in range(3):
                assert await sign_in(accomplice, client_id, f"more-{i}") == 401
        # Two addresses emptied the account's bucket (6): a stranger with the right secret is refused
        # before any check, the office that signed in before is still served.
        async with from_address(gw.app, "192.0.2.50") as newcomer:
            refused = await newcomer.post("/v1/auth/token", data=token_form(client_id, secret))
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
        async with from_address(gw.app, "198.51.100.20") as office:
            assert await sign_in(office, client_id, secret) == 200


def count_checks(gw: Gateway) -> Callable[[], int]:
    """Counts the gateway's argon2 verifications from now on."""
    hasher = gw.app.state.hasher
    real_verify, checks = hasher.verify, [0]

    def counting_verify(secret_hash: str | None, secret: str) -> bool:
        checks[0] += 1
        return real_verify(secret_hash, secret)

    hasher.verify = counting_verify
    return lambda: checks[0]


def hold_slow_guesses(gw: Gateway) -> threading.Event:
    """Verifications of secrets starting `slow-` block until the returned event is set: the general
    lane held by hashes that take as long as the test wants."""
    hasher = gw.app.state.hasher
    real_verify, release = hasher.verify, threading.Event()

    def verify(secret_hash: str | None, secret: str) -> bool:
        if secret.startswith("slow-"):
            release.wait(30)
        return real_verify(secret_hash, secret)

    hasher.verify = verify
    return release


async def started(lane: Lane, *, running: int, waiting: int) -> None:
    deadline = time.monotonic() + 10
    while (lane.running, lane.in_flight - lane.running) != (running, waiting):
        assert time.monotonic() < deadline, (lane.running, lane.in_flight)
        await asyncio.sleep(0.01)


async def test_a_known_pair_is_served_while_strangers_fill_the_general_lane(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    async with start_gateway(
        databases=databases, keys=keys, sign_in_hash_workers=1, sign_in_hash_queue=2
    ) as gw:
        app = await gw.new_client(name="Parents' app", kind="app", scopes=["guidance:read"])
        client_id, secret = app["client_id"], app["client_secret"]
        async with from_address(gw.app, "198.51.100.20") as office:
            assert await sign_in(office, client_id, secret) == 200
        release = hold_slow_guesses(gw)
        general = gw.app.state.sign_in.general
        attackers = [from_address(gw.app, f"203.0.113.{n}") for n in range(1, 5)]
        try:
            held = [
                asyncio.create_task(attackers[0].post("/v1/auth/token", data=token_form(client_id, "slow-1")))
            ]
            await started(general, running=1, waiting=0)
            held.append(
                asyncio.create_task(attackers[1].post("/v1/auth/token", data=token_form(client_id, "slow-2")))
            )
            await started(general, running=1, waiting=1)
            # One waiting attempt per address: the same address again is refused at once (a queued
            # one would wait for the held guesses, which finish only when released below).
            again = await asyncio.wait_for(
                attackers[1].post("/v1/auth/token", data=token_form(client_id, "slow-3")), timeout=15
            )
            assert again.status_code == 503 and again.headers["retry-after"] == "1"
            assert again.headers["content-type"] == "application/problem+json"
            held.append(
                asyncio.create_task(attackers[2].post("/v1/auth/token", data=token_form("ghost", "slow-4")))
            )
            await started(general, running=1, waiting=2)
            # The queue is full: the next stranger is refused at once, nothing queued behind the flood.
            full = await asyncio.wait_for(
                attackers[3].post("/v1/auth/token", data=token_form(client_id, "slow-5")), timeout=15
            )
            assert full.status_code == 503
            # The office that signed in before takes its own lane, the general one still held.
            async with from_address(gw.app, "198.51.100.20") as office:
                served = await office.post("/v1/auth/token", data=token_form(client_id, secret))
            assert served.status_code == 200, served.text
            assert general.running == 1 and not held[0].done()
            release.set()
            assert [(await t).status_code for t in held] == [401, 401, 401]
            assert general.in_flight == 0
        finally:
            release.set()
            for attacker in attackers:
                await attacker.aclose()


async def test_a_cancelled_wait_gives_its_place_back() -> None:
    lane = Lane("general", workers=1, queue=1, one_waiting_per_key=True)
    release = threading.Event()
    try:
        running = asyncio.create_task(lane.run("203.0.113.1", release.wait, 10))
        await started(lane, running=1, waiting=0)
        waiting = asyncio.create_task(lane.run("203.0.113.2", release.wait, 10))
        await started(lane, running=1, waiting=1)
        with pytest.raises(ServiceUnavailable):
            await lane.run("203.0.113.3", release.wait, 10)
        waiting.cancel()  # the caller left: its place goes back
        await started(lane, running=1, waiting=0)
        after = asyncio.create_task(lane.run("203.0.113.3", release.wait, 10))
        await started(lane, running=1, waiting=1)
        release.set()
        assert await asyncio.gather(running, after) == [True, True]
        assert lane.in_flight == 0
    finally:
        release.set()
        lane.close()


async def test_replicas_sharing_redis_share_failures_and_known_pairs(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    if not await redis_reachable():
        pytest.skip(f"Redis is not reachable at {REDIS_URL}")
    url = await databases.fresh("gateway")
    shared: dict[str, Any] = {"redis_url": REDIS_URL, "redis_key_prefix": f"cradle-test:{uuid.uuid4().hex}:"}
    shared |= {"database_url": url, "sign_in_limits": TIGHT}
    async with (
        start_gateway(databases=databases, keys=keys, **shared) as one,
        start_gateway(databases=databases, keys=keys, **shared) as two,
    ):
        app = await one.new_client(name="Parents' app", kind="app", scopes=["guidance:read"])
        client_id, secret = app["client_id"], app["client_secret"]
        async with from_address(one.app, "198.51.100.20") as office:
            assert await sign_in(office, client_id, secret) == 200
        # Replica two knows the pair replica one served.
        assert await two.app.state.sign_in.known.contains(f"client:{client_id}", "198.51.100.20")
        async with (
            from_address(one.app, "203.0.113.7") as on_one,
            from_address(two.app, "203.0.113.7") as on_two,
        ):
            for i in range(2):
                assert await sign_in(on_one, client_id, f"g{i}") == 401
            checks = count_checks(two)
            codes = [await sign_in(on_two, client_id, f"h{i}") for i in range(2)]
            assert codes == [401, 429] and checks() == 1  # the pair's 3 failures, wherever they were made
        async with from_address(two.app, "198.51.100.20") as office:
            assert await sign_in(office, client_id, secret) == 200
