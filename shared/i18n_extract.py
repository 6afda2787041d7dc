"""The Babel extraction method for Cradle's Python (babel.cfg, `make messages`): Babel's own
extractor for the marked texts (`tr(...)`, `N_(...)`), plus the texts a problem reply carries that
are written without a marker — an error class's `title`, the literal detail of a raised error, a
literal field message (`invalid(field, "…")`, `FieldError(message="…")`), the title and detail
of a `problem_response(...)`, and the act a `require_bureau(..., action="…")` refuses."""

from __future__ import annotations

import ast
import builtins
import re
from collections.abc import Collection, Iterator, Mapping
from io import BytesIO
from typing import IO, Any

from babel.messages.extract import extract_python

# A protocol's code (OAuth's `invalid_client`), not a text: never translated.
CODE = re.compile(r"[a-z0-9_]*")
Extracted = tuple[int, str | None, str | tuple[str | None, ...], list[str]]
BUILTIN_EXCEPTIONS = frozenset(
    name
    for name, value in vars(builtins).items()
    if isinstance(value, type) and issubclass(value, BaseException)
)


# Where a `ValueError` is a request's field message (pydantic's "Value error, …"): the request
# types, shared and each service's. Elsewhere (settings, keys) it is for an operator's log.
REQUEST_TYPES = re.compile(r"(^|/)(schemas(\.py|/)|shared/(clock|text|scalars|api|pii)\.py$)")


def refuses_requests(path: str) -> bool:
    return bool(REQUEST_TYPES.search(path.replace("\\", "/")))


def extract(
    fileobj: IO[bytes], keywords: Collection[str], comment_tags: Collection[str], options: Mapping[str, Any]
) -> Iterator[Extracted]:
    source = fileobj.read()
    yield from extract_python(BytesIO(source), keywords, comment_tags, options)
    encoding = str(options.get("encoding", "utf-8"))
    value_errors = refuses_requests(str(getattr(fileobj, "name", "")))
    for lineno, text in problem_texts(source.decode(encoding), value_errors=value_errors):
        yield lineno, None, text, []


def problem_texts(source: str, *, value_errors: bool = False) -> Iterator[tuple[int, str]]:
    """(line, text) of every unmarked literal text a problem reply may carry; with `value_errors`,
    a request type's `ValueError` messages too."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef):
            yield from _class_titles(node)
        elif isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
            name = _name(node.exc.func)
            if value_errors and name == "ValueError":
                yield from _literal(node.exc.args[:1])
            elif name not in BUILTIN_EXCEPTIONS | {"invalid"}:
                yield from _literal(node.exc.args[:1])
                yield from _keywords(node.exc, "detail")
        elif isinstance(node, ast.Call):
            name = _name(node.func)
            if name == "problem_response":
                yield from _keywords(node, "title", "detail")
            elif name == "invalid":
                yield from _literal(node.args[1:2])
            elif name == "FieldError":
                yield from _keywords(node, "message")
            elif name == "require_bureau":
                yield from _keywords(node, "action")


def _class_titles(node: ast.ClassDef) -> Iterator[tuple[int, str]]:
    for statement in node.body:
        if not isinstance(statement, ast.Assign):
            continue
        for target in statement.targets:
            if isinstance(target, ast.Name) and target.id == "title":
                yield from _literal([statement.value])
            elif isinstance(target, ast.Tuple) and isinstance(statement.value, ast.Tuple):
                for name, value in zip(target.elts, statement.value.elts, strict=False):
                    if isinstance(name, ast.Name) and name.id == "title":
                        yield from _literal([value])


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _literal(nodes: list[ast.expr]) -> Iterator[tuple[int, str]]:
    for node in nodes:
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and not CODE.fullmatch(node.value):
            yield node.lineno, node.value


def _keywords(call: ast.Call, *names: str) -> Iterator[tuple[int, str]]:
    yield from _literal([k.value for k in call.keywords if k.arg in names])
