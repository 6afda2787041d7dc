"""The house's floors, read from the source with `ast`: `shared/` is the ground floor and knows no
service nor the gateway; a service knows only itself and `shared/`; the gateway knows `shared/` and
no service's code; only `cradle/` (the composition root), the tests and the benchmarks know them all."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"cradle", "gateway", "services", "shared"}


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module) for every import statement, and every `importlib.import_module("…")` or
    `__import__("…")` of a constant, anywhere in the file (functions included)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif (
            isinstance(node, ast.Call)
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and (
                (isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                or (isinstance(node.func, ast.Name) and node.func.id in ("import_module", "__import__"))
            )
        ):
            yield node.lineno, node.args[0].value


def refused(path: Path, module: str) -> str | None:
    """Why `path` may not import `module`, or None when it may."""
    parts = path.relative_to(ROOT).parts
    target = module.split(".")
    if target[0] not in FIRST_PARTY:
        return None
    floor = parts[0]
    if floor == "shared" and target[0] != "shared":
        return "shared/ imports only shared/"
    if floor == "gateway" and target[0] in ("cradle", "services"):
        return "the gateway imports no service and not the composition root"
    if floor == "services":
        own = parts[1]
        if target[0] in ("cradle", "gateway"):
            return "a service imports neither the gateway nor the composition root"
        if target[0] == "services" and len(target) > 1 and target[1] != own:
            return f"services/{own} imports another service"
    return None


def sources() -> list[Path]:
    return sorted(
        path
        for floor in ("shared", "gateway", "services")
        for path in (ROOT / floor).rglob("*.py")
        if "__pycache__" not in path.parts
    )


def arrows(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, module in imported_modules(tree):
            reason = refused(path, module)
            if reason:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}: {reason}")
    return found


def test_no_floor_imports_one_above_it() -> None:
    assert arrows(sources()) == []


@pytest.mark.parametrize(
    ("path", "source", "reason"),
    [
        ("shared/x.py", "from services.registry.models import Facility", "shared/ imports only shared/"),
        ("shared/events/x.py", "import gateway.audit", "shared/ imports only shared/"),
        ("shared/x.py", "import importlib\nimportlib.import_module('cradle.services')", "shared/"),
        ("shared/x.py", "def f():\n    from cradle import layout", "shared/ imports only shared/"),
        ("gateway/x.py", "from services.workforce import models", "the gateway imports no service"),
        ("services/registry/x.py", "from services.workforce.models import Ban", "another service"),
        ("services/registry/x.py", "from cradle.services import SERVICES", "composition root"),
    ],
)
def test_each_kind_of_arrow_is_caught(path: str, source: str, reason: str) -> None:
    """The walker itself: a file on each floor with a forbidden import is reported."""
    found = [refused(ROOT / path, module) or "" for _, module in imported_modules(ast.parse(source))]
    assert any(reason in why for why in found), found


def test_allowed_arrows_pass() -> None:
    for path, module in (
        ("services/registry/x.py", "services.registry.models"),
        ("services/registry/x.py", "shared.db"),
        ("gateway/x.py", "shared.identity"),
        ("cradle/x.py", "services.registry.app"),
        ("shared/x.py", "sqlalchemy.orm"),
    ):
        assert refused(ROOT / path, module) is None, (path, module)


def test_the_process_table_and_the_bus_layout_name_the_same_processes() -> None:
    """A new service is a row in cradle/services.py and its stream in shared/events/streams.py
    (from which its NATS credential is made): one without the other would start without a
    credential or leave a credential without a process."""
    from cradle.services import PROCESSES
    from shared.events.streams import READS, SERVICES

    assert set(PROCESSES) == set(SERVICES) == set(READS)


# Every service's top-level names (docs/ARCHITECTURE.md, "One service shape, one kit"): a module
# past ~400 lines becomes a package of the same name, so each may be either.
SERVICE_SHAPE = frozenset(
    "__init__ app config deps errors events models schemas router service migrations handlers jobs".split()
)


def stray_top_level_names(service: Path) -> list[str]:
    """The top-level modules and packages of a service outside the shape."""
    names = set()
    for child in service.iterdir():
        if child.name.startswith((".", "__pycache__")):
            continue
        if child.is_dir() or child.suffix == ".py":
            names.add(child.stem)
    return sorted(names - SERVICE_SHAPE)


def test_every_service_keeps_to_the_shape() -> None:
    services = [path for path in sorted((ROOT / "services").iterdir()) if (path / "app.py").is_file()]
    assert len(services) >= 5
    strays = {path.name: stray_top_level_names(path) for path in services}
    assert {name: found for name, found in strays.items() if found} == {}


def test_a_stray_module_is_named(tmp_path: Path) -> None:
    for name in ("app.py", "router", "sender.py", "ban_check_path.py"):
        (tmp_path / name).mkdir() if "." not in name else (tmp_path / name).write_text("")
    assert stray_top_level_names(tmp_path) == ["ban_check_path", "sender"]


# What a router may not do itself: queries and writes are the service layer's.
SESSION_WORK = frozenset(
    {"execute", "scalar", "scalars", "get", "add", "add_all", "flush", "delete", "merge"}
)


def sql_in_router(tree: ast.AST) -> list[int]:
    """Lines where a router runs SQL: a session's query or write, or SQLAlchemy's statement builders."""
    lines = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in SESSION_WORK
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id.endswith("session")
        ):
            lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sqlalchemy"):
            if node.module != "sqlalchemy.ext.asyncio":  # the session's type, for a dependency
                lines.append(node.lineno)
    return lines


def test_routers_run_no_sql() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted((ROOT / "services").glob("*/router/*.py"))
        for line in sql_in_router(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert found == []


def test_sql_in_a_router_is_caught() -> None:
    source = "from sqlalchemy import select\nasync def f(session):\n    return await session.get(A, 1)\n"
    assert sql_in_router(ast.parse(source)) == [1, 3]
