"""The claim's statements on SQLite walk the indexes meant for them, whatever the backlog: the
leases held now (`BUSY`, every round) are a range of the lease index, never a walk of every pending
delivery (which it was, growing with the backlog, while SQLite took the due index for its order)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.dialects import sqlite

from cradle.migrations import upgrade
from services.delivery.service.claims import BUSY


def test_the_leases_held_are_read_from_the_lease_index(tmp_path: Path) -> None:
    path = tmp_path / "delivery.db"
    upgrade("delivery", f"sqlite:///{path}")
    compiled = BUSY.compile(dialect=sqlite.dialect())
    now = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S.%f}"  # as a time is stored
    values = [now] * len(compiled.positiontup or ())
    with sqlite3.connect(path) as connection:
        plan = " / ".join(row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {compiled}", values))
    assert "ix_delivery_pending_lease (lease_until>?)" in plan, plan
    assert "ix_delivery_pending_due" not in plan, plan
