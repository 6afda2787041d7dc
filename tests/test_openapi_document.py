"""The published API document, docs/openapi.json: what the code builds (rebuilt here, compared byte
for byte), valid OpenAPI, breaking no client of the committed one, and readable by a generator:
stable camelCase operationIds, described tags, one name per model, an example on every request
body that its own schema accepts, the rate-limit headers on every reply."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

from cradle.openapi import DOCUMENT, build, render
from gateway.openapi_changes import breaking_changes

OPERATION_ID = re.compile(r"^[a-z]+(?:[A-Z][a-z0-9]*)*$")


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    return build()


@pytest.fixture(scope="module")
def committed() -> dict[str, Any]:
    return json.loads(DOCUMENT.read_text())


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, method, op) for path, item in document["paths"].items() for method, op in item.items()]


def test_the_committed_document_is_what_the_code_builds(built: dict[str, Any]) -> None:
    assert DOCUMENT.read_text() == render(built), "docs/openapi.json is stale: run `python -m cradle.openapi`"


def test_the_document_is_valid_openapi(committed: dict[str, Any]) -> None:
    validate(committed)


def test_nothing_breaks_a_client_of_the_committed_document(
    built: dict[str, Any], committed: dict[str, Any]
) -> None:
    """A change that does (gateway/openapi_changes.py) is a new API version: docs/API.md, Versioning."""
    assert breaking_changes(committed, built) == []


def test_operation_ids_are_camel_case_and_unique(committed: dict[str, Any]) -> None:
    ids = [op.get("operationId", "") for _, _, op in operations(committed)]
    assert all(OPERATION_ID.match(i) for i in ids), [i for i in ids if not OPERATION_ID.match(i)]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    named = {(path, method): op["operationId"] for path, method, op in operations(committed)}
    assert named[("/v1/facilities", "get")] == "listFacilities"
    assert named[("/v1/bans", "post")] == "issueBan"
    assert named[("/v1/auth/token", "post")] == "issueToken"


def test_every_tag_is_described(committed: dict[str, Any]) -> None:
    described = {tag["name"]: tag["description"] for tag in committed["tags"]}
    used = {tag for _, _, op in operations(committed) for tag in op.get("tags", [])}
    assert used == set(described)
    assert all(described.values()), [name for name, text in described.items() if not text]


def test_one_name_per_model(committed: dict[str, Any]) -> None:
    """Generators name a model after its schema's title: two schemas under one title lose one."""
    titles = [schema.get("title", name) for name, schema in committed["components"]["schemas"].items()]
    assert len(titles) == len(set(titles)), sorted(t for t in titles if titles.count(t) > 1)
    assert "HTTPValidationError" not in committed["components"]["schemas"]  # every 422 is a Problem


def request_schema(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The object a body holds: through a `$ref`, an optional body's `anyOf` and a batch's items."""
    if "$ref" in schema:
        return request_schema(document, document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
    for branch in schema.get("anyOf", []):
        if branch.get("type") != "null":
            return request_schema(document, branch)
    if schema.get("type") == "array":
        return request_schema(document, schema["items"])
    return schema


def test_every_request_body_has_an_example_its_schema_accepts(committed: dict[str, Any]) -> None:
    missing, refused = [], []
    for path, method, op in operations(committed):
        for media, content in op.get("requestBody", {}).get("content", {}).items():
            schema = request_schema(committed, content["schema"])
            examples = schema.get("examples") or ([content["example"]] if "example" in content else [])
            if not examples:
                missing.append(f"{method.upper()} {path} ({schema.get('title', media)})")
                continue
            validator = Draft202012Validator({**schema, "components": committed["components"]})
            for example in examples:
                errors = [e.message for e in validator.iter_errors(example)]
                if errors:
                    refused.append(f"{method.upper()} {path}: {errors[:3]}")
    assert missing == [], "request bodies without an example:\n" + "\n".join(missing)
    assert refused == [], "examples their own schema refuses:\n" + "\n".join(refused)


def test_every_reply_declares_the_rate_limit_headers(committed: dict[str, Any]) -> None:
    assert set(committed["components"]["headers"]) == {"RateLimit-Policy", "RateLimit", "Retry-After"}
    for path, method, op in operations(committed):
        if not path.startswith("/v1/"):
            continue
        for status, response in op["responses"].items():
            declared = set(response.get("headers", {}))
            assert {"RateLimit-Policy", "RateLimit"} <= declared, (path, method, status)
            if status in ("429", "503"):
                assert "Retry-After" in response["headers"], (path, method, status)


def test_the_token_endpoint_documents_oauth_errors_not_problems(committed: dict[str, Any]) -> None:
    token = committed["paths"]["/v1/auth/token"]["post"]
    assert set(token["responses"]) == {"200", "400", "401", "413", "429", "503"}
    for status in ("400", "401"):
        schema = token["responses"][status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/OAuthError"}
    assert "application/x-www-form-urlencoded" in token["requestBody"]["content"]
    assert committed["components"]["securitySchemes"]["clientBasic"]["scheme"] == "basic"
