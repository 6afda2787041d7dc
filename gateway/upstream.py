"""HTTP/1.1 to the services. Two clients behind one small interface:

- `NativeUpstream` (production): asyncio protocol + httptools parser, a LIFO keep-alive pool per
  service. httpx's pool checks every pooled connection (a `poll()` syscall each) on every request,
  which made it the gateway's largest cost under load (see bench/gateway.py for the comparison).
- `HttpxUpstream`: the pooled httpx.AsyncClient; tests use it to mount the services in-process,
  and `GATEWAY_UPSTREAM_CLIENT=httpx` switches production back to it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol, cast
from urllib.parse import urlsplit

import httptools
import httpx

Headers = list[tuple[bytes, bytes]]
Body = bytes | AsyncIterator[bytes] | None
MAX_BUFFERED = 256 * 1024  # past this much unread reply, stop reading from the service
# RFC 9110 §9.2.2: a request with one of these may be sent twice with the effect of once.
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


class UpstreamError(Exception):
    """The service could not be reached or failed before its reply was complete."""

    reason = "error"


class UpstreamConnectError(UpstreamError):
    reason = "connect"


class UpstreamRefused(UpstreamConnectError):
    """No connection could be made: nothing of the request reached the service."""


class UpstreamTimeout(UpstreamError):
    reason = "timeout"


class UpstreamProtocolError(UpstreamError):
    reason = "protocol"


class UpstreamResponse(Protocol):
    status: int
    headers: Headers

    def chunks(self) -> AsyncIterator[bytes]: ...

    def wait_up_to(self, seconds: float) -> None:
        """From now on, wait this long for each chunk (a file the service assembles first)."""

    async def aclose(self) -> None: ...


class UpstreamClient(Protocol):
    async def send(
        self, method: str, base: str, target: str, headers: Headers, body: Body
    ) -> UpstreamResponse: ...

    async def get(self, url: str, *, timeout: float) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


# ---------------------------------------------------------------------------------------------- native


class _Connection(asyncio.Protocol):
    """One keep-alive connection, one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.error: UpstreamError | None = None
        self.idle_since = 0.0
        self.used = False  # served a request before: a failure may be a stale keep-alive
        self._reset()
        self._writable = True
        self._drained: asyncio.Future[None] | None = None

    def _reset(self) -> None:
        self.status = 0
        self.headers: Headers = []
        self.headers_done = False
        self.interim = False  # inside a 1xx response, which is read and dropped
        self.until_eof = False  # a reply with neither a length nor chunks ends when the service closes
        self.complete = False
        self.keep_alive = False
        self.got_bytes = False
        self.sent = False  # some of the request reached the socket: the service may have acted on it
        self.head_only = False
        self.buffer: deque[bytes] = deque()
        self.buffered = 0
        self.reading_paused = False
        self._waiter: asyncio.Future[None] | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"malformed reply: {exc}"))
            self.close()
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamProtocolError("the service switched protocols unasked"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.until_eof and self.headers_done and exc is None and not self.complete:
            self.complete = True  # a clean close is how such a reply ends (RFC 9112 §6.3, rule 8)
            self._wake()
        if not self.complete:
            self._fail(UpstreamConnectError("the service closed the connection"))
        if self._drained is not None and not self._drained.done():
            self._drained.set_exception(UpstreamConnectError("the service closed the connection"))

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            # RFC 9110 §15.2: 100 Continue, 103 Early Hints … precede the final reply; never forward
            # one as if it were the answer. 101 would switch protocols, which the gateway never asks.
            if status == 101:
                self._fail(UpstreamProtocolError("the service switched protocols unasked (101)"))
                self.close()
                return
            self.headers = []
            self.interim = True
            return
        self.status = status
        self.keep_alive = self.parser.should_keep_alive()
        framed = any(name in (b"content-length", b"transfer-encoding") for name, _ in self.headers)
        if not framed and status not in (204, 304) and not self.head_only:
            self.until_eof = True
            self.keep_alive = False
        self.headers_done = True
        if self.head_only:  # the parser cannot know a HEAD reply has no body: end it here
            self.complete = True
            self.keep_alive = False
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.head_only:
            return
        self.buffer.append(body)
        self.buffered += len(body)
        if self.buffered > MAX_BUFFERED and not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.interim:  # the end of a 1xx: the final reply follows on the same connection
            self.interim = False
            return
        self.complete = True
        self._wake()

    # helpers
    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        self.error = self.error or error
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(error)

    async def _wait(self, timeout: float) -> None:
        if self.error is not None:
            raise self.error
        self._waiter = self.loop.create_future()
        timer = self.loop.call_later(timeout, self._on_timeout)
        try:
            await self._waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _on_timeout(self) -> None:
        self._fail(UpstreamTimeout("the service did not answer in time"))
        self.close()

    async def write(self, data: bytes, timeout: float) -> None:
        if self.closed or self.transport is None:
            raise self.error or UpstreamConnectError("the connection is closed")
        self.sent = True
        self.transport.write(data)
        if not self._writable:
            self._drained = self.loop.create_future()
            timer = self.loop.call_later(timeout, self._on_timeout)
            try:
                await self._drained
            finally:
                timer.cancel()
                self._drained = None

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    async def read_headers(self, timeout: float) -> None:
        while not self.headers_done:
            await self._wait(timeout)

    async def read_chunk(self, timeout: float) -> bytes | None:
        while True:
            if self.buffer:
                chunk = self.buffer.popleft()
                self.buffered -= len(chunk)
                if self.reading_paused and self.buffered < MAX_BUFFERED // 2 and self.transport is not None:
                    self.reading_paused = False
                    self.transport.resume_reading()
                return chunk
            if self.complete:
                return None
            await self._wait(timeout)


class _NativeResponse:
    def __init__(self, pool: _Pool, connection: _Connection, timeout: float) -> None:
        self._pool = pool
        self._connection = connection
        self._timeout = timeout
        self.status = connection.status
        self.headers = connection.headers
        self._released = False

    async def chunks(self) -> AsyncIterator[bytes]:
        while (chunk := await self._connection.read_chunk(self._timeout)) is not None:
            yield chunk

    def wait_up_to(self, seconds: float) -> None:
        self._timeout = seconds

    async def aclose(self) -> None:
        if not self._released:
            self._released = True
            self._pool.release(self._connection)


class _Pool:
    """Keep-alive connections to one service: the most recently used first (warm, least likely
    to have been closed by the server's keep-alive timer)."""

    def __init__(
        self, host: str, port: int, *, max_connections: int, keepalive_seconds: float, connect_timeout: float
    ) -> None:
        self.host, self.port = host, port
        self.prefix = ""
        self.host_header = f"{host}:{port}".encode()
        self.idle: list[_Connection] = []
        self.slots = asyncio.Semaphore(max_connections)
        self.keepalive_seconds = keepalive_seconds
        self.connect_timeout = connect_timeout

    async def acquire(self, *, fresh: bool = False) -> _Connection:
        if self.slots.locked():  # every slot taken: wait, but not forever
            try:
                await asyncio.wait_for(self.slots.acquire(), self.connect_timeout)
            except TimeoutError as exc:
                raise UpstreamTimeout("every connection to the service is busy") from exc
        else:
            await self.slots.acquire()
        now = time.monotonic()
        while self.idle and not fresh:
            connection = self.idle.pop()
            if not connection.closed and now - connection.idle_since < self.keepalive_seconds:
                connection._reset()
                return connection
            connection.close()
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), self.host, self.port), self.connect_timeout
            )
        except TimeoutError as exc:
            self.slots.release()
            raise UpstreamTimeout("could not connect in time") from exc
        except OSError as exc:
            self.slots.release()
            raise UpstreamRefused(f"could not connect: {exc.strerror or exc}") from exc
        except BaseException:
            self.slots.release()
            raise
        return connection

    def release(self, connection: _Connection) -> None:
        self.slots.release()
        if (
            connection.complete
            and connection.keep_alive
            and not connection.closed
            and connection.error is None
        ):
            connection.idle_since = time.monotonic()
            connection.used = True
            self.idle.append(connection)
        else:
            connection.close()

    def discard(self, connection: _Connection) -> None:
        self.slots.release()
        connection.close()

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


