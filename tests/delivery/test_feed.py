"""The feed: the same filtered events a page at a time, and as Server-Sent Events that resume where
the client left off."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from tests.delivery.conftest import City, auth
from tests.servers import serving
from tests.support import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

SUBMITTED = "cradle.registry.facility.submitted"


async def test_pages_follow_the_cursor_and_the_last_one_says_so(city: City) -> None:
    operator = await city.operator()
    made = [await city.facility(operator) for _ in range(3)]
    await eventually(lambda: city.recorded_all([f["id"] for f in made]))

    first = await city.client.get(
        "/v1/events", params={"types": SUBMITTED, "limit": 2}, headers=auth(operator)
    )
    assert first.status_code == 200, first.text
    assert first.json()["has_more"] is True and len(first.json()["items"]) == 2
    second = await city.client.get(
        "/v1/events",
        params={"types": SUBMITTED, "limit": 2, "cursor": first.json()["next_cursor"]},
        headers=auth(operator),
    )
    assert second.json()["has_more"] is False
    seen = [e["data"]["facility_id"] for e in first.json()["items"] + second.json()["items"]]
    assert seen == [f["id"] for f in made]

    # Nothing new: the same cursor comes back; something new: exactly it.
    quiet = await city.client.get(
        "/v1/events",
        params={"types": SUBMITTED, "cursor": second.json()["next_cursor"]},
        headers=auth(operator),
    )
    assert quiet.json()["items"] == []
    later = await city.facility(operator)
    await eventually(lambda: city.recorded_all([later["id"]]))
    newer = await city.client.get(
        "/v1/events",
        params={"types": SUBMITTED, "cursor": quiet.json()["next_cursor"]},
        headers=auth(operator),
    )
    assert [e["data"]["facility_id"] for e in newer.json()["items"]] == [later["id"]]


async def test_bad_cursors_and_types_are_named(city: City) -> None:
    bureau = await city.bureau()
    response = await city.client.get("/v1/events", params={"cursor": "not-ours"}, headers=auth(bureau))
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "cursor"
    response = await city.client.get(
        "/v1/events", params={"types": "cradle.registry.*,DROP TABLE"}, headers=auth(bureau)
    )
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "types"


class Upstream(httpx.AsyncBaseTransport):
    """The gateway's way to the delivery service, over a socket (an in-process ASGI transport
    collects a whole response, which a stream never finishes)."""

    def __init__(self, url: str) -> None:
        self.url = httpx.URL(url)
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request.url = request.url.copy_with(scheme="http", host=self.url.host, port=self.url.port)
        return await self.inner.handle_async_request(request)


@contextlib.asynccontextmanager
async def over_sockets(city: City) -> AsyncIterator[httpx.AsyncClient]:
    transports = city.stack.transport.transports
    saved = transports["delivery"]
    async with serving(city.delivery) as delivery_url, serving(city.stack.gateway) as gateway_url:
        transports["delivery"] = Upstream(delivery_url)
        try:
            # As long as `eventually` waits: at load 15 a stream's first reply took over 10 s (the
            # services share the test's event loop); a stalled stream still fails, a minute later.
            async with httpx.AsyncClient(base_url=gateway_url, timeout=60) as client:
                yield client
        finally:
            transports["delivery"] = saved


async def read_stream(
    client: httpx.AsyncClient, headers: dict[str, str], *, events: int, params: dict[str, str]
) -> tuple[list[tuple[str, str]], list[str]]:
    """(id, data) of the first `events` events, and the comment lines seen meanwhile."""
    found: list[tuple[str, str]] = []
    comments: list[str] = []
    current: dict[str, str] = {}
    async with client.stream("GET", "/v1/events/stream", headers=headers, params=params) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith(":"):
                comments.append(line[1:].strip())
            elif line == "" and "data" in current:
                found.append((current.get("id", ""), current["data"]))
                current = {}
                if len(found) == events:
                    break
            elif ":" in line:
                key, _, value = line.partition(":")
                current[key] = value.removeprefix(" ")
    return found, comments


async def test_the_stream_resumes_after_the_last_event_id(city: City) -> None:
    operator = await city.operator()
    made = [await city.facility(operator) for _ in range(2)]
    params = {"types": SUBMITTED}
    async with over_sockets(city) as client:
        first, comments = await read_stream(client, auth(operator), events=2, params=params)
        assert [made[0]["id"] in first[0][1], made[1]["id"] in first[1][1]] == [True, True]
        assert "connected" in comments

        later = await city.facility(operator)
        resumed, comments = await read_stream(
            client, auth(operator) | {"Last-Event-ID": first[0][0]}, events=2, params=params
        )
        assert made[1]["id"] in resumed[0][1] and later["id"] in resumed[1][1]
        # A quiet stream still speaks (heartbeats), so proxies keep it open.
        _, comments = await read_stream_for_heartbeat(client, auth(operator), resumed[1][0], params)
        assert "heartbeat" in comments


async def read_stream_for_heartbeat(
    client: httpx.AsyncClient, headers: dict[str, str], after: str, params: dict[str, str]
) -> tuple[None, list[str]]:
    comments: list[str] = []
    async with client.stream(
        "GET", "/v1/events/stream", headers=headers | {"Last-Event-ID": after}, params=params
    ) as response:
        async for line in response.aiter_lines():
            if line.startswith(":"):
                comments.append(line[1:].strip())
                if "heartbeat" in comments:
                    break
    return None, comments
