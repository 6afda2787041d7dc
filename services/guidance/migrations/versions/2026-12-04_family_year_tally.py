"""Two more tallies the figures sum instead of walking rows, kept by triggers like guidance_0004's:

- `family_year_tally`: the families' yearly tallies (`family_year`) counted per year, district,
  `pushed` and sessions attended (a histogram capped at 64, since the offline target is a setting),
  only those in need and registered by the year's end — what the figures' offline and online
  numerators count;
- `family_tally.newborn_in_need` and `newborn_in_need_visited`: per district and registration year,
  the newborn families in need, and those of them with a home visit on or after the first of January
  of their registration year (a visit in the following January still counts for the year's cohort),
  kept by triggers on `family` and on `home_visit`.

Both are filled from the rows there are.

Revision ID: guidance_0006
Revises: guidance_0005
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "guidance_0006"
down_revision: str | None = "guidance_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# models.FAMILY_YEAR_SESSIONS_CAP: a family's sessions beyond it are counted as the cap.
CAP = 64

# Dates are 'YYYY-MM-DD' text in SQLite and dates in PostgreSQL.
YEAR = {
    "sqlite": "CAST(strftime('%Y', {}) AS INTEGER)",
    "postgresql": "CAST(EXTRACT(YEAR FROM {}) AS INTEGER)",
}
JANUARY_FIRST = {
    "sqlite": "(strftime('%Y', {}) || '-01-01')",
    "postgresql": "CAST(date_trunc('year', {}) AS date)",
}
LEAST = {"sqlite": "min", "postgresql": "LEAST"}


def _visited(dialect: str, family: str) -> str:
    """Whether the family (an alias of a row with id and registered_on) has a visit that counts."""
    return (
        f"EXISTS (SELECT 1 FROM home_visit AS v WHERE v.family_id = {family}.id "
        f"AND v.visited_on >= {JANUARY_FIRST[dialect].format(f'{family}.registered_on')})"
    )


# --- family_year_tally ------------------------------------------------------------------------------

YEAR_TALLY_KEY = "year, district_code, pushed, sessions_attended"
YEAR_TALLY_BACKFILL = """
INSERT INTO family_year_tally (year, district_code, pushed, sessions_attended, families)
SELECT year, district_code, pushed, {least}(sessions_attended, {cap}), count(*)
FROM family_year WHERE in_need AND {registered_year} <= year
GROUP BY 1, 2, 3, 4
"""

# SQLite: per row; a row counts while it is in need and its family registered by the year's end.
SQLITE_YEAR_ADD = f"""
    INSERT INTO family_year_tally ({YEAR_TALLY_KEY}, families)
    SELECT NEW.year, NEW.district_code, NEW.pushed, min(NEW.sessions_attended, {CAP}), 1
    WHERE NEW.in_need AND CAST(strftime('%Y', NEW.registered_on) AS INTEGER) <= NEW.year
    ON CONFLICT ({YEAR_TALLY_KEY}) DO UPDATE SET families = families + 1;
"""
SQLITE_YEAR_TAKE = f"""
    UPDATE family_year_tally SET families = families - 1
    WHERE year = OLD.year AND district_code = OLD.district_code AND pushed = OLD.pushed
      AND sessions_attended = min(OLD.sessions_attended, {CAP})
      AND OLD.in_need AND CAST(strftime('%Y', OLD.registered_on) AS INTEGER) <= OLD.year;
