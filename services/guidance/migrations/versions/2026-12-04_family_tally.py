"""The families' tallies per district and registration year (families, with a handbook, in need), kept
by triggers in the transaction of every family insert, update and delete — so the service's code,
Core statements and the seeders all count — and filled from the families there are. The figures
sum a few hundred rows instead of walking every family.

Revision ID: guidance_0004
Revises: guidance_0003
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "guidance_0004"
down_revision: str | None = "guidance_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# `registered_on` is a Shanghai date: SQLite keeps it as 'YYYY-MM-DD' text, PostgreSQL as a date.
YEAR = {
    "sqlite": "CAST(strftime('%Y', {}) AS INTEGER)",
    "postgresql": "CAST(EXTRACT(YEAR FROM {}) AS INTEGER)",
}
BACKFILL = """
INSERT INTO family_tally (district_code, registered_year, families, with_handbook, in_need)
SELECT district_code, {year}, count(*),
       sum(CASE WHEN has_handbook THEN 1 ELSE 0 END), sum(CASE WHEN in_need THEN 1 ELSE 0 END)
FROM family GROUP BY district_code, {year}
"""

# SQLite: one row at a time (its triggers are per row), an upsert for the new values and an
# update taking the old ones away. Booleans are 0/1 there.
SQLITE_ADD = """
    INSERT INTO family_tally (district_code, registered_year, families, with_handbook, in_need)
    VALUES (NEW.district_code, CAST(strftime('%Y', NEW.registered_on) AS INTEGER), 1,
            NEW.has_handbook, NEW.in_need)
    ON CONFLICT (district_code, registered_year) DO UPDATE SET
        families = families + 1,
        with_handbook = with_handbook + excluded.with_handbook,
        in_need = in_need + excluded.in_need;
"""
SQLITE_TAKE = """
    UPDATE family_tally SET families = families - 1,
        with_handbook = with_handbook - OLD.has_handbook, in_need = in_need - OLD.in_need
    WHERE district_code = OLD.district_code
      AND registered_year = CAST(strftime('%Y', OLD.registered_on) AS INTEGER);
"""
SQLITE_TRIGGERS = (
    f"CREATE TRIGGER family_tally_on_insert AFTER INSERT ON family BEGIN {SQLITE_ADD} END",
    "CREATE TRIGGER family_tally_on_update "
    "AFTER UPDATE OF district_code, registered_on, has_handbook, in_need ON family "
    f"BEGIN {SQLITE_TAKE} {SQLITE_ADD} END",
    f"CREATE TRIGGER family_tally_on_delete AFTER DELETE ON family BEGIN {SQLITE_TAKE} END",
)

# PostgreSQL: inserts counted per statement from the transition table (a seeder's 300,000 rows make
# one upsert per district and year, not 300,000), in key order so concurrent writers lock the tally
# rows in the same order; updates and deletes per row.
POSTGRES_STATEMENTS = (
    """
    CREATE FUNCTION family_tally_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO family_tally AS t (district_code, registered_year, families, with_handbook, in_need)
        SELECT district_code, CAST(EXTRACT(YEAR FROM registered_on) AS INTEGER), count(*),
               count(*) FILTER (WHERE has_handbook), count(*) FILTER (WHERE in_need)
        FROM added GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (district_code, registered_year) DO UPDATE SET
            families = t.families + excluded.families,
            with_handbook = t.with_handbook + excluded.with_handbook,
            in_need = t.in_need + excluded.in_need;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER family_tally_on_insert AFTER INSERT ON family
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION family_tally_added()
    """,
    """
    CREATE FUNCTION family_tally_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE family_tally SET families = families - 1,
            with_handbook = with_handbook - CAST(OLD.has_handbook AS INTEGER),
            in_need = in_need - CAST(OLD.in_need AS INTEGER)
        WHERE district_code = OLD.district_code
          AND registered_year = CAST(EXTRACT(YEAR FROM OLD.registered_on) AS INTEGER);
        IF TG_OP = 'UPDATE' THEN
            INSERT INTO family_tally AS t (district_code, registered_year, families, with_handbook, in_need)
            VALUES (NEW.district_code, CAST(EXTRACT(YEAR FROM NEW.registered_on) AS INTEGER), 1,
                    CAST(NEW.has_handbook AS INTEGER), CAST(NEW.in_need AS INTEGER))
            ON CONFLICT (district_code, registered_year) DO UPDATE SET
                families = t.families + 1,
                with_handbook = t.with_handbook + excluded.with_handbook,
                in_need = t.in_need + excluded.in_need;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER family_tally_on_change
    AFTER UPDATE OF district_code, registered_on, has_handbook, in_need OR DELETE ON family
    FOR EACH ROW EXECUTE FUNCTION family_tally_changed()
    """,
)


def upgrade() -> None:
    op.create_table(
        "family_tally",
        sa.Column("district_code", sa.String(6), primary_key=True),
        sa.Column("registered_year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("families", sa.BigInteger, nullable=False),
        sa.Column("with_handbook", sa.BigInteger, nullable=False),
        sa.Column("in_need", sa.BigInteger, nullable=False),
    )
    dialect = op.get_bind().dialect.name
    op.execute(BACKFILL.format(year=YEAR[dialect].format("registered_on")))
    for statement in SQLITE_TRIGGERS if dialect == "sqlite" else POSTGRES_STATEMENTS:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER family_tally_on_{name}")
    else:
        op.execute("DROP TRIGGER family_tally_on_insert ON family")
        op.execute("DROP TRIGGER family_tally_on_change ON family")
        op.execute("DROP FUNCTION family_tally_added()")
        op.execute("DROP FUNCTION family_tally_changed()")
    op.drop_table("family_tally")
