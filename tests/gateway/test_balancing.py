"""The gateway over several replicas of a service (GATEWAY_REGISTRY_URL="a,b"), on real sockets: two
tiny HTTP/1.1 servers stand in for two registry replicas. Requests are shared between them; one
that refuses connections is passed over and the request goes to the other; a request that reached
a replica which then failed goes to the other only when repeating it is harmless."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from cradle.layout import free_port as unused_port
from gateway.balancer import Replicas, may_retry, split_bases
from gateway.upstream import UpstreamConnectError, UpstreamRefused, UpstreamTimeout
from tests.conftest import facility_body
from tests.gateway.conftest import Gateway, start_gateway
from tests.gateway.test_native_upstream import RawService, Received, reset
from tests.support import DatabaseFactory

FACILITY = "/v1/facilities/3f0c2f4e-8d1a-4b7e-9c55-2f1e0d9a7b10"


def replica(name: str, *, reset_paths: tuple[bytes, ...] = (), slow: float = 0.0) -> RawService:
    """A replica that answers 200 with its own name, resets the connection on `reset_paths`, and
    waits `slow` seconds before answering a path ending in /slow."""

    async def script(request: Received, writer: asyncio.StreamWriter, _: int) -> bool:
        method, path = request.head.split(b" ")[:2]
        if path in reset_paths:
            reset(writer)
            return False
        if path.endswith(b"/slow"):
            await asyncio.sleep(slow)
        body = json.dumps({"replica": name, "method": method.decode()}).encode()
        status = b"201 Created" if method == b"POST" else b"200 OK"
        writer.write(
            b"HTTP/1.1 %b\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
            % (status, len(body), body)
        )
        return True

    return RawService(script)


def forwarded(service: RawService) -> list[Received]:
    """What callers' requests reached it (the gateway also reads a replica's /openapi.json)."""
    return [r for r in service.received if r.head.split(b" ")[1].startswith(b"/v1/")]


@pytest.fixture
async def two_replicas(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> AsyncIterator[Callable[..., contextlib.AbstractAsyncContextManager[Gateway]]]:
    @contextlib.asynccontextmanager
    async def start(first: RawService, second: RawService, **overrides: Any) -> AsyncIterator[Gateway]:
        async with start_gateway(
            databases=databases,
            keys=keys,
            registry_url=f"{first.url}, {second.url}/",  # spaces and a trailing slash are fine
            **overrides,
        ) as gw:
            yield gw

    yield start


def served_by(reply: Any) -> str:
    assert reply.status_code in (200, 201), reply.text
    return str(reply.json()["replica"])


async def test_requests_are_shared_between_the_replicas(
    two_replicas: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
) -> None:
    async with replica("a") as a, replica("b") as b, two_replicas(a, b) as gw:
        headers = await gw.bureau(["registry:read", "registry:write"])
        names = [served_by(await gw.client.get(FACILITY, headers=headers)) for _ in range(10)]
        assert names.count("a") == 5 and names.count("b") == 5
        created = [
            served_by(await gw.client.post("/v1/facilities", json=facility_body(), headers=headers))
            for _ in range(4)
        ]
        assert sorted(created) == ["a", "a", "b", "b"]
        # Each POST reached exactly one replica.
        posts = [r for r in a.received + b.received if r.head.startswith(b"POST")]
        assert len(posts) == 4


async def test_a_busy_replica_gets_no_more_until_it_answers(
    two_replicas: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
) -> None:
    async with replica("a", slow=2.0) as a, replica("b", slow=2.0) as b, two_replicas(a, b) as gw:
        headers = await gw.bureau(["registry:read"])
        slow = asyncio.create_task(gw.client.get(FACILITY + "/slow", headers=headers))
        await asyncio.sleep(0.3)  # the slow request is outstanding on one replica
        busy = [r.head.split(b" ")[1] for r in forwarded(a)] == [(FACILITY + "/slow").encode()]
        idle_name = "b" if busy else "a"
        quick = [served_by(await gw.client.get(FACILITY, headers=headers)) for _ in range(4)]
        assert quick == [idle_name] * 4
        assert served_by(await slow) != idle_name


async def test_a_replica_that_refuses_connections_is_passed_over_and_every_method_retried(
    two_replicas: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
) -> None:
    async with replica("a") as a, replica("b") as b, two_replicas(a, b, upstream_eject_seconds=30) as gw:
        headers = await gw.bureau(["registry:read", "registry:write"])
        stopped = a.url
        await a.__aexit__()  # replica a stops: its port refuses connections
        names = [served_by(await gw.client.get(FACILITY, headers=headers)) for _ in range(4)]
        assert names == ["b"] * 4
        # Refused before anything was sent: a POST is as safe to send to the other as a GET.
        posted = [
            served_by(await gw.client.post("/v1/facilities", json=facility_body(), headers=headers))
            for _ in range(3)
        ]
        assert posted == ["b"] * 3
        replicas = gw.app.state.runtime.forwarder.balancer.of("registry")
        down = [r.base for r in replicas.replicas if r.down_until > time.monotonic()]
        assert down == [stopped]


async def test_every_replica_refusing_is_a_503(
    two_replicas: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
) -> None:
    async with replica("a") as a, replica("b") as b, two_replicas(a, b) as gw:
        headers = await gw.bureau(["registry:read"])
        await a.__aexit__()
        await b.__aexit__()
        down = await gw.client.get(FACILITY, headers=headers)
        assert down.status_code == 503 and down.headers["retry-after"]
        assert down.headers["content-type"] == "application/problem+json"


async def test_a_request_a_replica_received_is_repeated_on_the_other_only_when_idempotent(
    two_replicas: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
) -> None:
    cut = (FACILITY.encode(), b"/v1/facilities")
    async with (
        replica("a", reset_paths=cut) as a,
        replica("b", reset_paths=cut) as b,
        two_replicas(a, b) as gw,
    ):
        headers = await gw.bureau(["registry:read", "registry:write"])
        # A GET both replicas received and cut: tried once on each, then a 503.
        got = await gw.client.get(FACILITY, headers=headers)
        assert got.status_code == 503
        assert [len(forwarded(a)), len(forwarded(b))] == [1, 1]
        # A POST the first replica received may have created its record: never sent to the other.
        posted = await gw.client.post("/v1/facilities", json=facility_body(), headers=headers)
        assert posted.status_code == 503
        posts = [r for r in forwarded(a) + forwarded(b) if r.head.startswith(b"POST")]
        assert len(posts) == 1


async def test_a_get_cut_by_one_replica_is_answered_by_the_other(
    two_replicas: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
) -> None:
    async with replica("a", reset_paths=(FACILITY.encode(),)) as a, replica("b") as b:
        async with two_replicas(a, b) as gw:
            headers = await gw.bureau(["registry:read"])
            names = [served_by(await gw.client.get(FACILITY, headers=headers)) for _ in range(4)]
            assert names == ["b"] * 4
            assert len(forwarded(a)) >= 1  # a was asked and cut the connection each time


def test_settings_take_one_url_or_several() -> None:
    assert split_bases("http://127.0.0.1:8001/") == ("http://127.0.0.1:8001",)
    assert split_bases("http://a:1, http://b:2/,") == ("http://a:1", "http://b:2")
    with pytest.raises(ValueError):
        Replicas(" , ", eject_seconds=1)


def test_which_failures_may_go_to_another_replica() -> None:
    refused = UpstreamRefused("could not connect")
    closed = UpstreamConnectError("the service closed the connection")
    slow = UpstreamTimeout("the service did not answer in time")
    assert may_retry("POST", False, refused)  # nothing was sent
    assert may_retry("GET", True, closed) and may_retry("PUT", True, closed)
    assert not may_retry("POST", True, closed) and not may_retry("PATCH", True, closed)
    assert not may_retry("PUT", False, closed)  # its streamed body is gone
    assert not may_retry("GET", True, slow)  # the first may still be working on it


async def test_a_port_nothing_listens_on_is_a_refusal_the_balancer_records(
    two_replicas: Callable[..., contextlib.AbstractAsyncContextManager[Gateway]],
) -> None:
    dead = f"http://127.0.0.1:{unused_port()}"
    async with replica("b") as b:

        class Dead:
            url = dead

        async with two_replicas(Dead, b, upstream_eject_seconds=30) as gw:
            headers = await gw.bureau(["registry:read"])
            assert served_by(await gw.client.get(FACILITY, headers=headers)) == "b"
            assert served_by(await gw.client.get(FACILITY, headers=headers)) == "b"
            replicas = gw.app.state.runtime.forwarder.balancer.of("registry")
            assert [r.base for r in replicas.order()] == [b.url, dead]