"""
SQLITE_YEAR_TRIGGERS = (
    f"CREATE TRIGGER family_year_tally_on_insert AFTER INSERT ON family_year BEGIN {SQLITE_YEAR_ADD} END",
    # An upsert's DO UPDATE fires this too (attendance marked, a push).
    "CREATE TRIGGER family_year_tally_on_update AFTER UPDATE OF "
    "year, district_code, registered_on, in_need, sessions_attended, pushed ON family_year "
    f"BEGIN {SQLITE_YEAR_TAKE} {SQLITE_YEAR_ADD} END",
    f"CREATE TRIGGER family_year_tally_on_delete AFTER DELETE ON family_year BEGIN {SQLITE_YEAR_TAKE} END",
)


def _counted(rows: str, sign: int) -> str:
    return (
        f"SELECT year, district_code, pushed, LEAST(sessions_attended, {CAP}) AS sessions_attended, "
        f"{sign} AS n FROM {rows} "
        "WHERE in_need AND CAST(EXTRACT(YEAR FROM registered_on) AS INTEGER) <= year"
    )


def _year_tally_function(name: str, rows: str) -> str:
    # Per statement, from its transition tables (an upsert's DO UPDATE shows in the UPDATE ones); in
    # key order, so concurrent writers lock the tally rows in the same order; unchanged keys skipped.
    return f"""
    CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO family_year_tally AS t ({YEAR_TALLY_KEY}, families)
        SELECT year, district_code, pushed, sessions_attended, sum(n) FROM ({rows}) AS delta
        GROUP BY 1, 2, 3, 4 HAVING sum(n) <> 0 ORDER BY 1, 2, 3, 4
        ON CONFLICT ({YEAR_TALLY_KEY}) DO UPDATE SET families = t.families + excluded.families;
        RETURN NULL;
    END
    $$
    """


# PostgreSQL allows a transition table only on a trigger of one event: three of them.
POSTGRES_YEAR_STATEMENTS = (
    _year_tally_function("family_year_tally_added", _counted("added", 1)),
    _year_tally_function(
        "family_year_tally_changed", f"{_counted('new_rows', 1)} UNION ALL {_counted('old_rows', -1)}"
    ),
    _year_tally_function("family_year_tally_removed", _counted("old_rows", -1)),
    """
    CREATE TRIGGER family_year_tally_on_insert AFTER INSERT ON family_year
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION family_year_tally_added()
    """,
    """
    CREATE TRIGGER family_year_tally_on_update AFTER UPDATE ON family_year
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION family_year_tally_changed()
    """,
    """
    CREATE TRIGGER family_year_tally_on_delete AFTER DELETE ON family_year
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION family_year_tally_removed()
    """,
)

# --- newborn families in need, and those visited ------------------------------------------------------

NEWBORN_BACKFILL = """
UPDATE family_tally SET
    newborn_in_need = (
        SELECT count(*) FROM family AS f
        WHERE f.newborn AND f.in_need AND f.district_code = family_tally.district_code
          AND {year} = family_tally.registered_year),
    newborn_in_need_visited = (
        SELECT count(*) FROM family AS f
        WHERE f.newborn AND f.in_need AND f.district_code = family_tally.district_code
          AND {year} = family_tally.registered_year AND {visited})
"""

# SQLite, on `family`: separate triggers from guidance_0004's, each an upsert of its own, so they
# hold whichever fires first. The visits are those there are when the family changes.
SQLITE_NEWBORN_ADD = f"""
    INSERT INTO family_tally (district_code, registered_year, families, with_handbook, in_need,
                              newborn_in_need, newborn_in_need_visited)
    SELECT NEW.district_code, CAST(strftime('%Y', NEW.registered_on) AS INTEGER), 0, 0, 0, 1,
           {_visited("sqlite", "NEW")}
    WHERE NEW.newborn AND NEW.in_need
    ON CONFLICT (district_code, registered_year) DO UPDATE SET
        newborn_in_need = newborn_in_need + 1,
        newborn_in_need_visited = newborn_in_need_visited + excluded.newborn_in_need_visited;
"""
SQLITE_NEWBORN_TAKE = f"""
    UPDATE family_tally SET newborn_in_need = newborn_in_need - 1,
        newborn_in_need_visited = newborn_in_need_visited - {_visited("sqlite", "OLD")}
    WHERE district_code = OLD.district_code
      AND registered_year = CAST(strftime('%Y', OLD.registered_on) AS INTEGER)
      AND OLD.newborn AND OLD.in_need;
