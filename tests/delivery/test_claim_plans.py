"""The claim's statements on SQLite walk the indexes meant for them, whatever the backlog: the
leases held now (`BUSY`, every round) are read from the lease table alone, never from a walk of
every pending delivery (which it was once, growing with the backlog)."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import make_url

from cradle.migrations import upgrade
from services.delivery.service import claims, sqlite_round
from tests.support import DatabaseFactory


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


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
@pytest.mark.parametrize("plan_cache_mode", ["force_custom_plan", "force_generic_plan"])
async def test_postgresql_claims_probe_the_indexes_meant_for_them_without_statistics(
    databases: DatabaseFactory, plan_cache_mode: str
) -> None:
    """On a database never analyzed (a fresh one; this machine's PostgreSQL runs no autovacuum),
    where the planner's estimates cannot tell indexes apart, in custom and generic plans: the lease
    looks each id up by the key (given the ids beside `status = 'pending'`, a pending-only index was
    read through for every lease), and a subject's oldest pending row is probed in the subject index
    (once, in a bench run, the due index, which also begins with the subscription, was taken instead
    and read the subscription's every pending row a probe; this data does not bring that plan back,
    and the due index's own condition now rules it out: this pins the choice)."""
    url = make_url(await databases.fresh("delivery")).set(drivername="postgresql")
    connection = await asyncpg.connect(url.render_as_string(hide_password=False))
    try:
        await connection.execute(
            "INSERT INTO subscription SELECT 's' || g, 'c', '{}', 'http://x', '[]', null, true, null, null, "
            "'x', null, null, null, now(), now(), 1 FROM generate_series(1, 50) g;"
            "INSERT INTO event_record (event_id, type, time, recorded_at, body) "
            "SELECT 'e' || g, 't', now(), now(), '{}' FROM generate_series(1, 200) g;"
            "INSERT INTO delivery (subscription_id, event_seq, order_key, status, attempts, next_attempt_at, "
            "created_at) SELECT 's' || s, e, md5(e::text)::uuid::text, 'pending', 0, now(), now() "
            "FROM generate_series(1, 200) e, generate_series(1, 50) s;"
            "UPDATE delivery SET status = 'delivered' WHERE event_seq <= 100"
        )
        await connection.execute(f"SET plan_cache_mode = {plan_cache_mode}")
        now = datetime.now(UTC)
        candidates = await _plan(
            connection,
            claims.CANDIDATES_LATERAL,
            {"now": now, "param_1": claims.NEVER.value, "per_subscription": 32, "batch": 1024, "full": []},
        )
        assert "ix_delivery_pending_subject on delivery earlier" in candidates, candidates
        assert "ix_delivery_pending_due on delivery due" in candidates, candidates
        assert "on delivery earlier" not in candidates.replace(
            "ix_delivery_pending_subject on delivery earlier", ""
        )
        lease = await _plan(
            connection,
            claims.LEASE_AND_READ,
            {"ids": [1, 2, 3], "until": now, "worker": "w", "now": now, "attempts_1": 1, "attempt_1": 1},
        )
        assert "Index Scan using delivery_pkey on delivery" in lease, lease
        assert "ix_delivery_pending" not in lease, lease
    finally:
        await connection.close()


async def _plan(connection: asyncpg.Connection, statement: Any, values: dict[str, Any]) -> str:
    """The plan of `statement` as a prepared statement, under the session's plan_cache_mode."""
    compiled = statement.compile(dialect=asyncpg_dialect())
    names = compiled.positiontup
    await connection.execute(f"PREPARE probe AS {compiled.string}")
    try:
        arguments = ", ".join(_literal(values[name]) for name in names)  # EXECUTE takes no parameters
        rows = await connection.fetch(f"EXPLAIN EXECUTE probe({arguments})")
    finally:
        await connection.execute("DEALLOCATE probe")
    return "\n".join(row[0] for row in rows)


def _literal(value: Any) -> str:
    if isinstance(value, list):
        return "'{" + ",".join(str(item) for item in value) + "}'"
    if isinstance(value, int):
        return str(value)
    text = value.isoformat() if isinstance(value, datetime) else str(value)
    return "'" + text.replace("'", "''") + "'"
