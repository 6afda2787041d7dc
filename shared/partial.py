"""PATCH bodies: a field left out keeps its value; a field sent as null clears it only where the
record may be without it, and is otherwise refused by name (422), never written to a NOT NULL
column to fail there as a conflict."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, GetJsonSchemaHandler, ValidationInfo, field_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import core_schema as cs


class PartialUpdate(BaseModel):
    # The fields a null clears; every other field takes a value or is left out.
    CLEARABLE: ClassVar[frozenset[str]] = frozenset()

    @field_validator("*", mode="before")
    @classmethod
    def _null_only_where_clearable(cls, value: Any, info: ValidationInfo) -> Any:
        if value is None and info.field_name not in cls.CLEARABLE:
            raise ValueError("may not be null")
        return value

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: cs.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """The document says the same: null is a type only of the clearable fields (generated
        clients and contract tests do not send what is refused)."""
        document = handler(schema)
        target = handler.resolve_ref_schema(document)
        for name, prop in target.get("properties", {}).items():
            if name in cls.CLEARABLE or "anyOf" not in prop:
                continue
            kept = [option for option in prop["anyOf"] if option.get("type") != "null"]
            del prop["anyOf"]
            if len(kept) == 1:
                prop.update(kept[0])
            else:
                prop["anyOf"] = kept
            if "default" in prop and prop["default"] is None:
                del prop["default"]
        return document
