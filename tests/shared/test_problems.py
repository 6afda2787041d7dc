"""RFC 9457 problems and cursor pagination, on a small app built from the shared pieces."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field

from shared.errors import Conflict, install_error_handlers
from shared.observability import Metrics, install_observability
from shared.pagination import Page, PageParams, decode_cursor, encode_cursor, make_page, page_params


class Child(BaseModel):
    birth_date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    name: str = Field(min_length=1)


class Family(BaseModel):
    town_code: str
    children: list[Child] = Field(min_length=1)


def build_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    install_observability(app, Metrics("test"))

    @app.post("/families")
    async def create(body: Family) -> Family:
        return body

    @app.get("/conflict")
    async def conflict() -> None:
        raise Conflict("already there", existing_id="abc")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    @app.get("/numbers")
    async def numbers(params: Annotated[PageParams, Depends(page_params)]) -> Page[int]:
        start = params.after[0] + 1 if params.after else 0
        rows = list(range(start, min(start + params.limit + 1, 120)))
        return make_page(rows, limit=params.limit, position_of=lambda n: [n])

    return app


@pytest.fixture
async def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=build_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c


async def test_every_wrong_field_is_named_with_its_path(client: httpx.AsyncClient) -> None:
    response = await client.post("/families", json={"children": [{"birth_date": "soon"}, {"name": "x"}]})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"town_code", "children.0.birth_date", "children.0.name", "children.1.birth_date"}


async def test_malformed_json_is_a_400_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/families", content=b'{"town_code": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "body"


async def test_domain_errors_carry_their_extra_members(client: httpx.AsyncClient) -> None:
    response = await client.get("/conflict")
    assert response.status_code == 409
    assert response.json() == {
        "type": "/problems/conflict",
        "title": "Conflict",
        "status": 409,
        "detail": "already there",
        "errors": [],
        "existing_id": "abc",
    }


async def test_an_unexpected_error_is_a_problem_without_internals(client: httpx.AsyncClient) -> None:
    response = await client.get("/boom", headers={"X-Request-Id": "r-1"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "a bug" not in response.text


async def test_unknown_paths_and_methods_are_problems(client: httpx.AsyncClient) -> None:
    assert (await client.get("/nowhere")).headers["content-type"] == "application/problem+json"
    assert (await client.delete("/families")).status_code == 405


async def test_request_ids_are_kept_or_made(client: httpx.AsyncClient) -> None:
    assert (await client.get("/numbers", headers={"X-Request-Id": "abc-123"})).headers[
        "x-request-id"
    ] == "abc-123"
    made = (await client.get("/numbers", headers={"X-Request-Id": "bad id\n"})).headers["x-request-id"]
    assert made != "bad id\n" and len(made) == 32


async def test_cursor_pages_cover_every_item_once(client: httpx.AsyncClient) -> None:
    seen: list[int] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 50} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/numbers", params=params)).json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(range(120))


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 501}, {"cursor": "!!!"}, {"cursor": encode_cursor({"a": 1})}]
)
async def test_bad_paging_parameters_are_422(client: httpx.AsyncClient, params: dict[str, object]) -> None:
    response = await client.get("/numbers", params=params)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] in ("limit", "cursor")


def test_cursor_round_trip() -> None:
    assert decode_cursor(encode_cursor(["2026-01-01T00:00:00Z", "id-1"])) == ["2026-01-01T00:00:00Z", "id-1"]
