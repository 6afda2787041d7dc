"""Bodies are bounded before anything parses them: too large is a 413, nested too deep a 422, and
what passes reaches the app unchanged."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI, Request

from shared.errors import install_error_handlers
from shared.jsonlimits import JsonLimits, json_depth_exceeds


def nested(depth: int, *, leaf: object = 1) -> object:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"a": value}
    return value


@pytest.mark.parametrize(
    ("body", "limit", "exceeds"),
    [
        (b"{}", 1, False),
        (b"[[]]", 1, True),
        (json.dumps(nested(32)).encode(), 32, False),
        (json.dumps(nested(33)).encode(), 32, True),
        (b'{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', 3, False),  # inside a string
        (b'{"a": "\\"[[[[[[["}', 3, False),  # an escaped quote does not end the string
        (b'[{"a": "]]]]", "b": [[{"c": "{{{{"}]]}]', 5, False),  # strings on both sides, no escape
        (b'[{"a": "]]]]", "b": [[{"c": "{{{{"}]]}]', 4, True),
        (b'{"a": "x\\\\", "b": [[[1]]]}', 3, True),  # an escaped backslash, then the string ends
        (b'"' + b"[" * 300, 32, False),  # an unterminated string: the parser's to refuse
        (b"[" * 300 + b"]" * 300, 32, True),
        (b"[]" * 100_000, 2, False),  # wide, not deep
        (b"[[[", 32, False),  # malformed and shallow: the parser's to refuse
    ],
)
def test_depth(body: bytes, limit: int, exceeds: bool) -> None:
    assert json_depth_exceeds(body, limit) is exceeds


def app(**limits: int) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(JsonLimits, **limits)

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, object]:
        return {"got": await request.json()}

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, object]:
        return {"size": len(await request.body())}

    return app


async def call(app: FastAPI, content: bytes, content_type: str = "application/json") -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        return await client.post("/echo", content=content, headers={"content-type": content_type})


async def test_too_deep_is_a_422_naming_the_limit() -> None:
    response = await call(app(max_depth=32), json.dumps(nested(300)).encode())
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["max_depth"] == 32 and "32" in problem["detail"]
    assert problem["errors"] == [
        {"field": "body", "message": "nests arrays and objects deeper than 32 levels"}
    ]


async def test_within_the_limits_the_body_arrives_unchanged() -> None:
    body = nested(31, leaf="[{ 文字 }]")
    response = await call(app(max_depth=32), json.dumps(body).encode())
    assert response.status_code == 200
    assert response.json() == {"got": body}


async def test_too_large_is_a_413() -> None:
    big = json.dumps({"a": "x" * 5000}).encode()
    response = await call(app(max_body_bytes=4096), big)
    assert response.status_code == 413
    assert response.json()["max_body_bytes"] == 4096
    # The same limit when the length is not declared (a chunked body).

    async def chunks():  # type: ignore[no-untyped-def]
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app(max_body_bytes=4096)), base_url="http://t"
    ) as client:
        response = await client.post("/echo", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


@pytest.mark.parametrize("content_type", ["text/plain", "application/merge-patch+json", ""])
async def test_deep_json_under_any_declared_type_is_refused(content_type: str) -> None:
    # Some routes parse their body whatever its type, and FastAPI parses an untyped body as JSON.
    response = await call(app(max_depth=2), b"[[[[1]]]]", content_type=content_type)
    assert response.status_code == 422


async def test_forms_are_not_measured() -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app(max_depth=2)), base_url="http://t"
    ) as client:
        response = await client.post(
            "/raw", content=b"a=[[[[", headers={"content-type": "application/x-www-form-urlencoded"}
        )
    assert response.status_code == 200 and response.json() == {"size": 6}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b'{"a": "\\ud800"}', 400),  # a lone high surrogate
        (b'{"\\udfff": 1}', 400),  # a lone low one, in a key
        (b'{"a": "\\ud83d\\ude00"}', 200),  # a pair: an emoji written ASCII-only
        (b'{"a": "\\\\ud800"}', 200),  # an escaped backslash, then text
    ],
)
async def test_lone_surrogates_are_malformed_json(body: bytes, status: int) -> None:
    response = await call(app(), body)
    assert response.status_code == status, response.text
    if status == 400:
        assert "lone surrogate" in response.json()["detail"]
