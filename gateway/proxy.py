"""Forwarding to the services: one pooled httpx client, bodies bounded on the way in and streamed
on the way out, hop-by-hop headers stripped, the caller's identity signed on."""

from __future__ import annotations

import httpx
from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from gateway.errors import PayloadTooLarge, UpstreamTimeout
from shared.errors import NotFound, ServiceUnavailable
from shared.identity import IDENTITY_HEADER, Identity, IdentitySigner

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# The gateway's own server sets these on the way out.
NOT_RETURNED = HOP_BY_HOP | {"date", "server", "x-request-id"}
# Never passed through from the caller: the gateway is the only source of these.
NOT_FORWARDED = HOP_BY_HOP | {"host", "authorization", "content-length", IDENTITY_HEADER, "x-request-id"}


async def read_bounded_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"The body is larger than {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"The body is larger than {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


class Forwarder:
    def __init__(
        self, *, client: httpx.AsyncClient, upstreams: dict[str, str], signer: IdentitySigner
    ) -> None:
        self.client = client
        self.upstreams = upstreams
        self.signer = signer

    async def forward(
        self, *, request: Request, service: str, caller: Identity, body: bytes, request_id: str
    ) -> StreamingResponse:
        base = self.upstreams.get(service)
        if base is None:
            raise NotFound("No service serves this path.")
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in NOT_FORWARDED]
        headers.append((IDENTITY_HEADER, self.signer.sign(caller, request_id=request_id)))
        headers.append(("x-request-id", request_id))
        if request.client is not None:
            headers.append(("x-forwarded-for", request.client.host))
        # The raw path and query, still percent-encoded: decoding "%2F" would change the path.
        target = base + request.scope["raw_path"].decode("latin-1")
        if request.scope["query_string"]:
            target += "?" + request.scope["query_string"].decode("latin-1")
        upstream_request = self.client.build_request(request.method, target, headers=headers, content=body)
        try:
            upstream = await self.client.send(upstream_request, stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(f"The {service} service did not answer in time.") from exc
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"The {service} service is unavailable; retry shortly.") from exc
        response_headers = {
            k: v
            for k, v in upstream.headers.items()
            if k.lower() not in HOP_BY_HOP and k.lower() != "x-request-id"
        }
        return StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            headers=response_headers,
            background=BackgroundTask(upstream.aclose),
        )
