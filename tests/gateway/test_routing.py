"""Forwarding: the route table is configuration; replies come back unchanged; what the gateway
refuses (413, 404, 405) and what it says when a service is down, slow or killed (503)."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.config import GatewaySettings
from shared.identity import IDENTITY_HEADER, ClientKind, Identity, IdentitySigner
from tests.conftest import facility_body
from tests.gateway.conftest import Gateway, ServiceProcess, start_gateway
from tests.support import DatabaseFactory, eventually, listener_client


@dataclass
class Seen:
    headers: httpx.Headers


class Recording:
    """A service, remembering the headers of every request the gateway sent it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[Seen] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append(Seen(httpx.Headers(scope["headers"])))
        await self.app(scope, receive, send)


async def test_an_unmatched_path_is_a_404_problem(gw: Gateway) -> None:
    for path in ("/v1/nowhere", "/v1/", "/v1/facilitiesx", "/elsewhere"):
        response = await gw.client.get(path, headers=await gw.admin())
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["status"] == 404


async def test_methods_that_are_not_forwarded_are_405(gw: Gateway) -> None:
    response = await gw.client.request("TRACE", "/v1/facilities", headers=await gw.admin())
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/problem+json"


async def test_status_headers_and_body_come_back_unchanged(
    databases: DatabaseFactory, keys: dict[str, Any], registry_app: FastAPI
) -> None:
    transport = Recording(registry_app)
    async with start_gateway(databases=databases, keys=keys, services={"registry": transport}) as gw:
        headers = await gw.bureau(["registry:read", "registry:write"])
        created = await gw.client.post(
            "/v1/facilities",
            json=facility_body(),
            headers={
                **headers,
                "X-Custom": "kept",
                "TE": "trailers",
                "Proxy-Authorization": "Basic eDp5",
                "Keep-Alive": "timeout=5",
                "X-Cradle-Identity": "forged-by-the-caller",
            },
        )
        assert created.status_code == 201
        sent = transport.seen[-1]
        assert sent.headers["x-custom"] == "kept"
        for hop in ("te", "proxy-authorization", "keep-alive", "authorization"):
            assert hop not in sent.headers, hop
        assert sent.headers[IDENTITY_HEADER] != "forged-by-the-caller"
        assert sent.headers["x-request-id"] == created.headers["x-request-id"]

        via_gateway = await gw.client.get(created.headers["location"], headers=headers)
        # The same request straight to the service, with an identity signed as the gateway would.
        signer = IdentitySigner(keys["signing"])
        identity = Identity(client_id="x", kind=ClientKind.bureau, bureau="EDU", scopes=["registry:read"])
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=registry_app), base_url="http://registry"
        ) as direct_client:
            direct = await direct_client.get(
                created.headers["location"], headers={IDENTITY_HEADER: signer.sign(identity)}
            )
        assert via_gateway.status_code == direct.status_code == 200
        assert via_gateway.content == direct.content
        for name in ("etag", "content-type", "content-length"):
            assert via_gateway.headers[name] == direct.headers[name]
        assert json.loads(via_gateway.content)["name"] == "徐汇区天平街道社区托育点"


async def test_an_oversized_body_is_413_whether_declared_or_streamed(
    databases: DatabaseFactory, keys: dict[str, Any], registry_app: FastAPI
) -> None:
    async with start_gateway(
        databases=databases, keys=keys, services={"registry": registry_app}, max_body_bytes=2000
    ) as gw:
        headers = await gw.bureau(["registry:write"])
        big = {**facility_body(), "address": "长" * 3000}
        declared = await gw.client.post("/v1/facilities", json=big, headers=headers)
        assert declared.status_code == 413
        assert declared.headers["content-type"] == "application/problem+json"

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                yield b"x" * 500

        streamed = await gw.client.post(
            "/v1/facilities", content=chunks(), headers={**headers, "Content-Type": "application/json"}
        )
        assert streamed.status_code == 413
        # A body under the limit still goes through.
        assert (
            await gw.client.post("/v1/facilities", json=facility_body(), headers=headers)
        ).status_code == 201


async def test_a_service_that_is_not_there_is_503_with_retry_after(gw: Gateway) -> None:
    response = await gw.client.get("/v1/stations", headers=await gw.admin())
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["content-type"] == "application/problem+json"
    assert "guidance" in response.json()["detail"]


@pytest.fixture
async def gateway_to_process(
    databases: DatabaseFactory, keys: dict[str, Any], registry_process: ServiceProcess
) -> AsyncIterator[Gateway]:
    async with start_gateway(
        databases=databases,
        keys=keys,
        registry_url=registry_process.url,
        upstream_timeout_seconds=1.0,
    ) as gw:
        yield gw


async def test_a_service_killed_during_a_request_is_503(
    gateway_to_process: Gateway, registry_process: ServiceProcess
) -> None:
    gw = gateway_to_process
    headers = await gw.bureau(["registry:read", "registry:write"])

    async def answers() -> bool:  # its first reads may outlast the 1 s timeout on a loaded machine
        return (await gw.client.get("/v1/divisions")).status_code == 200

    await eventually(answers, interval=0.5)
    sent_first = asyncio.Event()

    async def slow_body() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        sent_first.set()
        await asyncio.sleep(1.5)
        yield b'x"}'

    async def kill_when_sending() -> None:
        await sent_first.wait()
        await asyncio.sleep(0.2)
        registry_process.kill()

    response, _ = await asyncio.gather(
        gw.client.post(
            "/v1/facilities", content=slow_body(), headers={**headers, "Content-Type": "application/json"}
        ),
        kill_when_sending(),
    )
    assert response.status_code == 503
    assert response.headers["retry-after"]
    after = await gw.client.get("/v1/facilities", headers=headers)
    assert after.status_code == 503
    async with listener_client(gw.app) as internal:
        metrics = (await internal.get("/metrics")).text
    assert 'cradle_gateway_upstream_errors_total{reason="connect",service="registry"}' in metrics


