"""Each process's migrations by its name in the table (`cradle migrate`, the tests, the benchmarks)."""

from __future__ import annotations

from cradle.services import PROCESSES
from shared import migrations


def upgrade(name: str, database_url: str, revision: str = "head") -> None:
    """Blocking: call from a thread when an event loop is running."""
    migrations.upgrade(PROCESSES[name].package, name, database_url, revision)


def downgrade(name: str, database_url: str, revision: str) -> None:
    migrations.downgrade(PROCESSES[name].package, name, database_url, revision)
