"""Every process answers /healthz and a bare /readyz on its public port; /metrics and the readiness
reasons only on its metrics listener. NATS unreachable is degraded (writes go on, the outbox holds
their events), never unready and never a false "ready"."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.workforce.models import FacilityProjection
from shared.events import bus as bus_module
from shared.events.bus import EventBus
from shared.events.streams import Namespace
from tests.conftest import Stack, facility_body, start_stack
from tests.support import NatsProcess, eventually, listener_client, provision_namespace


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


@pytest.mark.parametrize("name", ["registry", "workforce"])
async def test_a_service_answers_health_publicly_and_details_on_its_listener(stack: Stack, name: str) -> None:
    app = getattr(stack, name)
    async with client_for(app) as public, listener_client(app) as internal:
        assert (await public.get("/healthz")).json() == {"status": "ok", "service": name}
        # Degraded is a 200 too (writes go on while NATS is away): wait for ready itself, which a
        # loaded start-up reaches once its consumers are bound.
        assert await eventually(lambda: _ready(public)) == {"status": "ready"}
        assert (await public.get("/metrics")).status_code == 404
        detailed = (await internal.get("/readyz")).json()
        assert detailed == {
            "status": "ready",
            "service": name,
            "reasons": [],
            "checks": {"database": "ok", "nats": "ok", "dead_letters": "ok"},
        }
        text = (await internal.get("/metrics")).text
        assert "cradle_http_requests_total" in text
        assert "process_cpu_seconds_total" in text and "python_info" in text


async def test_the_gateway_says_which_services_are_down_only_on_its_listener(stack: Stack) -> None:
    async with client_for(stack.gateway) as public, listener_client(stack.gateway) as internal:
        assert (await public.get("/healthz")).json()["status"] == "ok"
        assert (await public.get("/metrics")).status_code == 404
        # The stack runs registry and workforce only: monitoring and guidance are down.
        assert (await public.get("/readyz")).json() == {"status": "degraded"}
        body = (await internal.get("/readyz")).json()
        assert body["status"] == "degraded"
        assert body["checks"]["database"] == "ok" and body["checks"]["registry"] == "ok"
        assert body["checks"]["guidance"].startswith("down")
        assert any(reason.startswith("guidance: down") for reason in body["reasons"])
        assert "cradle_gateway_audit_pending" in (await internal.get("/metrics")).text


async def test_nats_unreachable_at_start_is_degraded_writes_go_on_and_events_follow(
    databases: Any, namespace: str, keys: dict[str, Any], tmp_path: Path
) -> None:
    nats = NatsProcess(tmp_path / "nats")  # its port is chosen; nothing listens there yet
    async with start_stack(
        databases=databases, nats_url=nats.url, namespace=namespace, keys=keys, provision=False
    ) as stack:
        async with client_for(stack.registry) as public, listener_client(stack.registry) as internal:
            degraded = await eventually(lambda: _status(public, 200))
            assert degraded.json() == {"status": "degraded"}
            body = (await internal.get("/readyz")).json()
            assert body["status"] == "degraded"
            assert body["checks"]["database"] == "ok"
            assert body["checks"]["nats"].startswith(f"not connected to {nats.url}")
            assert body["reasons"] == [f"nats: {body['checks']['nats']}"]

            created = await stack.client.post(
                "/v1/facilities", json=facility_body(), headers=await stack.operator()
            )
            assert created.status_code == 201, created.text
            facility_id = created.json()["id"]

            await nats.start()
            try:
                await provision_namespace(nats.url, namespace)

                async def projected() -> FacilityProjection | None:
                    async with stack.workforce.state.sessionmaker() as session:
                        return await session.get(FacilityProjection, facility_id)

                assert (await eventually(projected)).status == "submitted"
                ready = await eventually(lambda: _ready(internal))
                assert ready["reasons"] == [] and ready["checks"]["nats"] == "ok"
            finally:
                await nats.stop()


async def test_the_database_down_is_unready_in_the_same_shape(stack: Stack) -> None:
    await stack.registry.state.engine.dispose()
    url = stack.registry.state.engine.url
    stack.registry.state.engine = _unreachable_engine(url)
    async with client_for(stack.registry) as public, listener_client(stack.registry) as internal:
        response = await public.get("/readyz")
        assert response.status_code == 503 and response.headers["retry-after"]
        assert response.json() == {"status": "unready"}
        body = (await internal.get("/readyz")).json()
        assert body["status"] == "unready"
        assert body["checks"]["database"] != "ok"
        assert body["reasons"][0].startswith("database: ")


async def test_an_unreachable_bus_is_retried_in_the_background_and_warned_about_once_a_minute(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    warnings: list[str] = []

    class Recorder:
        def warning(self, event: str, **fields: Any) -> None:
            warnings.append(event)

        def info(self, event: str, **fields: Any) -> None: ...

        def debug(self, event: str, **fields: Any) -> None: ...

    clock = Clock()
    monkeypatch.setattr(bus_module, "log", Recorder())
    monkeypatch.setattr(bus_module, "time", clock)
    closed = NatsProcess(tmp_path / "nats").url
    bus = EventBus(url=closed, namespace=Namespace("unused"), replicas=1, client_name="test")
    bus.start()
    try:
        # Every attempt ends (nats-py alone would retry inside one `connect` for ever) and the next
        # one starts, yet the warning is said once until a minute has passed.
        await eventually(lambda: bus.failed_attempts >= 4 and warnings)
        attempts = bus.failed_attempts
        await eventually(lambda: bus.failed_attempts > attempts)
        assert warnings == ["nats_unavailable"]
        assert not bus.connected
        assert (bus.concern() or "").startswith(f"not connected to {closed}")
        # A minute later, while the bus is still away, it is said again, once.
        clock.offset += bus_module.WARN_EVERY_SECONDS
        await eventually(lambda: len(warnings) == 2)
        attempts = bus.failed_attempts
        await eventually(lambda: bus.failed_attempts > attempts)
        assert warnings == ["nats_unavailable", "nats_unavailable"]
    finally:
        await bus.close()


class Clock:
    """The bus's `time` module, with a minute passed when the test says so."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset

    def time(self) -> float:
        return time.time() + self.offset

    def __getattr__(self, name: str) -> Any:  # strftime, gmtime
        return getattr(time, name)


def _unreachable_engine(url: Any) -> AsyncEngine:
    if url.get_backend_name() == "sqlite":
        return create_async_engine("sqlite+aiosqlite:////nonexistent/dir/for/this/test.db")
    return create_async_engine(url.set(port=1), connect_args={"timeout": 1})


async def _ready(client: httpx.AsyncClient) -> dict[str, Any] | None:
    body = (await client.get("/readyz")).json()
    return body if body["status"] == "ready" else None


async def _status(client: httpx.AsyncClient, expected: int) -> httpx.Response | None:
    response = await client.get("/readyz")
    return response if response.status_code == expected else None
