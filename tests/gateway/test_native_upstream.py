"""The native upstream client (the production path): against the real registry under uvicorn
(bodies both ways, HEAD, keep-alive reuse, a service restarting, streamed replies), and against a
tiny socket server that misbehaves on purpose (1xx before the reply, chunked replies, a close with
no length, resets), alone and behind the gateway served by uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from gateway.models import AuditRecord
from gateway.upstream import NativeUpstream, UpstreamConnectError, UpstreamError, UpstreamResponse
from tests.conftest import facility_body
from tests.gateway.conftest import Gateway, ServiceProcess, start_gateway
from tests.servers import serving
from tests.support import DatabaseFactory


@pytest.fixture
async def gw_net(
    databases: DatabaseFactory, keys: dict[str, Any], registry_process: ServiceProcess
) -> AsyncIterator[Gateway]:
    async with start_gateway(databases=databases, keys=keys, registry_url=registry_process.url) as gw:
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


# ------------------------------------------------------------------------- a service that misbehaves


@dataclass
class Received:
    head: bytes
    headers: dict[bytes, bytes]
    body: bytes


Script = Callable[[Received, asyncio.StreamWriter, int], Awaitable[bool]]


class RawService:
    """An HTTP/1.1 "service" on a real socket whose replies are written byte by byte by the test:
    `script(request, writer, index_on_this_connection)` answers, and returns whether to keep the
    connection open for another request."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[Received] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> RawService:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        index = 0
        try:
            while True:
                request = await read_request(reader)
                if request is None:
                    return
                self.received.append(request)
                index += 1
                if not await self.script(request, writer, index):
                    return
        finally:
            if not writer.transport.is_closing():
                writer.close()


async def read_request(reader: asyncio.StreamReader) -> Received | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
    if b"content-length" in headers:
        body = await reader.readexactly(int(headers[b"content-length"]))
    elif headers.get(b"transfer-encoding") == b"chunked":
        parts = []
        while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        await reader.readuntil(b"\r\n")
        body = b"".join(parts)
    else:
        body = b""
    return Received(head, headers, body)


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST, not a FIN: what a crashed or killed process leaves behind."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def native() -> NativeUpstream:
    return NativeUpstream(
        max_connections=8,
        keepalive_seconds=30,
        connect_timeout=2,
        timeout=5,
        fallback=httpx.AsyncClient(),
    )


async def body_of(response: UpstreamResponse) -> bytes:
    try:
        return b"".join([chunk async for chunk in response.chunks()])
    finally:
        await response.aclose()


async def test_a_100_continue_is_skipped_for_the_final_reply() -> None:
    async def script(request: Received, writer: asyncio.StreamWriter, _: int) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(0.05)  # the final reply in a later packet, as a real service sends it
        writer.write(b"HTTP/1.1 201 Created\r\nLocation: /v1/x/1\r\nContent-Length: 7\r\n\r\ncreated")
        return True

    client = native()
    async with RawService(script) as service:
        response = await client.send("POST", service.url, "/v1/x", [], b'{"a":1}')
        assert response.status == 201
        assert (b"location", b"/v1/x/1") in response.headers
        assert await body_of(response) == b"created"
        # The connection went back to the pool at the reply's end, and is reused.
        again = await client.send("POST", service.url, "/v1/x", [], b"{}")
        assert again.status == 201 and await body_of(again) == b"created"
        assert service.connections == 1
    await client.aclose()


async def test_103_early_hints_are_dropped_and_the_200_passed_on() -> None:
    async def script(request: Received, writer: asyncio.StreamWriter, _: int) -> bool:
        writer.write(
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
        )
        return True

    client = native()
    async with RawService(script) as service:
        response = await client.send("GET", service.url, "/", [], None)
        assert response.status == 200
        assert dict(response.headers) == {b"content-type": b"text/plain", b"content-length": b"2"}
        assert await body_of(response) == b"ok"
    await client.aclose()


