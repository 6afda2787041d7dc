"""The sender's HTTP/1.1 client: an asyncio protocol and the httptools parser, as the gateway's
upstream client (which measured 2.3× httpx per request, bench/README.md), with a small pool of
kept-alive connections per subscription. It connects only to the address the target policy
checked (TLS to that address, the URL's host as the server name and the name the certificate must
carry), follows no redirect, and reads at most the first KiB of a reply: a longer or unframed body
is never read to its end, the connection is dropped instead."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import cast
from urllib.parse import quote

import httptools

from services.delivery.service.targets import Target

EXCERPT_BYTES = 1024
# Idle connections are dropped before a receiver's own keep-alive timer would close them (uvicorn's
# is 5 s), so a reused one is seldom stale.
KEEPALIVE_SECONDS = 4.0
MAX_POOLS = 2000  # subscriptions recently sent to; the least recently used pool is closed past this
# What a path may keep as it is; anything else (spaces, CR/LF, non-ASCII) is percent-encoded.
PATH_SAFE = "!#$%&'()*+,/:;=?@[]~"
# How often the attempts' deadlines are looked at: an attempt ends at most this long after its own.
DEADLINE_CHECK_SECONDS = 0.1


class WebhookError(Exception):
    """No reply: no connection, or the connection failed before the reply's status line."""


class WebhookTimeout(WebhookError):
    """No reply within the attempt's deadline."""


@dataclass(slots=True)
class Reply:
    status: int
    excerpt: bytes  # at most EXCERPT_BYTES of the body


class _Connection(asyncio.Protocol):
    """One kept-alive connection, one request at a time. The waiter resolves once the reply is
    complete, its first KiB has arrived, the connection ends, or the deadline passes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, deadlines: _Deadlines) -> None:
        self.loop = loop
        self.deadlines = deadlines
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.used = False  # has served a request: a failure before any reply may mean it went stale
        self.idle_since = 0.0
        self.waiter: asyncio.Future[None] | None = None
        self._begin()

    def _begin(self) -> None:
        self.status = 0
        self.interim = False  # inside a 1xx reply, which is read and dropped
        self.headers_done = False
        self.complete = False
        self.keep_alive = False
        self.got_bytes = False
        self.excerpt = bytearray()
        self.error: WebhookError | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None:  # bytes nobody asked for (a 408 on an idle connection): not reusable
            self.close()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._finish(WebhookError("the receiver switched protocols unasked"))
        except httptools.HttpParserError as exc:
            self._finish(WebhookError(f"malformed reply: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._finish(WebhookError("the receiver closed the connection"))

    # httptools callbacks
    def on_headers_complete(self) -> None:
        if self.complete:  # a second reply nobody asked for, in the same packet: not reusable
            self.keep_alive = False
            return
        status = self.parser.get_status_code()
        if status < 200:
            # RFC 9110 §15.2: 100 Continue, 103 Early Hints … precede the final reply. 101 would
            # switch protocols, which a webhook never asks for.
            if status == 101:
                self._finish(WebhookError("the receiver switched protocols unasked (101)"))
            else:
                self.interim = True
            return
        self.status = status
        # False too for a body that ends only when the receiver closes (no length, not chunked).
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if self.complete:
            return
        room = EXCERPT_BYTES - len(self.excerpt)
        if room > 0:
            self.excerpt += body[:room]
        if len(self.excerpt) >= EXCERPT_BYTES:
            self._finish(None)  # enough: the rest is never read

    def on_message_complete(self) -> None:
        if self.interim:  # the end of a 1xx: the final reply follows on the same connection
            self.interim = False
            return
        if self.complete:
            return
        self.complete = True
        self._finish(None)

    # the exchange
    def _finish(self, error: WebhookError | None) -> None:
        if self.error is None and not self.complete:
            self.error = error
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _on_deadline(self) -> None:
        self._finish(WebhookTimeout("no answer in time"))

    async def exchange(self, request: bytes, deadline: float) -> Reply:
        """Send the request and wait for the reply (or as much of it as there is by the deadline:
        a status line is an answer even if its body never ends)."""
        if self.closed or self.transport is None:
            raise WebhookError("the receiver closed the connection")
        self._begin()
        self.waiter = self.loop.create_future()
        self.deadlines.watch(self, deadline)
        try:
            self.transport.write(request)
            await self.waiter
        finally:
            self.deadlines.forget(self)
            self.waiter = None
        if not self.headers_done:
            self.close()
            raise self.error or WebhookError("no reply")
        return Reply(status=self.status, excerpt=bytes(self.excerpt))

    @property
    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.closed and self.error is None

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()


class _Deadlines:
    """The deadlines of the exchanges under way, looked at by one timer every
    DEADLINE_CHECK_SECONDS while there are any: a timer made and cancelled for each attempt was a
    tenth of the attempt's time on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.watched: dict[_Connection, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, connection: _Connection, deadline: float) -> None:
        self.watched[connection] = deadline
        if self._timer is None:
            self._timer = self.loop.call_later(DEADLINE_CHECK_SECONDS, self._check)

    def forget(self, connection: _Connection) -> None:
        self.watched.pop(connection, None)

    def _check(self) -> None:
        now = self.loop.time()
        for connection, deadline in list(self.watched.items()):
            if deadline <= now:
                del self.watched[connection]
                connection._on_deadline()
        self._timer = self.loop.call_later(DEADLINE_CHECK_SECONDS, self._check) if self.watched else None


@dataclass(frozen=True)
class _Destination:
    """Where a pool's connections go: the checked address, and the name spoken to there."""

    scheme: str
    address: str
    port: int
    host: str


