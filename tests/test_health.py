"""Every process answers /healthz, /readyz (database and NATS) and /metrics without a token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import Stack, start_stack
from tests.support import NatsProcess, eventually


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")


@pytest.mark.parametrize("name", ["gateway", "registry", "workforce"])
async def test_health_readiness_and_metrics(stack: Stack, name: str) -> None:
    app = getattr(stack, name)
    async with client_for(app) as client:
        assert (await client.get("/healthz")).json()["status"] == "ok"
        ready = await eventually(lambda: _status(client, 200))
        assert all(v == "ok" for v in ready.json()["checks"].values())
        await client.get("/healthz")
        metrics = (await client.get("/metrics")).text
        assert "cradle_http_requests_total" in metrics


async def test_readiness_fails_while_nats_is_away_and_recovers(
    databases: Any, own_nats: NatsProcess, namespace: str, keys: dict[str, Any]
) -> None:
    async with start_stack(
        databases=databases, nats_url=own_nats.url, namespace=namespace, keys=keys
    ) as stack:
        async with client_for(stack.registry) as client:
            await eventually(lambda: _status(client, 200))
            await own_nats.stop()
            response = await eventually(lambda: _status(client, 503))
            assert response.headers["retry-after"]
            assert response.json()["checks"] == {"database": "ok", "nats": "not connected"}
            await own_nats.start()
            await eventually(lambda: _status(client, 200), timeout=20)


async def _status(client: httpx.AsyncClient, expected: int) -> httpx.Response | None:
    response = await client.get("/readyz")
    return response if response.status_code == expected else None
