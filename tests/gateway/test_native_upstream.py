"""The native upstream client (the production path) against the real registry under uvicorn:
bodies both ways, HEAD, keep-alive reuse, a service restarting, streamed replies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.upstream import NativeUpstream
from tests.conftest import facility_body
from tests.gateway.conftest import Gateway, ServiceProcess, start_gateway
from tests.support import DatabaseFactory


@pytest.fixture
async def gw_net(
    databases: DatabaseFactory, keys: dict[str, Any], registry_process: ServiceProcess
) -> AsyncIterator[Gateway]:
    async with start_gateway(
        databases=databases, keys=keys, network=True, registry_url=registry_process.url
    ) as gw:
        assert isinstance(gw.app.state.runtime.forwarder.client, NativeUpstream)
        yield gw


async def test_requests_and_replies_pass_through_unchanged(
    gw_net: Gateway, registry_process: ServiceProcess
) -> None:
    headers = await gw_net.bureau(["registry:read", "registry:write"])
    created = await gw_net.client.post("/v1/facilities", json=facility_body(), headers=headers)
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    read = await gw_net.client.get(location, headers=headers)
    assert read.status_code == 200 and read.json()["id"] == created.json()["id"]
    assert read.headers["etag"] and read.headers["content-type"] == "application/json"
    head = await gw_net.client.head(location, headers=headers)
    assert head.status_code in (200, 405) and head.content == b""
    # The connection survived the HEAD: the next request still works.
    assert (await gw_net.client.get(location, headers=headers)).status_code == 200
    invalid = await gw_net.client.post("/v1/facilities", json={"name": ""}, headers=headers)
    assert invalid.status_code == 422
    assert invalid.headers["content-type"] == "application/problem+json"


async def test_a_streamed_body_and_a_streamed_reply(gw_net: Gateway) -> None:
    headers = await gw_net.bureau(["registry:read", "registry:write"])
    payload = facility_body()
    import json

    raw = json.dumps(payload, ensure_ascii=False).encode()

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(raw), 50):
            yield raw[start : start + 50]
            await asyncio.sleep(0)

    created = await gw_net.client.post(
        "/v1/facilities", content=chunks(), headers={**headers, "Content-Type": "application/json"}
    )
    assert created.status_code == 201, created.text
    gw_net.app.state.runtime.forwarder.send_whole_below = 10  # every reply goes back streamed
    divisions = await gw_net.client.get("/v1/divisions")
    assert divisions.status_code == 200 and len(divisions.json()) == 16


async def test_many_concurrent_requests_share_the_pool(gw_net: Gateway) -> None:
    replies = await asyncio.gather(*(gw_net.client.get("/v1/divisions") for _ in range(40)))
    assert {r.status_code for r in replies} == {200}
    pool = next(iter(gw_net.app.state.runtime.forwarder.client.pools.values()))
    assert 1 <= len(pool.idle) <= 40


async def test_a_restarted_service_is_reached_again(
    gw_net: Gateway, registry_process: ServiceProcess
) -> None:
    assert (await gw_net.client.get("/v1/divisions")).status_code == 200
    registry_process.kill()
    down = await gw_net.client.get("/v1/divisions")
    assert down.status_code == 503 and down.headers["retry-after"]
    await registry_process.start()
    assert (await gw_net.client.get("/v1/divisions")).status_code == 200
