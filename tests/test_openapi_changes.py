"""gateway/openapi_changes.py on crafted documents: each kind of breaking change is found and named,
and what only adds or relaxes is not."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from gateway.openapi_changes import breaking_changes

JSON = dict[str, Any]


def document() -> JSON:
    """A small API: a facility created from a body, read by id, listed with an optional filter."""
    return {
        "openapi": "3.1.0",
        "paths": {
            "/v1/facilities": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Create"}}},
                    },
                    "responses": {
                        "201": {
                            "description": "created",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Read"}}
                            },
                        }
                    },
                },
                "get": {
                    "parameters": [
                        {
                            "name": "kind",
                            "in": "query",
                            "required": False,
                            "schema": {"$ref": "#/components/schemas/Kind"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "a page",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "array",
                                        "items": {"$ref": "#/components/schemas/Read"},
                                    }
                                }
                            },
                        }
                    },
                },
            },
            "/v1/facilities/{id}": {
                "get": {
                    "parameters": [
                        {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "one",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Read"}}
                            },
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Kind": {"type": "string", "enum": ["community_point", "kindergarten"]},
                "Create": {
                    "type": "object",
                    "required": ["name", "kind"],
                    "properties": {
                        "name": {"type": "string", "maxLength": 200},
                        "kind": {"$ref": "#/components/schemas/Kind"},
                        "capacity": {"type": "integer", "minimum": 1, "maximum": 500},
                        "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                    },
                },
                "Read": {
                    "type": "object",
                    "required": ["id", "name", "kind"],
                    "properties": {
                        "id": {"type": "string"},
                        "name": {"type": "string"},
                        "kind": {"$ref": "#/components/schemas/Kind"},
                        "license_no": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                        "children": {"type": "array", "items": {"$ref": "#/components/schemas/Child"}},
                    },
                },
                "Child": {"type": "object", "properties": {"age_class": {"type": "string"}}},
            }
        },
    }


def changed(edit: Callable[[JSON], None]) -> list[str]:
    old = document()
    new = copy.deepcopy(old)
    edit(new)
    return breaking_changes(old, new)


def schemas(doc: JSON) -> JSON:
    return doc["components"]["schemas"]


BREAKING: dict[str, tuple[Callable[[JSON], None], str]] = {
    "removed path": (lambda d: d["paths"].pop("/v1/facilities/{id}"), "path /v1/facilities/{id} removed"),
    "removed operation": (lambda d: d["paths"]["/v1/facilities"].pop("get"), "GET /v1/facilities removed"),
    "success status changed": (
        lambda d: d["paths"]["/v1/facilities"]["post"]["responses"].update(
            {"200": d["paths"]["/v1/facilities"]["post"]["responses"].pop("201")}
        ),
        "POST /v1/facilities: no longer answers 201",
    ),
    "new required field": (
        lambda d: schemas(d)["Create"]["required"].append("capacity"),
        "POST /v1/facilities body: new required field `capacity`",
    ),
    "new required parameter": (
        lambda d: d["paths"]["/v1/facilities"]["get"]["parameters"][0].update(required=True),
        "GET /v1/facilities query parameter `kind` is now required",
    ),
    "narrowed enum": (
        lambda d: schemas(d)["Kind"].update(enum=["community_point"]),
        "POST /v1/facilities body.kind: no longer accepts kindergarten",
    ),
    "narrowed type": (
        lambda d: schemas(d)["Create"]["properties"].update(note={"type": "string"}),
        "POST /v1/facilities body.note: no longer accepts null",
    ),
    "tighter bound": (
        lambda d: schemas(d)["Create"]["properties"]["capacity"].update(maximum=100),
        "POST /v1/facilities body.capacity: maximum narrowed to 100",
    ),
    "new bound": (
        lambda d: schemas(d)["Create"]["properties"]["name"].update(minLength=2),
        "POST /v1/facilities body.name: minLength narrowed to 2",
    ),
    "removed response field": (
        lambda d: schemas(d)["Read"]["properties"].pop("license_no"),
        "GET /v1/facilities/{id} 200: field `license_no` removed",
    ),
    "removed field deep in a list": (
        lambda d: schemas(d)["Child"]["properties"].pop("age_class"),
        "GET /v1/facilities 200[].children[]: field `age_class` removed",
    ),
    "response field's type changed": (
        lambda d: schemas(d)["Read"]["properties"].update(id={"type": "integer"}),
        "GET /v1/facilities/{id} 200.id: may now be integer",
    ),
    "body media type dropped": (
        lambda d: d["paths"]["/v1/facilities"]["post"]["requestBody"].update(
            content={"application/x-www-form-urlencoded": {"schema": {"type": "object"}}}
        ),
        "POST /v1/facilities: no longer accepts a application/json body",
    ),
}


@pytest.mark.parametrize("case", list(BREAKING), ids=list(BREAKING))
def test_a_breaking_change_is_found_and_named(case: str) -> None:
    edit, expected = BREAKING[case]
    assert expected in changed(edit)


NOT_BREAKING: dict[str, Callable[[JSON], None]] = {
    "new path": lambda d: d["paths"].update(
        {"/v1/coverage": {"get": {"responses": {"200": {"description": "ok"}}}}}
    ),
    "new operation": lambda d: d["paths"]["/v1/facilities/{id}"].update(
        {"delete": {"responses": {"204": {"description": "gone"}}}}
    ),
    "new optional field": lambda d: schemas(d)["Create"]["properties"].update(inclusive={"type": "boolean"}),
    "new response field": lambda d: schemas(d)["Read"]["properties"].update(status={"type": "string"}),
    "enum widened": lambda d: schemas(d)["Kind"]["enum"].append("workplace"),
    "required field made optional": lambda d: schemas(d)["Create"]["required"].remove("kind"),
    "bound relaxed": lambda d: schemas(d)["Create"]["properties"]["capacity"].update(maximum=1000),
    "request accepts null": lambda d: schemas(d)["Create"]["properties"].update(
        name={"anyOf": [{"type": "string", "maxLength": 200}, {"type": "null"}]}
    ),
    "new optional parameter": lambda d: d["paths"]["/v1/facilities"]["get"]["parameters"].append(
        {"name": "town_code", "in": "query", "required": False, "schema": {"type": "string"}}
    ),
    "new error status": lambda d: d["paths"]["/v1/facilities"]["post"]["responses"].update(
        {"409": {"description": "conflict"}}
    ),
}


@pytest.mark.parametrize("case", list(NOT_BREAKING), ids=list(NOT_BREAKING))
def test_adding_or_relaxing_breaks_nothing(case: str) -> None:
    assert changed(NOT_BREAKING[case]) == []


def test_the_same_document_breaks_nothing_and_self_references_end() -> None:
    doc = document()
    schemas(doc)["Child"]["properties"]["siblings"] = {
        "type": "array",
        "items": {"$ref": "#/components/schemas/Child"},
    }
    assert breaking_changes(doc, copy.deepcopy(doc)) == []
