"""What in a new OpenAPI document breaks a client written against the old one: a removed path or
operation, a success status it no longer answers, a new required parameter or request field, a
request field narrowed (a type or enum value it no longer accepts, a tighter bound), a response
field removed or answering a type it did not. Additions and relaxations are not breaking."""

from __future__ import annotations

from typing import Any

JSON = dict[str, Any]
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# A bound that, moved this way, refuses what was accepted.
TIGHTER = {
    "maxLength": min,
    "maxItems": min,
    "maximum": min,
    "exclusiveMaximum": min,
    "minLength": max,
    "minItems": max,
    "minimum": max,
    "exclusiveMinimum": max,
}


class _Documents:
    def __init__(self, old: JSON, new: JSON) -> None:
        self.old, self.new = old, new
        self.changes: list[str] = []
        self._seen: set[tuple[str, int, int]] = set()

    @staticmethod
    def resolve(document: JSON, schema: Any) -> Any:
        while isinstance(schema, dict) and "$ref" in schema:
            ref = schema["$ref"]
            if not ref.startswith("#/"):
                return {}
            node: Any = document
            for part in ref[2:].split("/"):
                node = node.get(part, {}) if isinstance(node, dict) else {}
            schema = node
        return schema if isinstance(schema, dict) else {}

    def branches(self, document: JSON, schema: Any) -> list[JSON]:
        """The alternatives a value may take (anyOf/oneOf flattened, refs resolved)."""
        schema = self.resolve(document, schema)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                out: list[JSON] = []
                for branch in schema[key]:
                    out.extend(self.branches(document, branch))
                return out
        return [schema]

    def types(self, document: JSON, schema: Any) -> set[str] | None:
        """The JSON types allowed; None when any is (a branch names no type)."""
        found: set[str] = set()
        for branch in self.branches(document, schema):
            kind = branch.get("type")
            if kind is None:
                if "const" in branch or "enum" in branch:
                    found.update(_value_type(v) for v in branch.get("enum", [branch.get("const")]))
                    continue
                if "properties" in branch:
                    found.add("object")
                    continue
                return None
            found.update(kind if isinstance(kind, list) else [kind])
        if "number" in found:
            found.add("integer")
        return found

    def enum(self, document: JSON, schema: Any) -> set[Any] | None:
        """The values allowed when every alternative lists them; None when any value of its type is."""
        values: set[Any] = set()
        for branch in self.branches(document, schema):
            if "enum" in branch:
                values.update(_hashable(v) for v in branch["enum"])
            elif "const" in branch:
                values.add(_hashable(branch["const"]))
            elif branch.get("type") == "null":
                values.add(None)
            else:
                return None
        return values

    def object_branch(self, document: JSON, schema: Any) -> JSON | None:
        for branch in self.branches(document, schema):
            if "properties" in branch or branch.get("type") == "object":
                return branch
        return None

    def array_items(self, document: JSON, schema: Any) -> Any:
        for branch in self.branches(document, schema):
            if branch.get("type") == "array" and "items" in branch:
                return branch["items"]
        return None

    def _first_visit(self, mode: str, old: Any, new: Any) -> bool:
        key = (mode, id(self.resolve(self.old, old)), id(self.resolve(self.new, new)))
        if key in self._seen:
            return False
        self._seen.add(key)
        return True

    def request(self, where: str, old: Any, new: Any) -> None:
        """Everything the old schema accepted, the new must accept."""
        if not self._first_visit("request", old, new):
            return
        old_types, new_types = self.types(self.old, old), self.types(self.new, new)
        if old_types is not None and new_types is not None and not old_types <= new_types:
            lost = ", ".join(sorted(old_types - new_types))
            self.changes.append(f"{where}: no longer accepts {lost}")
            return
        old_enum, new_enum = self.enum(self.old, old), self.enum(self.new, new)
        if new_enum is not None and (old_enum is None or not old_enum <= new_enum):
            lost_values = (
                "any value" if old_enum is None else ", ".join(sorted(map(str, old_enum - new_enum)))
            )
            self.changes.append(f"{where}: no longer accepts {lost_values}")
        old_schema, new_schema = self.resolve(self.old, old), self.resolve(self.new, new)
        for bound, stricter in TIGHTER.items():
            if bound in new_schema and (
                bound not in old_schema or stricter(old_schema[bound], new_schema[bound]) != old_schema[bound]
            ):
                self.changes.append(f"{where}: {bound} narrowed to {new_schema[bound]}")
        old_object, new_object = self.object_branch(self.old, old), self.object_branch(self.new, new)
        if old_object is not None and new_object is not None:
            old_required = set(old_object.get("required", []))
            for name in sorted(set(new_object.get("required", [])) - old_required):
                self.changes.append(f"{where}: new required field `{name}`")
            old_properties = old_object.get("properties", {})
            for name, schema in new_object.get("properties", {}).items():
                if name in old_properties:
                    self.request(f"{where}.{name}", old_properties[name], schema)
        old_items, new_items = self.array_items(self.old, old), self.array_items(self.new, new)
        if old_items is not None and new_items is not None:
            self.request(f"{where}[]", old_items, new_items)

    def response(self, where: str, old: Any, new: Any) -> None:
        """Every field the old schema promised, the new one still gives, of a type the old named."""
        if not self._first_visit("response", old, new):
            return
        old_types, new_types = self.types(self.old, old), self.types(self.new, new)
        if old_types is not None and (new_types is None or not new_types <= old_types):
            gained = "any type" if new_types is None else ", ".join(sorted(new_types - old_types))
            self.changes.append(f"{where}: may now be {gained}")
            return
        old_object, new_object = self.object_branch(self.old, old), self.object_branch(self.new, new)
        if old_object is not None and new_object is not None:
            new_properties = new_object.get("properties", {})
            for name, schema in old_object.get("properties", {}).items():
                if name not in new_properties:
                    self.changes.append(f"{where}: field `{name}` removed")
                else:
                    self.response(f"{where}.{name}", schema, new_properties[name])
        old_items, new_items = self.array_items(self.old, old), self.array_items(self.new, new)
        if old_items is not None and new_items is not None:
            self.response(f"{where}[]", old_items, new_items)

    def operation(self, name: str, old: JSON, new: JSON) -> None:
        self._seen.clear()  # a schema two operations share is reported under each; cycles end within one
        self.parameters(name, old.get("parameters", []), new.get("parameters", []))
        old_body = self.resolve(self.old, old.get("requestBody"))
        new_body = self.resolve(self.new, new.get("requestBody"))
        if new_body.get("required") and old_body and not old_body.get("required"):
            self.changes.append(f"{name}: the request body is now required")
        if new_body and not old_body and new_body.get("required"):
            self.changes.append(f"{name}: a request body is now required")
        for media, content in old_body.get("content", {}).items():
            new_content = new_body.get("content", {}).get(media) if new_body else None
            if new_body and new_content is None:
                self.changes.append(f"{name}: no longer accepts a {media} body")
            elif new_content is not None:
                self.request(f"{name} body", content.get("schema", {}), new_content.get("schema", {}))
        new_responses = new.get("responses", {})
        for status, response in old.get("responses", {}).items():
            if not status.startswith("2"):
                continue
            if status not in new_responses:
                self.changes.append(f"{name}: no longer answers {status}")
                continue
            old_content = self.resolve(self.old, response).get("content", {})
            new_content = self.resolve(self.new, new_responses[status]).get("content", {})
            for media, content in old_content.items():
                if media not in new_content:
                    self.changes.append(f"{name} {status}: no longer answers {media}")
                else:
                    self.response(
                        f"{name} {status}", content.get("schema", {}), new_content[media].get("schema", {})
                    )

    def parameters(self, name: str, old: list[Any], new: list[Any]) -> None:
        def by_key(document: JSON, parameters: list[Any]) -> dict[tuple[str, str], JSON]:
            resolved = (self.resolve(document, p) for p in parameters)
            return {(p.get("in", ""), str(p.get("name", "")).lower()): p for p in resolved}

        old_by_key, new_by_key = by_key(self.old, old), by_key(self.new, new)
        for key, parameter in new_by_key.items():
            where = f"{name} {key[0]} parameter `{parameter.get('name')}`"
            before = old_by_key.get(key)
            if parameter.get("required") and (before is None or not before.get("required")):
                self.changes.append(f"{where} is now required")
            if before is not None:
                self.request(where, before.get("schema", {}), parameter.get("schema", {}))


def breaking_changes(old: JSON, new: JSON) -> list[str]:
    """What breaks a client of `old` when the server answers as `new` says, one line each."""
    documents = _Documents(old, new)
    new_paths = new.get("paths", {})
    for path, item in old.get("paths", {}).items():
        if path not in new_paths:
            documents.changes.append(f"path {path} removed")
            continue
        for method in METHODS:
            if method not in item:
                continue
            name = f"{method.upper()} {path}"
            if method not in new_paths[path]:
                documents.changes.append(f"{name} removed")
                continue
            documents.operation(name, item[method], new_paths[path][method])
    return documents.changes


def _value_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, dict | list) else value
