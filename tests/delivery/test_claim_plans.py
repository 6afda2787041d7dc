"""The claim's statements on SQLite walk the indexes meant for them, whatever the backlog: the
leases held now (`BUSY`, every round) are read from the lease table alone, never from a walk of
every pending delivery (which it was once, growing with the backlog)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from cradle.migrations import upgrade
from services.delivery.service import sqlite_round


def test_the_leases_held_are_read_from_the_lease_table(tmp_path: Path) -> None:
    path = tmp_path / "delivery.db"
    upgrade("delivery", f"sqlite:///{path}")
    now = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S.%f}"  # as a time is stored
    with sqlite3.connect(path) as connection:
        plan = " / ".join(
            row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sqlite_round.BUSY}", {"now": now})
        )
    assert "SCAN delivery_lease" in plan, plan
    assert "delivery " not in plan + " ", plan


def test_the_sqlite_round_walks_the_same_indexes(tmp_path: Path) -> None:
    """The round as one call on SQLite's thread (service/sqlite_round.py) is the same statements
    written out: the leases held from the lease table, the heads per subscription from the due and
    subject indexes (each head's lease by its key), the rest by primary key; no statement reads the
    deliveries through."""
    path = tmp_path / "delivery.db"
    upgrade("delivery", f"sqlite:///{path}")
    now = f"{datetime.now(UTC):%Y-%m-%d %H:%M:%S.%f}"
    values = {"now": now, "until": now, "at": now, "retry_at": now, "worker": "w", "ids": "[1, 2]"}
    values |= {"full": "[]", "per_subscription": 16, "failed_id": 1}
    with sqlite3.connect(path) as connection:

        def plan(statement: str) -> str:
            return " / ".join(row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {statement}", values))

        heads = plan(sqlite_round.CANDIDATES)
        assert "ix_delivery_pending_due (subscription_id=? AND next_attempt_at<?)" in heads, heads
        assert "ix_delivery_pending_subject (subscription_id=? AND order_key=?)" in heads, heads
        assert "SEARCH lease USING INTEGER PRIMARY KEY (rowid=?)" in heads, heads
        for statement in (
            sqlite_round.LEASE,
            sqlite_round.LEASED,
            sqlite_round.DONE,
            sqlite_round.RETRY_LATER,
            sqlite_round.END_LEASES,
        ):
            assert "USING INTEGER PRIMARY KEY (rowid=?)" in plan(statement), (statement, plan(statement))
        for statement in (
            sqlite_round.CANDIDATES,
            sqlite_round.LEASE,
            sqlite_round.LEASED,
            sqlite_round.DONE,
            sqlite_round.RETRY_LATER,
            sqlite_round.END_LEASES,
        ):
            found = plan(statement)
            assert "SCAN delivery " not in found + " " and "SCAN due" not in found, (statement, found)