async def test_a_service_that_hangs_is_503_after_the_timeout(
    gateway_to_process: Gateway, registry_process: ServiceProcess
) -> None:
    gw = gateway_to_process
    headers = await gw.bureau()
    assert (await gw.client.get("/v1/facilities", headers=headers)).status_code == 200
    assert registry_process.process is not None
    registry_process.process.send_signal(signal.SIGSTOP)
    try:
        started = asyncio.get_running_loop().time()
        response = await gw.client.get("/v1/facilities", headers=headers)
        waited = asyncio.get_running_loop().time() - started
    finally:
        registry_process.process.send_signal(signal.SIGCONT)
    assert response.status_code == 503 and response.headers["retry-after"]
    assert "in time" in response.json()["detail"]
    assert waited < 5
    assert (await gw.client.get("/v1/facilities", headers=headers)).status_code == 200


async def test_the_route_table_is_configuration(
    monkeypatch: pytest.MonkeyPatch, keys: dict[str, Any]
) -> None:
    monkeypatch.setenv("GATEWAY_DATABASE_URL", "sqlite+aiosqlite:///unused.db")
    monkeypatch.setenv("CRADLE_INTERNAL_SIGNING_KEY", keys["signing"])
    monkeypatch.setenv("GATEWAY_JWT_KEYS", json.dumps(keys["jwt_keys"]))
    monkeypatch.setenv("GATEWAY_JWT_ACTIVE_KID", keys["jwt_active_kid"])
    monkeypatch.setenv("GATEWAY_AUDIT_HMAC_KEY", keys["audit_hmac_key"])
    monkeypatch.setenv("GATEWAY_AUDIT_SIGNING_KEY", keys["audit_signing_key"])
    monkeypatch.setenv("GATEWAY_PII_KEYS", json.dumps({"t1": keys["pii_key"]}))
    monkeypatch.setenv("GATEWAY_PII_ACTIVE_KEY_ID", "t1")
    monkeypatch.setenv("GATEWAY_PII_HMAC_KEY", keys["pii_hmac_key"])
    monkeypatch.setenv(
        "GATEWAY_ROUTES",
        json.dumps([{"pattern": "^/v1/towns(/|$)", "service": "registry", "scopes": ["registry:read"]}]),
    )
    monkeypatch.setenv("GATEWAY_RATE_LIMITS", json.dumps({"operator": {"rate": 1, "burst": 2}}))
    settings = GatewaySettings()  # type: ignore[call-arg]
    assert [r.pattern for r in settings.routes] == ["^/v1/towns(/|$)"]
    assert settings.rate_limits["operator"].burst == 2
    assert settings.rate_limits["bureau"].burst == 200  # the other kinds keep their defaults

    monkeypatch.setenv("GATEWAY_ROUTES", json.dumps([{"pattern": "^/v1/x", "service": "nowhere"}]))
    with pytest.raises(ValueError, match="unknown services"):
        GatewaySettings()  # type: ignore[call-arg]


async def test_a_configured_route_is_forwarded(
    databases: DatabaseFactory, keys: dict[str, Any], registry_app: FastAPI
) -> None:
    routes = [
        {"pattern": r"^/v1/(divisions|facilities)(/|$)", "service": "registry", "scopes": ["registry:read"]}
    ]
    async with start_gateway(
        databases=databases, keys=keys, services={"registry": registry_app}, routes=routes
    ) as gw:
        headers = await gw.bureau()
        assert (await gw.client.get("/v1/divisions", headers=headers)).status_code == 200
        assert (await gw.client.get("/v1/divisions")).status_code == 401  # not public in this table
        assert (await gw.client.get("/v1/public/facilities")).status_code == 404


async def test_odd_input_never_makes_a_500(gw: Gateway) -> None:
    admin = await gw.admin()
    for path in (
        "/v1/facilities/%2F..%2F",
        "/v1/facilities/" + "a" * 5000,
        "/v1/facilities/%00",
        "/v1/admin/clients/%00",
        "/v1/%ff",
    ):
        response = await gw.client.get(path, headers=admin)
        assert response.status_code < 500, (path, response.status_code)
    weird = await gw.client.post(
        "/v1/facilities", content=b"\xff\xfe not json", headers={**admin, "Content-Type": "application/json"}
    )
    assert weird.status_code == 400
    bad_length = await gw.client.post(
        "/v1/facilities", content=b"{}", headers={**admin, "Content-Length": "abc"}
    )
    assert bad_length.status_code < 500


async def test_control_characters_in_the_gateways_own_inputs_are_refused_not_500(gw: Gateway) -> None:
    admin = await gw.admin()
    for params in ({"client_id": "\x00"}, {"path": "/v1/\x00"}):
        response = await gw.client.get("/v1/audit", params=params, headers=admin)
        assert response.status_code == 422, params
    token = await gw.client.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": "ad\x00min", "client_secret": "x\x00"},
    )
    assert token.status_code == 400 and token.json()["error"] == "invalid_request"  # RFC 6749 §5.2
    secret = await gw.client.post(
        "/v1/auth/token",
        data={"grant_type": "client_credentials", "client_id": "admin", "client_secret": "x\x00"},
    )
    assert secret.status_code == 401 and secret.json()["error"] == "invalid_client"