async def test_a_chunked_reply_is_streamed_and_the_connection_kept() -> None:
    pieces = [b"x" * 1000, b"y" * 70_000, b"z"]

    async def script(request: Received, writer: asyncio.StreamWriter, _: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for piece in pieces:
            writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        return True

    client = native()
    async with RawService(script) as service:
        for _ in range(2):
            response = await client.send("GET", service.url, "/", [], None)
            assert response.status == 200
            assert await body_of(response) == b"".join(pieces)
        assert service.connections == 1
    await client.aclose()


async def test_connection_close_without_a_length_is_read_to_the_end_and_not_reused() -> None:
    async def script(request: Received, writer: asyncio.StreamWriter, _: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n")
        writer.write(b"until the end")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b" of the stream")
        return False  # the server closes: that is where the body ends

    client = native()
    async with RawService(script) as service:
        for _ in range(2):
            response = await client.send("GET", service.url, "/", [], None)
            assert response.status == 200
            assert await body_of(response) == b"until the end of the stream"
        assert service.connections == 2  # the closed connection was never handed out again
        assert not client.pools[service.url].idle
    await client.aclose()


async def test_a_reset_on_a_reused_connection_is_retried_once_for_an_idempotent_method_only() -> None:
    async def script(request: Received, writer: asyncio.StreamWriter, index: int) -> bool:
        if index == 2:  # the second request on a keep-alive connection: the service resets
            reset(writer)
            return False
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True

    client = native()
    async with RawService(script) as service:
        assert await body_of(await client.send("GET", service.url, "/", [], None)) == b"ok"
        # The GET meets the reset on the pooled connection and is sent again on a fresh one.
        response = await client.send("GET", service.url, "/", [], None)
        assert response.status == 200 and await body_of(response) == b"ok"
        assert service.connections == 2
        assert [r.head.split(b" ")[0] for r in service.received] == [b"GET", b"GET", b"GET"]

        # The next request meets a reset on that reused connection too; a POST is not sent again:
        # the service may have created its record before it went away.
        with pytest.raises(UpstreamConnectError):
            await client.send("POST", service.url, "/", [], b"{}")
        assert [r.head.split(b" ")[0] for r in service.received][-1:] == [b"POST"]
        assert len(service.received) == 4 and service.connections == 2
    await client.aclose()


async def test_a_reset_mid_reply_is_an_error_not_a_short_body() -> None:
    async def script(request: Received, writer: asyncio.StreamWriter, _: int) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b")
        await writer.drain()
        await asyncio.sleep(0.05)
        reset(writer)
        return False

    client = native()
    async with RawService(script) as service:
        response = await client.send("GET", service.url, "/", [], None)
        assert response.status == 200
        with pytest.raises(UpstreamError):
            await body_of(response)
        assert not client.pools[service.url].idle
    await client.aclose()


# ------------------------------------------------------------ the same, behind the gateway on a socket


async def raw_exchange(url: str, request: bytes, *, expect_continue: bool = False) -> tuple[int, bytes]:
    """One request on a raw socket; returns the final status and everything read."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    head, _, body = request.partition(b"\r\n\r\n")
    writer.write(head + b"\r\n\r\n")
    if expect_continue:
        interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert interim.startswith(b"HTTP/1.1 100 "), interim
    writer.write(body)
    await writer.drain()
    reply = await asyncio.wait_for(reader.read(-1), 10)
    writer.close()
    return int(reply.split(b" ", 2)[1]), reply


@pytest.fixture
async def behind_gateway(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> AsyncIterator[
    Callable[[Script], contextlib.AbstractAsyncContextManager[tuple[Gateway, str, RawService]]]
]:
    """A RawService as the registry, behind the gateway, the gateway itself under uvicorn."""

    @contextlib.asynccontextmanager
    async def start(script: Script) -> AsyncIterator[tuple[Gateway, str, RawService]]:
        async with (
            RawService(script) as service,
            start_gateway(
                databases=databases, keys=keys, registry_url=service.url, max_body_bytes=4000
            ) as gw,
            serving(gw.app) as url,
        ):
            yield gw, url, service

    yield start


def post(path: str, token: str, body: bytes, *extra: bytes, chunked: bool = False) -> bytes:
    framing = b"Transfer-Encoding: chunked" if chunked else b"Content-Length: %d" % len(body)
    if chunked:
        body = b"".join(
            b"%x\r\n%b\r\n" % (len(body[i : i + 100]), body[i : i + 100]) for i in range(0, len(body), 100)
        )
        body += b"0\r\n\r\n"
    lines = [
        b"POST %s HTTP/1.1" % path.encode(),
        b"Host: gateway",
        b"Authorization: Bearer " + token.encode(),
        b"Content-Type: application/json",
        b"Connection: close",
        framing,
        *extra,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def test_expect_100_continue_through_the_gateway_gives_the_caller_and_the_audit_the_201(
    behind_gateway: Callable[
        [Script], contextlib.AbstractAsyncContextManager[tuple[Gateway, str, RawService]]
    ],
) -> None:
    async def script(request: Received, writer: asyncio.StreamWriter, _: int) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n")
        writer.write(b'{"id":"f1"}')
        return True

    async with behind_gateway(script) as (gw, url, service):
        token = (await gw.bureau(["registry:write"]))["Authorization"].removeprefix("Bearer ")
        body = json.dumps(facility_body()).encode()
        status, reply = await raw_exchange(
            url, post("/v1/facilities", token, body, b"Expect: 100-continue"), expect_continue=True
        )
        assert status == 201, reply
        assert reply.endswith(b'{"id":"f1"}') and b"100 Continue" not in reply.split(b"\r\n\r\n", 1)[1]
        # The gateway had the whole body: the service was not asked to continue, and got it all.
        assert b"expect" not in service.received[-1].headers
        assert service.received[-1].body == body
        await gw.audit_settled()
        async with gw.app.state.sessionmaker() as session:
            rows = (
                await session.execute(select(AuditRecord).where(AuditRecord.path == "/v1/facilities"))
            ).scalars()
            assert [row.status for row in rows] == [201]


async def test_a_chunked_request_is_forwarded_whole_and_bounded_by_max_body_bytes(
    behind_gateway: Callable[
        [Script], contextlib.AbstractAsyncContextManager[tuple[Gateway, str, RawService]]
    ],
) -> None:
    async def script(request: Received, writer: asyncio.StreamWriter, _: int) -> bool:
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}")
        return True

    async with behind_gateway(script) as (gw, url, service):
        token = (await gw.bureau(["registry:write"]))["Authorization"].removeprefix("Bearer ")
        body = json.dumps(facility_body()).encode()
        status, _ = await raw_exchange(url, post("/v1/facilities", token, body, chunked=True))
        assert status == 201
        assert service.received[-1].body == body

        status, reply = await raw_exchange(url, post("/v1/facilities", token, b"x" * 5000, chunked=True))
        assert status == 413 and b"application/problem+json" in reply
        assert len(service.received) == 1 or service.received[-1].body != b"x" * 5000


async def test_replies_behind_the_gateway_chunked_unlengthed_reset_or_not_http(
    behind_gateway: Callable[
        [Script], contextlib.AbstractAsyncContextManager[tuple[Gateway, str, RawService]]
    ],
) -> None:
    async def script(request: Received, writer: asyncio.StreamWriter, _: int) -> bool:
        path = request.head.split(b" ")[1]
        if path == b"/v1/facilities/chunked":
            writer.write(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            )
            return True
        if path == b"/v1/facilities/until-close":
            writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
            return False
        if path == b"/v1/facilities/reset":
            reset(writer)
            return False
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        return False

    async with behind_gateway(script) as (gw, url, _):
        reader = await gw.bureau(["registry:read"])
        chunked = await gw.client.get("/v1/facilities/chunked", headers=reader)
        assert chunked.status_code == 200 and chunked.content == b"hello world"
        until_close = await gw.client.get("/v1/facilities/until-close", headers=reader)
        assert until_close.status_code == 200 and until_close.content == b"all of it"
        assert "connection" not in until_close.headers
        cut = await gw.client.get("/v1/facilities/reset", headers=reader)
        assert cut.status_code == 503 and cut.headers["content-type"] == "application/problem+json"
        upgraded = await gw.client.get("/v1/facilities/upgrade", headers=reader)
        assert upgraded.status_code == 502 and upgraded.json()["status"] == 502