class _Pool:
    """Idle connections to one subscription's receiver, the most recently used first (the warmest,
    least likely to have been closed by the receiver's keep-alive timer)."""

    def __init__(self, destination: _Destination, target: Target) -> None:
        self.destination = destination
        self.target = target  # the checked target it was made for (the resolver's, kept a while)
        self.head = _request_head(target)
        self.idle: list[_Connection] = []

    def take(self, now: float) -> _Connection | None:
        while self.idle:
            connection = self.idle.pop()
            if not connection.closed and now - connection.idle_since < KEEPALIVE_SECONDS:
                return connection
            connection.close()
        return None

    def sweep(self, now: float) -> None:
        keep = []
        for connection in self.idle:
            if connection.closed or now - connection.idle_since >= KEEPALIVE_SECONDS:
                connection.close()
            else:
                keep.append(connection)
        self.idle = keep

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()


class WebhookClient:
    """POSTs to checked targets, a pool per subscription (one receiver's connections never queue
    another's requests). The sender bounds what is in flight per subscription; a pool keeps at most
    `max_idle` of them open between attempts."""

    def __init__(self, *, tls: ssl.SSLContext, max_idle: int, connect_timeout: float) -> None:
        self.tls = tls
        self.max_idle = max_idle
        self.connect_timeout = connect_timeout
        self.pools: OrderedDict[str, _Pool] = OrderedDict()
        self._swept = 0.0
        self._deadlines: _Deadlines | None = None  # made on the loop, at the first connection

    async def post(
        self,
        pool_key: str,
        target: Target,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        timeout: float,
    ) -> Reply:
        """One request, within `timeout` from the first connect to the reply's first KiB."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pool = self._pool(pool_key, target)
        request = _request(pool.head, headers, body)
        connection = pool.take(time.monotonic())
        if connection is None:
            connection = await self._connect(pool.destination, deadline)
        try:
            try:
                reply = await connection.exchange(request, deadline)
            except WebhookTimeout:
                raise
            except WebhookError:
                # A kept-alive connection the receiver had just closed, before any byte of a reply:
                # once more on a fresh one. A POST is not safe to repeat in general, but a webhook is
                # delivered at least once by contract and carries its `webhook-id` for the receiver
                # to drop a repeat, so a second copy is acceptable where a lost delivery is not.
                if not (connection.used and not connection.got_bytes):
                    raise
                connection = await self._connect(pool.destination, deadline)
                reply = await connection.exchange(request, deadline)
        except BaseException:
            connection.close()
            raise
        # Back to its pool only if the reply was read to its end and the pool is still this
        # destination's (the URL may have changed meanwhile).
        if connection.reusable and len(pool.idle) < self.max_idle and self.pools.get(pool_key) is pool:
            connection.used = True
            connection.idle_since = time.monotonic()
            pool.idle.append(connection)
        else:
            connection.close()
        return reply

    def _pool(self, key: str, target: Target) -> _Pool:
        pool = self.pools.get(key)
        if pool is not None and pool.target is target:  # the same checked target as last time
            self.pools.move_to_end(key)
            return pool
        destination = _Destination(target.scheme, target.address, target.port, target.host)
        if pool is not None:
            self.pools.move_to_end(key)
            if pool.destination == destination:
                pool.target, pool.head = target, _request_head(target)
                return pool
            pool.close()  # the URL changed, or its name now resolves elsewhere: not to the old place
        elif len(self.pools) >= MAX_POOLS:
            _, oldest = self.pools.popitem(last=False)
            oldest.close()
        pool = self.pools[key] = _Pool(destination, target)
        return pool

    async def _connect(self, destination: _Destination, deadline: float) -> _Connection:
        loop = asyncio.get_running_loop()
        seconds = min(self.connect_timeout, deadline - loop.time())
        if seconds <= 0:
            raise WebhookTimeout("no answer in time")
        https = destination.scheme == "https"
        deadlines = self._deadlines
        if deadlines is None or deadlines.loop is not loop:
            deadlines = self._deadlines = _Deadlines(loop)
        try:
            async with asyncio.timeout(seconds):
                _, connection = await loop.create_connection(
                    lambda: _Connection(loop, deadlines),
                    destination.address,  # the checked address, never the name resolved again
                    destination.port,
                    ssl=self.tls if https else None,
                    server_hostname=destination.host if https else None,
                )
        except TimeoutError:
            raise WebhookTimeout(f"could not connect within {seconds:.3g} s") from None
        except ssl.SSLError as exc:
            raise WebhookError(f"TLS: {exc.reason or exc}") from None
        except OSError as exc:
            raise WebhookError(f"could not connect: {exc.strerror or exc}") from None
        return connection

    def sweep(self) -> None:
        """Close connections idle past the keep-alive time, and forget empty pools (at most once a
        second: the claim loop calls this every round)."""
        now = time.monotonic()
        if now - self._swept < 1.0:
            return
        self._swept = now
        for key in list(self.pools):
            pool = self.pools[key]
            pool.sweep(now)
            if not pool.idle:
                del self.pools[key]

    def close(self) -> None:
        for pool in self.pools.values():
            pool.close()
        self.pools.clear()


def _request(head: bytes, headers: list[tuple[str, str]], body: bytes) -> bytes:
    lines = [f"{name}: {value}" for name, value in headers]
    lines.append(f"content-length: {len(body)}\r\n\r\n")
    return head + "\r\n".join(lines).encode("latin-1") + body


def _request_head(target: Target) -> bytes:
    """The request line and Host, the same for every attempt to a URL: made once a pool's target
    (quoting the path each time was a tenth of building a request)."""
    return f"POST {quote(target.path, safe=PATH_SAFE)} HTTP/1.1\r\nhost: {target.host_header}\r\n".encode(
        "latin-1"
    )