def _head(method: str, target: str, host: bytes, headers: Headers, framing: bytes | None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode("latin-1"), b"host: " + host]
    lines.extend(name + b": " + value for name, value in headers)
    if framing is not None:
        lines.append(framing)
    return b"\r\n".join(lines) + b"\r\n\r\n"


class NativeUpstream:
    def __init__(
        self,
        *,
        max_connections: int,
        keepalive_seconds: float,
        connect_timeout: float,
        timeout: float,
        fallback: httpx.AsyncClient,
    ) -> None:
        self.max_connections = max_connections
        self.keepalive_seconds = keepalive_seconds
        self.connect_timeout = connect_timeout
        self.timeout = timeout
        self.fallback = fallback  # for the few non-hot calls (health, OpenAPI) and https services
        self.pools: dict[str, _Pool] = {}

    def _pool(self, base: str) -> _Pool | None:
        pool = self.pools.get(base)
        if pool is None:
            parts = urlsplit(base)
            if parts.scheme != "http" or not parts.hostname:
                return None  # https (or anything else) to a service goes through httpx
            pool = self.pools[base] = _Pool(
                parts.hostname,
                parts.port or 80,
                max_connections=self.max_connections,
                keepalive_seconds=self.keepalive_seconds,
                connect_timeout=self.connect_timeout,
            )
            pool.prefix = parts.path.rstrip("/")
        return pool

    async def send(
        self, method: str, base: str, target: str, headers: Headers, body: Body
    ) -> UpstreamResponse:
        pool = self._pool(base)
        if pool is None:
            return await HttpxUpstream(self.fallback).send(method, base, target, headers, body)
        path = pool.prefix + target
        replayable = not isinstance(body, AsyncIterator)
        for attempt in (1, 2):
            connection = await pool.acquire(fresh=attempt == 2)
            connection.head_only = method == "HEAD"
            try:
                await self._write_request(connection, method, path, pool.host_header, headers, body)
                await connection.read_headers(self.timeout)
            except UpstreamError as exc:
                pool.discard(connection)
                # A reused keep-alive connection the service had just closed or reset, before any
                # byte of a reply: once more on a fresh one — unless the service may have acted on
                # a request that is not safe to repeat (a POST would create its record twice).
                stale = connection.used and not connection.got_bytes and isinstance(exc, UpstreamConnectError)
                safe = method in IDEMPOTENT or not connection.sent
                if attempt == 1 and stale and safe and replayable:
                    continue
                raise
            except BaseException:
                pool.discard(connection)
                raise
            return _NativeResponse(pool, connection, self.timeout)
        raise AssertionError("unreachable")

    async def _write_request(
        self, connection: _Connection, method: str, path: str, host: bytes, headers: Headers, body: Body
    ) -> None:
        if body is None:
            framing = b"content-length: 0" if method in ("POST", "PUT", "PATCH") else None
            await connection.write(_head(method, path, host, headers, framing), self.timeout)
        elif isinstance(body, bytes):
            framing = b"content-length: " + str(len(body)).encode()
            await connection.write(_head(method, path, host, headers, framing) + body, self.timeout)
        else:
            await connection.write(
                _head(method, path, host, headers, b"transfer-encoding: chunked"), self.timeout
            )
            async for chunk in body:
                if chunk:
                    await connection.write(b"%x\r\n%b\r\n" % (len(chunk), chunk), self.timeout)
            await connection.write(b"0\r\n\r\n", self.timeout)

    async def get(self, url: str, *, timeout: float) -> tuple[int, bytes]:
        response = await self.fallback.get(url, timeout=timeout)
        return response.status_code, response.content

    async def aclose(self) -> None:
        for pool in self.pools.values():
            pool.close()
        await self.fallback.aclose()


# ----------------------------------------------------------------------------------------------- httpx


class _HttpxResponse:
    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status = response.status_code
        self.headers = [(name.lower(), value) for name, value in response.headers.raw]

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_raw():
                yield chunk
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(str(exc)) from exc
        except httpx.TransportError as exc:
            raise UpstreamConnectError(str(exc)) from exc

    def wait_up_to(self, seconds: float) -> None:
        """httpx fixed the read timeout when the request was sent: its client's (the fallback, and
        in-process transports, which have none)."""

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxUpstream:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def send(
        self, method: str, base: str, target: str, headers: Headers, body: Body
    ) -> UpstreamResponse:
        request = self.client.build_request(method, base + target, headers=headers, content=body)
        try:
            return _HttpxResponse(await self.client.send(request, stream=True))
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(str(exc)) from exc
        except httpx.ConnectError as exc:  # raised before the request is written
            raise UpstreamRefused(str(exc)) from exc
        except httpx.TransportError as exc:
            raise UpstreamConnectError(f"{type(exc).__name__}: {exc}") from exc

    async def get(self, url: str, *, timeout: float) -> tuple[int, bytes]:
        response = await self.client.get(url, timeout=timeout)
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self.client.aclose()
