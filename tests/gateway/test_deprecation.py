"""A deprecated path or field, declared once in the gateway's settings (test-only declarations over
the real registry): every answer on the path carries Deprecation (RFC 9745), Sunset (RFC 8594) and
a deprecation Link, a refusal included, and the OpenAPI document marks it `deprecated: true`; what
is not declared carries nothing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from gateway.deprecations import Deprecated
from tests.gateway.conftest import Gateway, start_gateway
from tests.support import DatabaseFactory

SINCE = datetime(2026, 12, 1, tzinfo=UTC)
SUNSET = datetime(2027, 6, 30, 16, 0, tzinfo=UTC)
DIVISIONS_NOTE = "https://docs.cradle.example/API-CHANGES#divisions-flat"
FIELD_NOTE = "https://docs.cradle.example/API-CHANGES#facility-inclusive"
DECLARED = [
    Deprecated(path="/v1/divisions", methods=("GET",), since=SINCE, sunset=SUNSET, link=DIVISIONS_NOTE),
    Deprecated(
        path="/v1/facilities/{facility_id}",
        schema_name="FacilityRead",
        field="inclusive",
        since=datetime(2026, 12, 2, tzinfo=UTC),
        sunset=datetime(2027, 12, 31, tzinfo=UTC),
        link=FIELD_NOTE,
    ),
]


@pytest.fixture
async def gw(
    databases: DatabaseFactory, keys: dict[str, Any], registry_app: FastAPI
) -> AsyncIterator[Gateway]:
    async with start_gateway(
        databases=databases, keys=keys, services={"registry": registry_app}, deprecations=DECLARED
    ) as gateway:
        yield gateway


def notices(headers: Any) -> tuple[str | None, str | None, list[str]]:
    return headers.get("deprecation"), headers.get("sunset"), headers.get_list("link")


async def test_a_deprecated_path_says_so_on_every_answer(gw: Gateway) -> None:
    response = await gw.client.get("/v1/divisions")
    assert response.status_code == 200
    deprecation, sunset, links = notices(response.headers)
    assert deprecation == f"@{int(SINCE.timestamp())}"
    assert sunset is not None and sunset.endswith(" GMT") and parsedate_to_datetime(sunset) == SUNSET
    assert links == [f'<{DIVISIONS_NOTE}>; rel="deprecation"; type="text/html"']

    # Not declared: another method on it, another path.
    assert notices((await gw.client.post("/v1/divisions")).headers) == (None, None, [])
    assert notices((await gw.client.get("/v1/public/facilities")).headers) == (None, None, [])


async def test_a_deprecated_field_marks_its_path_even_when_refused(gw: Gateway) -> None:
    path = f"/v1/facilities/{uuid.uuid4()}"
    unauthenticated = await gw.client.get(path)
    assert unauthenticated.status_code == 401
    deprecation, sunset, links = notices(unauthenticated.headers)
    assert deprecation == f"@{int(datetime(2026, 12, 2, tzinfo=UTC).timestamp())}"
    assert sunset == "Fri, 31 Dec 2027 00:00:00 GMT"
    assert links == [f'<{FIELD_NOTE}>; rel="deprecation"; type="text/html"']

    reader = await gw.bureau()
    missing = await gw.client.get(path, headers=reader)
    assert missing.status_code == 404 and missing.headers["deprecation"] == deprecation


async def test_the_document_marks_what_is_deprecated(gw: Gateway) -> None:
    document = (await gw.client.get("/openapi.json")).json()
    assert document["paths"]["/v1/divisions"]["get"]["deprecated"] is True
    facility = document["paths"]["/v1/facilities/{facility_id}"]
    assert "deprecated" not in facility["get"]  # only its field is deprecated
    read = document["components"]["schemas"]["FacilityRead"]["properties"]
    assert read["inclusive"]["deprecated"] is True
    assert not any(read[name].get("deprecated") for name in read if name != "inclusive")
    others = [
        (path, method)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and operation.get("deprecated") and path != "/v1/divisions"
    ]
    assert others == []


async def test_past_its_sunset_a_path_is_gone(
    databases: DatabaseFactory, keys: dict[str, Any], registry_app: FastAPI
) -> None:
    retired = Deprecated(
        path="/v1/divisions",
        since=datetime(2025, 1, 1, tzinfo=UTC),
        sunset=datetime(2026, 1, 1, tzinfo=UTC),
        link=DIVISIONS_NOTE,
    )
    async with start_gateway(
        databases=databases, keys=keys, services={"registry": registry_app}, deprecations=[retired]
    ) as gw:
        gone = await gw.client.get("/v1/divisions", headers={"Accept-Language": "zh-CN"})
        assert gone.status_code == 410 and gone.headers["content-type"] == "application/problem+json"
        assert gone.json()["type"] == "/problems/gone" and gone.json()["title"] == "已不存在"
        assert DIVISIONS_NOTE in gone.json()["detail"] and gone.headers["content-language"] == "zh-CN"
        assert gone.headers["sunset"] == "Thu, 01 Jan 2026 00:00:00 GMT"
        # Another path is untouched.
        assert (await gw.client.get("/v1/public/facilities")).status_code == 200


def test_a_declaration_is_checked() -> None:
    with pytest.raises(ValidationError, match="sunset"):
        Deprecated(path="/v1/divisions", since=SUNSET, sunset=SINCE, link=DIVISIONS_NOTE)
    with pytest.raises(ValidationError, match="/v1"):
        Deprecated(path="/healthz", since=SINCE, sunset=SUNSET, link=DIVISIONS_NOTE)
    with pytest.raises(ValidationError, match="both or neither"):
        Deprecated(path="/v1/divisions", field="name", since=SINCE, sunset=SUNSET, link=DIVISIONS_NOTE)
    with pytest.raises(ValidationError):
        Deprecated(path="/v1/divisions", since=datetime(2026, 12, 1), sunset=SUNSET, link=DIVISIONS_NOTE)
