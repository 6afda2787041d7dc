"""The directory revision: every facility insert or update takes the next number from one counter row
and stamps it on the facility (a trigger, so Core statements and seeders count too). Each registry
replica keeps the directory in memory and asks only "which facilities changed past the revision I
hold?". The counter row stays locked until the writing transaction commits, so revisions become
visible in order and a replica that has seen revision N has seen every change up to N.

Revision ID: registry_0003
Revises: registry_0002
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "registry_0003"
down_revision: str | None = "registry_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER facility_revision_on_insert AFTER INSERT ON facility
    BEGIN
        UPDATE directory_revision SET revision = revision + 1 WHERE id = 1;
        UPDATE facility SET change_revision = (SELECT revision FROM directory_revision WHERE id = 1)
        WHERE id = NEW.id;
    END
    """,
    # The guard skips the trigger's own stamping update (recursive triggers are off, but say so).
    """
    CREATE TRIGGER facility_revision_on_update AFTER UPDATE ON facility
    WHEN NEW.change_revision IS OLD.change_revision
    BEGIN
        UPDATE directory_revision SET revision = revision + 1 WHERE id = 1;
        UPDATE facility SET change_revision = (SELECT revision FROM directory_revision WHERE id = 1)
        WHERE id = NEW.id;
    END
    """,
)

POSTGRES_FUNCTION = """
CREATE FUNCTION facility_take_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE directory_revision SET revision = revision + 1 WHERE id = 1
    RETURNING revision INTO NEW.change_revision;
    RETURN NEW;
END
$$
"""
POSTGRES_TRIGGER = """
CREATE TRIGGER facility_revision BEFORE INSERT OR UPDATE ON facility
FOR EACH ROW EXECUTE FUNCTION facility_take_revision()
"""


def upgrade() -> None:
    op.create_table(
        "directory_revision",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
    )
    op.execute("INSERT INTO directory_revision (id, revision) VALUES (1, 0)")
    with op.batch_alter_table("facility") as batch:
        batch.add_column(sa.Column("change_revision", sa.BigInteger, nullable=False, server_default="0"))
        batch.create_index("ix_facility_change_revision", ["change_revision"])
    if op.get_bind().dialect.name == "sqlite":
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)
    else:
        op.execute(POSTGRES_FUNCTION)
        op.execute(POSTGRES_TRIGGER)
    # Facilities already there carry revision 0: a replica's first load reads them all anyway.


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER facility_revision_on_insert")
        op.execute("DROP TRIGGER facility_revision_on_update")
    else:
        op.execute("DROP TRIGGER facility_revision ON facility")
        op.execute("DROP FUNCTION facility_take_revision()")
    with op.batch_alter_table("facility") as batch:
        batch.drop_index("ix_facility_change_revision")
        batch.drop_column("change_revision")
    op.drop_table("directory_revision")
