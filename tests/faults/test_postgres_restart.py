"""PostgreSQL restarted under load — a PostgreSQL of the test's own, never the machine's. While it
is stopped (once with a fast shutdown, which terminates the open sessions, once with an immediate
one, a crash that the next start recovers from) requests through the gateway get 503 with
Retry-After, never a 500; afterwards every acknowledged write is there, whole, and no refused write
is half there. Retrying the refused writes with their Idempotency-Key creates each exactly once."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import select

from cradle.migrations import upgrade
from gateway.config import DEFAULT_RATE_LIMITS, RateLimit
from services.registry.app import create_app as create_registry
from services.registry.config import RegistrySettings
from services.registry.models import Facility, FacilityStatusChange, FacilityVersion
from services.registry.models import outbox as registry_outbox
from shared.idempotency import IDEMPOTENCY
from tests.conftest import facility_body, service_settings
from tests.faults.conftest import PostgresProcess, rows
from tests.gateway.conftest import start_gateway
from tests.support import DatabaseFactory, eventually, running

WORKERS = 6
DOWN_SECONDS = 2.5
SUBMITTED = "cradle.registry.facility.submitted"


@dataclass
class Reply:
    method: str
    key: str | None  # the Idempotency-Key of a POST
    name: str | None
    status: int
    retry_after: str | None
    body: str


async def test_requests_during_a_postgres_restart_get_503_never_500_and_nothing_is_half_written(
    own_postgres: PostgresProcess,
    db_factories: dict[str, DatabaseFactory],
    shared_nats_url: str,
    namespace: str,
    keys: dict[str, Any],
) -> None:
    url = await own_postgres.create_database("registry")
    await asyncio.to_thread(upgrade, "registry", url)
    registry = create_registry(
        service_settings(RegistrySettings, url=url, nats_url=shared_nats_url, namespace=namespace, keys=keys)
    )
    async with (
        running(registry),
        start_gateway(
            databases=db_factories["sqlite"],
            keys=keys,
            services={"registry": registry},
            rate_limits=DEFAULT_RATE_LIMITS | {"operator": RateLimit(rate=100_000, burst=100_000)},
        ) as gw,
    ):
        applicant = await gw.operator()
        replies: list[Reply] = []
        stop = asyncio.Event()

        async def call(method: str, path: str, **kwargs: Any) -> httpx.Response:
            headers = {**applicant, **kwargs.pop("headers", {})}
            return await gw.client.request(method, path, headers=headers, **kwargs)

        async def worker() -> None:
            while not stop.is_set():
                key = uuid.uuid4().hex
                name = f"故障托育点 {key[:10]}"
                created = await call(
                    "POST", "/v1/facilities", json=facility_body(name=name), headers={"Idempotency-Key": key}
                )
                replies.append(_reply("POST", key, name, created))
                if created.status_code == 201:
                    path = f"/v1/facilities/{created.json()['id']}"
                else:
                    path = "/v1/facilities?district_code=310104&limit=5"
                replies.append(_reply("GET", None, None, await call("GET", path)))
                await asyncio.sleep(0.01)

        workers = [asyncio.create_task(worker()) for _ in range(WORKERS)]
        try:
            await asyncio.sleep(1.5)
            for mode in ("fast", "immediate"):
                before = len(replies)
                await own_postgres.stop(mode)
                await asyncio.sleep(DOWN_SECONDS)
                during = [r.status for r in replies[before:]]
                assert 503 in during, f"no request was refused while PostgreSQL was down ({mode}): {during}"
                await own_postgres.start()
                restarted = len(replies)

                async def served_again(restarted: int = restarted) -> bool:
                    return any(r.status in (200, 201) for r in replies[restarted:])

                try:
                    await eventually(served_again)
                except AssertionError:
                    since = Counter((r.method, r.status) for r in replies[restarted:])
                    raise AssertionError(f"not served again after the {mode} restart: {since}") from None
        finally:
            stop.set()
            await asyncio.gather(*workers, return_exceptions=True)

        # ---- every reply a 2xx or a 503 with Retry-After, never a 500 -------------------------
        statuses = Counter((r.method, r.status) for r in replies)
        unexpected = [r for r in replies if r.status not in (200, 201, 503)]
        assert not unexpected, (statuses, unexpected[:3])
        assert all(r.retry_after for r in replies if r.status == 503), statuses
        assert statuses[("POST", 201)] > 0 and statuses[("POST", 503)] > 0, statuses

        # ---- every acknowledged write whole, every refused one all there or not at all ---------
        posts = [r for r in replies if r.method == "POST"]
        acknowledged = {r.name for r in posts if r.status == 201}
        refused = {r.name: r.key for r in posts if r.status == 503}
        parts = await written_parts(registry)
        for name in acknowledged:
            assert parts.get(name) == WHOLE, (name, parts.get(name))
        for name in refused:
            assert parts.get(name, set()) in (set(), WHOLE), (name, parts.get(name))
        assert set(parts) <= acknowledged | set(refused)

        # ---- the refused writes retried with their keys: each exists exactly once -------------
        for name, key in refused.items():
            again = await call(
                "POST", "/v1/facilities", json=facility_body(name=name), headers={"Idempotency-Key": key}
            )
            assert again.status_code == 201, again.text
        names = [row[0] for row in await rows(registry, select(Facility.name))]
        assert sorted(names) == sorted(acknowledged | set(refused))
        parts = await written_parts(registry)
        assert all(found == WHOLE for found in parts.values())


WHOLE = {"facility", "status_change", "version", "outbox_event", "idempotency_record"}


async def written_parts(registry: Any) -> dict[str, set[str]]:
    """What each facility-creating request left behind, by facility name."""
    facilities = {row[0]: row[1] for row in await rows(registry, select(Facility.id, Facility.name))}
    found: dict[str, set[str]] = {name: {"facility"} for name in facilities.values()}
    for (facility_id,) in await rows(registry, select(FacilityStatusChange.facility_id)):
        found[facilities[facility_id]].add("status_change")
    for (facility_id,) in await rows(registry, select(FacilityVersion.facility_id)):
        found[facilities[facility_id]].add("version")
    for (payload,) in await rows(registry, select(registry_outbox.c.payload)):
        event = json.loads(payload)
        assert event["type"] == SUBMITTED
        found[facilities[event["data"]["facility_id"]]].add("outbox_event")
    idempotency = registry.state.idempotency_table
    assert idempotency.name == IDEMPOTENCY
    for (body,) in await rows(registry, select(idempotency.c.body)):
        found.setdefault(json.loads(body)["name"], set()).add("idempotency_record")
    return found


def _reply(method: str, key: str | None, name: str | None, response: httpx.Response) -> Reply:
    return Reply(
        method, key, name, response.status_code, response.headers.get("retry-after"), response.text[:300]
    )