"""


def _visit_delta(dialect: str, row: str, sign: str, not_id: str) -> str:
    """The family of `row` (a visit) gains or loses its visited mark when `row` is its only visit
    that counts: the other visits that count are those except `not_id` (the row itself, or on an
    update the new row, so a take and an add in one update see the same others)."""
    year = YEAR[dialect].format("f.registered_on")
    since = JANUARY_FIRST[dialect].format("f.registered_on")
    return f"""
    UPDATE family_tally SET newborn_in_need_visited = newborn_in_need_visited {sign} 1
    WHERE (district_code, registered_year) IN (
        SELECT f.district_code, {year} FROM family AS f
        WHERE f.id = {row}.family_id AND f.newborn AND f.in_need AND {row}.visited_on >= {since}
          AND NOT EXISTS (SELECT 1 FROM home_visit AS v WHERE v.family_id = f.id
                          AND v.visited_on >= {since} AND v.id <> {not_id}));
    """


SQLITE_NEWBORN_TRIGGERS = (
    "CREATE TRIGGER family_tally_on_insert_newborn AFTER INSERT ON family "
    f"WHEN NEW.newborn AND NEW.in_need BEGIN {SQLITE_NEWBORN_ADD} END",
    "CREATE TRIGGER family_tally_on_update_newborn "
    "AFTER UPDATE OF id, district_code, registered_on, newborn, in_need ON family "
    "WHEN (OLD.newborn AND OLD.in_need) OR (NEW.newborn AND NEW.in_need) "
    f"BEGIN {SQLITE_NEWBORN_TAKE} {SQLITE_NEWBORN_ADD} END",
    "CREATE TRIGGER family_tally_on_delete_newborn AFTER DELETE ON family "
    f"WHEN OLD.newborn AND OLD.in_need BEGIN {SQLITE_NEWBORN_TAKE} END",
    "CREATE TRIGGER home_visit_tally_on_insert AFTER INSERT ON home_visit "
    f"BEGIN {_visit_delta('sqlite', 'NEW', '+', 'NEW.id')} END",
    "CREATE TRIGGER home_visit_tally_on_update AFTER UPDATE OF id, family_id, visited_on ON home_visit "
    f"BEGIN {_visit_delta('sqlite', 'OLD', '-', 'NEW.id')} "
    f"{_visit_delta('sqlite', 'NEW', '+', 'NEW.id')} END",
    "CREATE TRIGGER home_visit_tally_on_delete AFTER DELETE ON home_visit "
    f"BEGIN {_visit_delta('sqlite', 'OLD', '-', 'OLD.id')} END",
)

# PostgreSQL: named to fire after guidance_0004's triggers (same event, name order), which already
# lock every tally row these touch, so two writers still lock them in one order.
POSTGRES_NEWBORN_STATEMENTS = (
    f"""
    CREATE FUNCTION family_tally_added_newborn() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO family_tally AS t (district_code, registered_year, families, with_handbook, in_need,
                                       newborn_in_need, newborn_in_need_visited)
        SELECT district_code, {YEAR["postgresql"].format("registered_on")}, 0, 0, 0, count(*),
               count(*) FILTER (WHERE {_visited("postgresql", "added")})
        FROM added WHERE newborn AND in_need GROUP BY 1, 2 ORDER BY 1, 2
        ON CONFLICT (district_code, registered_year) DO UPDATE SET
            newborn_in_need = t.newborn_in_need + excluded.newborn_in_need,
            newborn_in_need_visited = t.newborn_in_need_visited + excluded.newborn_in_need_visited;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER family_tally_on_insert_newborn AFTER INSERT ON family
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION family_tally_added_newborn()
    """,
    f"""
    CREATE FUNCTION family_tally_changed_newborn() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF OLD.newborn AND OLD.in_need THEN
            UPDATE family_tally SET newborn_in_need = newborn_in_need - 1,
                newborn_in_need_visited = newborn_in_need_visited
                    - CAST({_visited("postgresql", "OLD")} AS INTEGER)
            WHERE district_code = OLD.district_code
              AND registered_year = {YEAR["postgresql"].format("OLD.registered_on")};
        END IF;
        IF TG_OP = 'UPDATE' AND NEW.newborn AND NEW.in_need THEN
            INSERT INTO family_tally AS t (district_code, registered_year, families, with_handbook,
                                           in_need, newborn_in_need, newborn_in_need_visited)
            VALUES (NEW.district_code, {YEAR["postgresql"].format("NEW.registered_on")}, 0, 0, 0, 1,
                    CAST({_visited("postgresql", "NEW")} AS INTEGER))
            ON CONFLICT (district_code, registered_year) DO UPDATE SET
                newborn_in_need = t.newborn_in_need + 1,
                newborn_in_need_visited = t.newborn_in_need_visited + excluded.newborn_in_need_visited;
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER family_tally_on_update_newborn
    AFTER UPDATE OF id, district_code, registered_on, newborn, in_need ON family FOR EACH ROW
    WHEN ((OLD.newborn AND OLD.in_need) OR (NEW.newborn AND NEW.in_need))
    EXECUTE FUNCTION family_tally_changed_newborn()
    """,
    """
    CREATE TRIGGER family_tally_on_delete_newborn AFTER DELETE ON family FOR EACH ROW
    WHEN (OLD.newborn AND OLD.in_need) EXECUTE FUNCTION family_tally_changed_newborn()
    """,
    # Per visit row, under the family's row lock: two first visits of one family in concurrent
    # transactions are counted one after the other (each statement here sees what committed before
    # it), as are a visit and a change of the family's flags (the family's UPDATE holds that lock).
    f"""
    CREATE FUNCTION home_visit_tally_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            PERFORM 1 FROM family WHERE id = NEW.family_id FOR NO KEY UPDATE;
            {_visit_delta("postgresql", "NEW", "+", "NEW.id")}
        ELSIF TG_OP = 'DELETE' THEN
            PERFORM 1 FROM family WHERE id = OLD.family_id FOR NO KEY UPDATE;
            {_visit_delta("postgresql", "OLD", "-", "OLD.id")}
        ELSE
            PERFORM 1 FROM family WHERE id IN (OLD.family_id, NEW.family_id) ORDER BY id
                FOR NO KEY UPDATE;
            {_visit_delta("postgresql", "OLD", "-", "NEW.id")}
            {_visit_delta("postgresql", "NEW", "+", "NEW.id")}
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER home_visit_tally_on_change
    AFTER INSERT OR UPDATE OF id, family_id, visited_on OR DELETE ON home_visit
    FOR EACH ROW EXECUTE FUNCTION home_visit_tally_changed()
    """,
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "family_year_tally",
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("district_code", sa.String(6), primary_key=True),
        sa.Column("pushed", sa.Boolean, primary_key=True),
        sa.Column("sessions_attended", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("families", sa.BigInteger, nullable=False),
    )
    op.execute(
        YEAR_TALLY_BACKFILL.format(
            least=LEAST[dialect], cap=CAP, registered_year=YEAR[dialect].format("registered_on")
        )
    )
    for column in ("newborn_in_need", "newborn_in_need_visited"):
        op.add_column(
            "family_tally", sa.Column(column, sa.BigInteger, nullable=False, server_default=sa.text("0"))
        )
    op.execute(
        NEWBORN_BACKFILL.format(year=YEAR[dialect].format("f.registered_on"), visited=_visited(dialect, "f"))
    )
    statements = (
        SQLITE_YEAR_TRIGGERS + SQLITE_NEWBORN_TRIGGERS
        if dialect == "sqlite"
        else POSTGRES_YEAR_STATEMENTS + POSTGRES_NEWBORN_STATEMENTS
    )
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER family_year_tally_on_{name}")
            op.execute(f"DROP TRIGGER family_tally_on_{name}_newborn")
            op.execute(f"DROP TRIGGER home_visit_tally_on_{name}")
    else:
        for name in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER family_year_tally_on_{name} ON family_year")
            op.execute(f"DROP TRIGGER family_tally_on_{name}_newborn ON family")
        op.execute("DROP TRIGGER home_visit_tally_on_change ON home_visit")
        for function in (
            "family_year_tally_added",
            "family_year_tally_changed",
            "family_year_tally_removed",
            "family_tally_added_newborn",
            "family_tally_changed_newborn",
            "home_visit_tally_changed",
        ):
            op.execute(f"DROP FUNCTION {function}()")
    # Plain ALTER (SQLite 3.35+): a batch copy of the table would break guidance_0004's triggers on it.
    for column in ("newborn_in_need_visited", "newborn_in_need"):
        op.execute(f"ALTER TABLE family_tally DROP COLUMN {column}")
    op.drop_table("family_year_tally")
