"""CCTV events keyed by (`id_ms`, `dedup_key`): the milliseconds a time-ordered event id begins with
(UUIDv7, ULID; 0 for any other id) lead the key, so such ids append at the index's right edge. Keyed
by the 64-bit hash alone, every event landed on a random page of the index, and past a million
stored events SQLite's ingest slowed to 0.8 of its rate whatever ids the senders used. `id_ms` is read
from the event id alone, so a re-sent event finds its key as before.

Revision ID: monitoring_0010
Revises: monitoring_0009
Create Date: 2026-12-05
"""

import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "monitoring_0010"
down_revision: str | None = "monitoring_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 10_000
# The same reading as services/monitoring/service/ingest.py's id_ms (a migration keeps its own copy:
# the service's code may change after it).
_UUID7 = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-7[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}")
_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}")
_CROCKFORD = {c: n for n, c in enumerate("0123456789ABCDEFGHJKMNPQRSTVWXYZ")}


def id_ms(event_id: str) -> int:
    if len(event_id) == 36 and _UUID7.fullmatch(event_id):
        return int(event_id[:8] + event_id[9:13], 16)
    if len(event_id) == 26 and _ULID.fullmatch(event_id):
        ms = 0
        for char in event_id[:10].upper():
            ms = ms * 32 + _CROCKFORD[char]
        return ms
    return 0


def cctv_event(*key: str, with_id_ms: bool) -> sa.Table:
    """The table with `key` as its primary key: SQLite's copy is made from this."""
    id_column = [sa.Column("id_ms", sa.BigInteger(), nullable=False, autoincrement=False)]
    return sa.Table(
        "cctv_event",
        sa.MetaData(),
        *(id_column if with_id_ms else []),
        sa.Column("dedup_key", sa.BigInteger(), nullable=False, autoincrement=False),
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
    # 0 for every stored row at once (a default is no rewrite on either database), then the
    # time-ordered ids' milliseconds, found a chunk at a time along the old key.
    op.add_column(
        "cctv_event", sa.Column("id_ms", sa.BigInteger(), nullable=False, server_default=sa.text("0"))
    )
    last: int | None = None
    while True:
        after = "" if last is None else "AND dedup_key > :last "
        rows = bind.execute(
            sa.text(
                "SELECT dedup_key, event_id FROM cctv_event "
                f"WHERE length(event_id) IN (26, 36) {after}ORDER BY dedup_key LIMIT :chunk"
            ),
            {"chunk": CHUNK} if last is None else {"last": last, "chunk": CHUNK},
        ).all()
        if not rows:
            break
        updates = [{"ms": ms, "key": row.dedup_key} for row in rows if (ms := id_ms(row.event_id))]
        if updates:
            bind.execute(sa.text("UPDATE cctv_event SET id_ms = :ms WHERE dedup_key = :key"), updates)
        last = rows[-1].dedup_key
    if bind.dialect.name == "postgresql":
        op.alter_column("cctv_event", "id_ms", server_default=None)
        op.drop_constraint("cctv_event_pkey", "cctv_event", type_="primary")
        op.create_primary_key("cctv_event_pkey", "cctv_event", ["id_ms", "dedup_key"])
        return
    # SQLite cannot alter a primary key: the table is copied into one with the new key.
    with op.batch_alter_table(
        "cctv_event", recreate="always", copy_from=cctv_event("id_ms", "dedup_key", with_id_ms=True)
    ):
        pass


def downgrade() -> None:
    # Two events may share a hash under different milliseconds; the old key cannot hold both, so
    # such a pair (a collision, about one in 10^10 at a billion stored) stops the downgrade.
    if op.get_bind().dialect.name == "postgresql":
        op.drop_constraint("cctv_event_pkey", "cctv_event", type_="primary")
        op.create_primary_key("cctv_event_pkey", "cctv_event", ["dedup_key"])
        op.drop_column("cctv_event", "id_ms")
        return
    with op.batch_alter_table(
        "cctv_event", recreate="always", copy_from=cctv_event("dedup_key", with_id_ms=True)
    ) as batch:
        batch.drop_column("id_ms")
