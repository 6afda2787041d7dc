"""The sender's writes, fewer. A lease moves to a narrow table of its own, `delivery_lease` (taken
by an insert, ended by a delete), so leasing no longer writes a new version of the delivery row
with an entry in each of its indexes; `ix_delivery_pending_lease` goes with it. `delivery` and
`delivery_attempt` lose their foreign keys (each inserted row's check locked its subscription's
row: 2 checks a delivery, 2 an attempt) and the indexes only those served (`ix_delivery_order`,
read by a subscription's deletion alone, which finds its delivered rows by their attempts now;
`ix_delivery_attempt_delivery_id`, read by the cascade alone). What the keys guarded is kept by
locking the subscription: see service/subscriptions.py's `delete`. `ix_delivery_pending_due` asks
for a due time besides (`next_attempt_at IS NOT NULL`, which only the due walk names), so a
subject's probe cannot plan on it instead of the subject index (models.py).

A lease held during the upgrade moves over: its delivery's `attempts` had counted it already, and
now counts recorded attempts only.

Revision ID: delivery_0005
Revises: delivery_0004
Create Date: 2026-12-05
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "delivery_0005"
down_revision: str | None = "delivery_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SERIAL = sa.BigInteger().with_variant(sa.Integer, "sqlite")
PENDING = sa.text("status = 'pending'")
PENDING_AND_TIMED = sa.text("status = 'pending' AND next_attempt_at IS NOT NULL")
DUE = ["subscription_id", "next_attempt_at", "id"]
# SQLite's foreign keys have no names: batch mode names them by this to drop them.
NAMING = {"fk": "%(table_name)s_%(column_0_name)s_fkey"}  # PostgreSQL's own names, the same
FOREIGN_KEYS = {
    "delivery": [
        ("subscription_id", "subscription", "id", "CASCADE"),
        ("event_seq", "event_record", "seq", None),
    ],
    "delivery_attempt": [
        ("delivery_id", "delivery", "id", "CASCADE"),
        ("subscription_id", "subscription", "id", "CASCADE"),
    ],
}


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "delivery_lease",
        sa.Column("delivery_id", SERIAL, primary_key=True, autoincrement=False),
        sa.Column("subscription_id", sa.String(36), nullable=False),
        _at("lease_until"),
        sa.Column("leased_by", sa.String(64), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
    )
    op.execute(
        "INSERT INTO delivery_lease (delivery_id, subscription_id, lease_until, leased_by, attempt) "
        "SELECT id, subscription_id, lease_until, leased_by, attempts FROM delivery "
        "WHERE status = 'pending' AND lease_until IS NOT NULL AND leased_by IS NOT NULL"
    )
    op.execute(
        "UPDATE delivery SET attempts = attempts - 1 "
        "WHERE id IN (SELECT delivery_id FROM delivery_lease) AND attempts > 0"
    )
    op.drop_index("ix_delivery_pending_lease", table_name="delivery")
    op.drop_index("ix_delivery_order", table_name="delivery")
    op.drop_index("ix_delivery_attempt_delivery_id", table_name="delivery_attempt")
    op.drop_index("ix_delivery_pending_due", table_name="delivery")
    op.create_index(
        "ix_delivery_pending_due",
        "delivery",
        DUE,
        postgresql_where=PENDING_AND_TIMED,
        sqlite_where=PENDING_AND_TIMED,
    )
    inspector = sa.inspect(op.get_bind())
    for table in FOREIGN_KEYS:
        names = [
            fk["name"] or NAMING["fk"] % {"table_name": table, "column_0_name": fk["constrained_columns"][0]}
            for fk in inspector.get_foreign_keys(table)
        ]
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            for name in names:
                batch.drop_constraint(name, type_="foreignkey")
            if table == "delivery":
                batch.drop_column("lease_until")
                batch.drop_column("leased_by")


def downgrade() -> None:
    with op.batch_alter_table("delivery", naming_convention=NAMING) as batch:
        batch.add_column(_at("lease_until", nullable=True))
        batch.add_column(sa.Column("leased_by", sa.String(64)))
    of_lease = "(SELECT {} FROM delivery_lease WHERE delivery_id = delivery.id)"
    op.execute(
        f"UPDATE delivery SET attempts = {of_lease.format('attempt')}, "
        f"lease_until = {of_lease.format('lease_until')}, leased_by = {of_lease.format('leased_by')} "
        "WHERE id IN (SELECT delivery_id FROM delivery_lease)"
    )
    op.drop_table("delivery_lease")
    for table, keys in FOREIGN_KEYS.items():
        with op.batch_alter_table(table, naming_convention=NAMING) as batch:
            for column, referred, referred_column, ondelete in keys:
                batch.create_foreign_key(
                    NAMING["fk"] % {"table_name": table, "column_0_name": column},
                    referred,
                    [column],
                    [referred_column],
                    ondelete=ondelete,
                )
    op.drop_index("ix_delivery_pending_due", table_name="delivery")
    op.create_index(
        "ix_delivery_pending_due", "delivery", DUE, postgresql_where=PENDING, sqlite_where=PENDING
    )
    op.create_index("ix_delivery_attempt_delivery_id", "delivery_attempt", ["delivery_id"])
    op.create_index("ix_delivery_order", "delivery", ["subscription_id", "order_key", "id"])
    op.create_index(
        "ix_delivery_pending_lease",
        "delivery",
        ["lease_until", "subscription_id"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
