"""CCTV events keyed by `dedup_key`, 64 bits of MD5(facility_id ":" event_id), instead of the
(event_id, facility_id) text pair: with random sender ids (uuid4) each insert landed on its own
page of a ~70-byte-key B-tree, and past a million stored events ingest slowed to 0.6 of its rate on
SQLite. The ingest still compares the stored pair for every key it did not insert (exact dedup).

Revision ID: monitoring_0009
Revises: monitoring_0008
Create Date: 2026-12-04
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "monitoring_0009"
down_revision: str | None = "monitoring_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 10_000
# The same 64 bits as services/monitoring/service/ingest.py's dedup_key, computed by PostgreSQL.
PG_KEY = "('x' || substr(md5(facility_id || ':' || event_id), 1, 16))::bit(64)::bigint"


def dedup_key(facility_id: str, event_id: str) -> int:
    digest = hashlib.md5(f"{facility_id}:{event_id}".encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def cctv_event(*key: str, with_dedup_key: bool) -> sa.Table:
    """The table with `key` as its primary key: SQLite's copy is made from this."""
    dedup = [sa.Column("dedup_key", sa.BigInteger(), nullable=False, autoincrement=False)]
    return sa.Table(
        "cctv_event",
        sa.MetaData(),
        *(dedup if with_dedup_key else []),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("camera_id", sa.String(length=36), nullable=False),
        sa.Column("facility_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint(*key, name="cctv_event_pkey"),
        sa.Index("ix_cctv_event_received", "received_at"),
    )


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("cctv_event", sa.Column("dedup_key", sa.BigInteger(), nullable=True))
    if bind.dialect.name == "postgresql":
        op.execute(f"UPDATE cctv_event SET dedup_key = {PG_KEY}")
        op.alter_column("cctv_event", "dedup_key", nullable=False)
        op.drop_constraint("cctv_event_pkey", "cctv_event", type_="primary")
        op.create_primary_key("cctv_event_pkey", "cctv_event", ["dedup_key"])
        return
    last = -1
    while True:  # SQLite has no md5: the keys are computed here, a chunk at a time
        rows = bind.execute(
            sa.text(
                "SELECT rowid, facility_id, event_id FROM cctv_event WHERE rowid > :last "
                "ORDER BY rowid LIMIT :chunk"
            ),
            {"last": last, "chunk": CHUNK},
        ).all()
        if not rows:
            break
        bind.execute(
            sa.text("UPDATE cctv_event SET dedup_key = :key WHERE rowid = :id"),
            [{"key": dedup_key(row.facility_id, row.event_id), "id": row.rowid} for row in rows],
        )
        last = rows[-1].rowid
    # SQLite cannot alter a primary key: the table is copied into one with the new key.
    with op.batch_alter_table(
        "cctv_event", recreate="always", copy_from=cctv_event("dedup_key", with_dedup_key=True)
    ):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("cctv_event_pkey", "cctv_event", type_="primary")
        op.create_primary_key("cctv_event_pkey", "cctv_event", ["event_id", "facility_id"])
        op.drop_column("cctv_event", "dedup_key")
        return
    with op.batch_alter_table(
        "cctv_event",
        recreate="always",
        copy_from=cctv_event("event_id", "facility_id", with_dedup_key=True),
    ) as batch:
        batch.drop_column("dedup_key")
