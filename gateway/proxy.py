"""Forwarding to the services, in plain ASGI: one pooled upstream client, small bodies read once,
large or unsized ones streamed (bounded), responses streamed back with their status, headers and
body unchanged, hop-by-hop headers stripped both ways."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.types import Receive, Scope, Send

from gateway.balancer import Balancer, Replica, may_retry, replayable
from gateway.errors import (
    ClientDisconnected,
    PayloadTooLarge,
    ReplyCut,
    UpstreamBadReply,
    UpstreamUnavailable,
)
from gateway.upstream import (
    Body,
    Headers,
    UpstreamClient,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRefused,
    UpstreamResponse,
    UpstreamTimeout,
)
from shared import tracing
from shared.errors import BadRequest
from shared.export import CSV, XLSX
from shared.i18n import N_, tr
from shared.identity import IDENTITY_HEADER, IdentitySigner

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    }
)
# The gateway's own server sets these on the way out.
NOT_RETURNED = HOP_BY_HOP | {b"date", b"server", b"x-request-id"}
# Never passed through from the caller: the gateway is the only source of these. `Expect` is
# answered by the gateway's own server (uvicorn sends the caller its 100 Continue when the body is
# read); the service gets a body already in hand, so asking it to continue would only invite a 1xx.
NOT_FORWARDED = HOP_BY_HOP | {
    b"expect",
    b"host",
    b"authorization",
    b"content-length",
    IDENTITY_HEADER.encode(),
    b"x-request-id",
    b"x-forwarded-for",
    *tracing.TRACE_HEADERS,  # the service continues the gateway's span, not the caller's
}
FILE_TYPES = frozenset({CSV.encode(), XLSX.encode()})  # lists answered as files (shared/export.py)
READ_WHOLE_BELOW = 1024 * 1024  # bodies this small are read once and sent with a length
SEND_WHOLE_BELOW = 256 * 1024  # replies this small go back in one message


class _Counter:
    __slots__ = ("size", "too_large")

    def __init__(self) -> None:
        self.size = 0
        self.too_large = False


async def read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(tr("The body is larger than {limit} bytes.", limit=limit))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def stream_body(receive: Receive, limit: int, counter: _Counter) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunk = message.get("body", b"")
        counter.size += len(chunk)
        if counter.size > limit:
            counter.too_large = True
            raise PayloadTooLarge(tr("The body is larger than {limit} bytes.", limit=limit))
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


class Forwarder:
    def __init__(
        self,
        *,
        client: UpstreamClient,
        upstreams: dict[str, str],
        max_body_bytes: int,
        retry_after: int,
        signer: IdentitySigner,
        file_timeout: float = 600.0,
        eject_seconds: float = 5.0,
    ) -> None:
        self.client = client
        self.file_timeout = file_timeout
        self.signer = signer  # what the forwarded identities are signed with (tests sign their own)
        self.send_whole_below = SEND_WHOLE_BELOW
        # service → its replicas' base URLs, comma-separated (tests may point one elsewhere)
        self.upstreams = upstreams
        self.balancer = Balancer(upstreams, eject_seconds=eject_seconds)
        self.max_body_bytes = max_body_bytes
        self.retry_after = retry_after

    def _unavailable(self, service: str, why: str, exc: Exception) -> UpstreamUnavailable:
        if isinstance(exc, UpstreamProtocolError):
            return UpstreamBadReply(
                tr("The {service} service answered something that is not valid HTTP/1.1.", service=service),
                retry_after=self.retry_after,
                service=service,
                reason=exc.reason,
            )
        return UpstreamUnavailable(
            tr("The {service} service {why}; retry shortly.", service=service, why=why),
            retry_after=self.retry_after,
            service=service,
            reason=getattr(exc, "reason", type(exc).__name__),
        )

    async def send(
        self, service: str, method: str, target: str, headers: Headers, body: Body
    ) -> UpstreamResponse:
        """The request to one of the service's replicas (gateway/balancer.py); on a failure, to the
        next one only when that cannot make the request act twice."""
        replicas = self.balancer.of(service)
        order = replicas.order()
        for index, replica in enumerate(order):
            replica.outstanding += 1
            try:
                response = await self.client.send(method, replica.base, target, headers, body)
            except UpstreamError as exc:
                replica.outstanding -= 1
                if isinstance(exc, UpstreamRefused):
                    replicas.refused(replica)
                if index + 1 < len(order) and may_retry(method, replayable(body), exc):
                    continue
                raise
            except BaseException:
                replica.outstanding -= 1
                raise
            return _Counted(response, replica)
        raise AssertionError("a service has at least one replica")

    async def forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        service: str,
        identity_token: str,
        request_id: str,
        extra_headers: list[tuple[bytes, bytes]],
    ) -> int:
        """Forwards and answers; returns the status sent. Raises a CradleError only before the
        reply has started (the caller renders it)."""
        method: str = scope["method"]
        declared: int | None = None
        chunked = False
        headers: list[tuple[bytes, bytes]] = []
        listed = _connection_options(scope["headers"])
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else -1
            elif name == b"transfer-encoding":
                chunked = True
            if name not in NOT_FORWARDED and name not in listed:
                headers.append((name, value))
        headers.append((b"x-cradle-identity", identity_token.encode()))
        headers.append((b"x-request-id", request_id.encode()))
        headers.extend(tracing.current_headers())
        client = scope.get("client")
        if client:
            headers.append((b"x-forwarded-for", str(client[0]).encode()))

        limit = self.max_body_bytes
        if declared is not None and declared < 0:
            raise BadRequest("Content-Length is not a number.")
        if declared is not None and declared > limit:
            raise PayloadTooLarge(tr("The body is larger than {limit} bytes.", limit=limit))
        counter = _Counter()
        content: bytes | AsyncIterator[bytes] | None
        if declared is None and not chunked:
            content = None  # no body (GET, HEAD, DELETE …)
        elif declared is not None and declared <= READ_WHOLE_BELOW:
            content = await read_body(receive, limit)
        else:
            content = stream_body(receive, limit, counter)

        raw_path = scope.get("raw_path") or scope["path"].encode()
        target = raw_path.decode("latin-1")
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        try:
            upstream = await self.send(service, method, target, headers, content)
        except UpstreamTimeout as exc:
            raise self._unavailable(service, N_("did not answer in time"), exc) from exc
        except UpstreamError as exc:
            if counter.too_large:
                raise PayloadTooLarge(tr("The body is larger than {limit} bytes.", limit=limit)) from exc
            raise self._unavailable(service, N_("is unavailable"), exc) from exc

        if counter.too_large:  # the service answered a body we cut short: that answer is not theirs
            await upstream.aclose()
            raise PayloadTooLarge(tr("The body is larger than {limit} bytes.", limit=limit))
        if _media_type(upstream.headers) in FILE_TYPES:
            upstream.wait_up_to(self.file_timeout)  # a list as a file may be assembled before it is sent
        started = False
        try:
            dropped = NOT_RETURNED | _connection_options(upstream.headers) | {b"content-language"}
            ours = set(extra_headers)  # the gateway's own (its Content-Language, Vary) are not repeated
            response_headers = [
                (name, value)
                for name, value in upstream.headers
                if name not in dropped and (name, value) not in ours
            ]
            response_headers.extend(extra_headers)
            length = _content_length(upstream.headers)
            if length is not None and length <= self.send_whole_below:
                body = b"".join([chunk async for chunk in upstream.chunks()])
                await send(
                    {"type": "http.response.start", "status": upstream.status, "headers": response_headers}
                )
                await send({"type": "http.response.body", "body": body})
                return upstream.status
            started = True
            await send(
                {"type": "http.response.start", "status": upstream.status, "headers": response_headers}
            )
            async for chunk in upstream.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
            return upstream.status
        except UpstreamError as exc:
            # Before the reply started this is still a clean 503; after, the caller sees a cut reply.
            if not started:
                raise self._unavailable(service, N_("failed while answering"), exc) from exc
            raise ReplyCut(service, upstream.status) from exc
        finally:
            await upstream.aclose()


class _Counted:
    """A reply that counts as outstanding on its replica until it is closed."""

    __slots__ = ("_closed", "_replica", "_response", "headers", "status")

    def __init__(self, response: UpstreamResponse, replica: Replica) -> None:
        self._response = response
        self._replica = replica
        self._closed = False
        self.status = response.status
        self.headers = response.headers

    def chunks(self) -> AsyncIterator[bytes]:
        return self._response.chunks()

    def wait_up_to(self, seconds: float) -> None:
        self._response.wait_up_to(seconds)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            self._replica.outstanding -= 1
        await self._response.aclose()


def _connection_options(headers: list[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """The headers `Connection` names are hop-by-hop too (RFC 9110 §7.6.1)."""
    named = [
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
    ]
    return frozenset(token for token in named if token)


def _media_type(headers: list[tuple[bytes, bytes]]) -> bytes:
    for name, value in headers:
        if name == b"content-type":
            return value.split(b";")[0].strip().lower()
    return b""


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
