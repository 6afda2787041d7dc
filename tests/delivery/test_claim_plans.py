"""The claim's statements on SQLite walk the indexes meant for them, whatever the backlog: the
leases held now (`BUSY`, every round) are a range of the lease index, never a walk of every pending
delivery (which it was, growing with the backlog, while SQLite took the due index for its order)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from cradle.migrations import upgrade
from services.delivery.service import sqlite_round


def test_the_leases_held_are_read_from_the_lease_index(tmp_path: Path) -> None:
    path = tmp_path / "delivery.db"
    upgrade("delivery", f"sqlite:///{path}")
    now = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S.%f}"  # as a time is stored
    with sqlite3.connect(path) as connection:
        plan = " / ".join(
            row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sqlite_round.BUSY}", {"now": now})
        )
    assert "ix_delivery_pending_lease (lease_until>?)" in plan, plan
    assert "ix_delivery_pending_due" not in plan, plan


def test_the_sqlite_round_walks_the_same_indexes(tmp_path: Path) -> None:
    """The round as one call on SQLite's thread (service/sqlite_round.py) is the same statements
    written out: the leases held from the lease index, the heads per subscription from the due and
    subject indexes, the rest by primary key; no statement reads a table through."""
    path = tmp_path / "delivery.db"
    upgrade("delivery", f"sqlite:///{path}")
    now = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S.%f}"
    values = {"now": now, "until": now, "at": now, "retry_at": now, "worker": "w", "ids": "[1, 2]"}
    values |= {"full": "[]", "per_subscription": 16, "failed_id": 1}
    with sqlite3.connect(path) as connection:

        def plan(statement: str) -> str:
            return " / ".join(row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {statement}", values))

        assert "ix_delivery_pending_lease (lease_until>?)" in plan(sqlite_round.BUSY)
        heads = plan(sqlite_round.CANDIDATES)
        assert "ix_delivery_pending_due (subscription_id=? AND next_attempt_at<?)" in heads, heads
        assert "ix_delivery_pending_subject (subscription_id=? AND order_key=?)" in heads, heads
        for statement in (
            sqlite_round.LEASE,
            sqlite_round.LEASED,
            sqlite_round.DONE,
            sqlite_round.RETRY_LATER,
        ):
            assert "USING INTEGER PRIMARY KEY (rowid=?)" in plan(statement), statement
        for statement in (sqlite_round.BUSY, sqlite_round.LEASE, sqlite_round.LEASED, sqlite_round.DONE):
            assert "SCAN delivery" not in plan(statement), statement
