"""One OpenAPI document for the whole API, /docs, /readyz that knows the services, /metrics."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import FastAPI

from cradle.layout import free_port
from gateway.openapi import merge
from tests.gateway.conftest import Gateway, start_gateway
from tests.gateway.test_native_upstream import RawService, Received
from tests.servers import serving
from tests.support import DatabaseFactory, eventually, listener_client


async def test_openapi_merges_the_services_with_the_gateways_own(gw: Gateway) -> None:
    response = await gw.client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    paths = document["paths"]
    assert "/v1/auth/token" in paths and "/v1/admin/clients/{client_id}/rotate-secret" in paths
    assert "/v1/audit" in paths
    assert "/v1/facilities" in paths and "post" in paths["/v1/facilities"]  # the registry's
    assert "/healthz" not in paths
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    # Every reference resolves inside the one document.
    schemas = document["components"]["schemas"]
    refs: list[str] = []

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "$ref":
                    refs.append(value)
                else:
                    collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(document)
    assert refs and all(r.rsplit("/", 1)[1] in schemas for r in refs if r.startswith("#/components/schemas/"))
    headers = document["components"]["headers"]
    assert all(r.rsplit("/", 1)[1] in headers for r in refs if r.startswith("#/components/headers/"))
    assert all(r.startswith(("#/components/schemas/", "#/components/headers/")) for r in refs)


async def test_a_down_service_is_left_out_and_added_once_it_is_up(
    databases: DatabaseFactory, keys: dict[str, Any], registry_app: FastAPI
) -> None:
    port = free_port()
    async with start_gateway(
        databases=databases, keys=keys, registry_url=f"http://127.0.0.1:{port}", openapi_refresh_seconds=1
    ) as gw:
        without = (await gw.client.get("/openapi.json")).json()
        assert "/v1/facilities" not in without["paths"] and "/v1/auth/token" in without["paths"]

        async def merged() -> bool:
            return "/v1/facilities" in (await gw.client.get("/openapi.json")).json()["paths"]

        async with serving(registry_app, port=port):
            await eventually(merged, interval=0.3)


def test_a_schema_two_services_define_differently_is_kept_apart() -> None:
    own = {"openapi": "3.1.0", "paths": {}, "components": {"schemas": {"Page": {"type": "object"}}}}
    service = {
        "paths": {"/v1/x": {"get": {"responses": {"200": {"$ref": "#/components/schemas/Page"}}}}},
        "components": {"schemas": {"Page": {"type": "array"}}},
    }
    same = {"paths": {}, "components": {"schemas": {"Item": {"type": "string"}, "Page": {"type": "array"}}}}
    merged = merge(own, {"registry": service, "guidance": same})
    schemas = merged["components"]["schemas"]
    # The gateway's own name stands; each service's differing one is named after its service (title
    # too: generators name models by it), whichever document came first.
    assert schemas["Page"] == {"type": "object"}
    assert schemas["RegistryPage"] == {"type": "array", "title": "RegistryPage"}
    assert schemas["GuidancePage"] == {"type": "array", "title": "GuidancePage"}
    assert schemas["Item"] == {"type": "string"}  # one definition: no rename
    ref = merged["paths"]["/v1/x"]["get"]["responses"]["200"]["$ref"]
    assert ref == "#/components/schemas/RegistryPage"


def test_errors_are_documented_as_problem_json() -> None:
    """FastAPI documents a 422 as `{"detail": [...]}`; Cradle answers every error as RFC 9457
    problem+json, and every path may answer the gateway's 401/403/429/503 (found by tests/fuzz)."""
    validation = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/X"}}}}
    service = {
        "paths": {
            "/v1/x/{id}": {
                "get": {"responses": {"200": {"description": "ok"}, "422": validation}},
                "patch": {
                    "parameters": [{"name": "If-Match", "in": "header"}],
                    "requestBody": {"content": {}},
                    "responses": {"200": {"description": "ok"}, "409": {"description": "banned"}},
                },
            }
        },
    }
    merged = merge({"openapi": "3.1.0", "paths": {}}, {"registry": service})
    read, edit = merged["paths"]["/v1/x/{id}"]["get"], merged["paths"]["/v1/x/{id}"]["patch"]
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert set(read["responses"]) == {"200", "400", "401", "403", "404", "422", "429", "503"}
    assert set(edit["responses"]) - set(read["responses"]) == {"409", "412", "413"}
    for operation in (read, edit):
        for status, response in operation["responses"].items():
            assert status == "200" or response["content"] == problem, (status, response)
    assert edit["responses"]["409"]["description"] == "banned"
    assert merged["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status"]


async def test_docs_show_the_merged_document(gw: Gateway) -> None:
    response = await gw.client.get("/docs")
    assert response.status_code == 200
    assert "/openapi.json" in response.text and "swagger" in response.text.lower()


async def test_readyz_says_which_services_are_up(gw: Gateway) -> None:
    public = await gw.client.get("/readyz")
    assert public.status_code == 200 and public.json() == {"status": "degraded"}  # guidance is down
    async with listener_client(gw.app) as internal:
        body = (await internal.get("/readyz")).json()
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["registry"] == "ok"
    assert body["checks"]["guidance"].startswith("down")
    assert (await gw.client.get("/healthz")).json()["status"] == "ok"


async def test_metrics_count_requests_by_route_status_and_client_kind(gw: Gateway) -> None:
    headers = await gw.bureau()
    await gw.client.get("/v1/facilities", headers=headers)
    await gw.client.get("/v1/nowhere", headers=headers)
    await gw.client.get("/v1/stations", headers=await gw.admin())
    assert (await gw.client.get("/metrics")).status_code == 404  # not on the public port
    async with listener_client(gw.app) as internal:
        text = (await internal.get("/metrics")).text
    assert (
        'cradle_gateway_requests_total{client_kind="bureau",method="GET",'
        'route="^/v1/(facilities|coverage)(/|$)",status="200"} 1.0'
    ) in text
    assert 'route="unmatched",status="404"' in text
    assert 'cradle_gateway_upstream_errors_total{reason="connect",service="guidance"} 1.0' in text
    assert "cradle_gateway_request_seconds_bucket" in text
    assert "cradle_gateway_audit_pending" in text


async def test_the_document_waits_for_a_services_first_fetch(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    """A request for the document as the gateway starts gets every service that answers, even one
    slower than the request: it waits for the warm-up's fetch under way instead of answering without
    the service (and then keeping it out until the next retry)."""
    slow_document = {
        "openapi": "3.1.0",
        "info": {"title": "registry", "version": "1"},
        "paths": {"/v1/slow-to-describe": {"get": {"responses": {"200": {"description": "OK"}}}}},
    }

    async def describe_slowly(request: Received, writer: asyncio.StreamWriter, _: int) -> bool:
        await asyncio.sleep(1.0)
        body = json.dumps(slow_document).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%b"
            % (len(body), body)
        )
        return True

    async with (
        RawService(describe_slowly) as registry,
        start_gateway(databases=databases, keys=keys, registry_url=registry.url) as gw,
    ):
        first, second = await asyncio.gather(gw.client.get("/openapi.json"), gw.client.get("/openapi.json"))
    assert "/v1/slow-to-describe" in first.json()["paths"]
    assert "/v1/slow-to-describe" in second.json()["paths"]
    assert len([r for r in registry.received if b"/openapi.json" in r.head]) == 1  # one fetch for all
