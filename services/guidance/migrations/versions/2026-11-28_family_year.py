"""Each family's yearly tallies (sessions attended, whether a resource was pushed to it), with the
family's district, registration day and `in_need` copied, for the figures; filled from the bookings
and pushes there are.

Revision ID: guidance_0003
Revises: guidance_0002
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "guidance_0003"
down_revision: str | None = "guidance_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The UTC year of a stored moment: SQLite keeps UTC text, PostgreSQL a timestamptz.
UTC_YEAR = {
    "sqlite": "CAST(strftime('%Y', {}) AS INTEGER)",
    "postgresql": "CAST(EXTRACT(YEAR FROM {} AT TIME ZONE 'UTC') AS INTEGER)",
}
BACKFILL = """
INSERT INTO family_year
    (family_id, year, district_code, registered_on, in_need, sessions_attended, pushed)
SELECT facts.family_id, facts.year, family.district_code, family.registered_on, family.in_need,
       sum(facts.sessions), sum(facts.pushes) > 0
FROM (
    SELECT family_id, {attended_year} AS year, 1 AS sessions, 0 AS pushes
    FROM booking WHERE attended = true
    UNION ALL
    SELECT family_id, {pushed_year}, 0, 1 FROM resource_push
) AS facts
JOIN family ON family.id = facts.family_id
GROUP BY facts.family_id, facts.year, family.district_code, family.registered_on, family.in_need
"""


def upgrade() -> None:
    op.create_table(
        "family_year",
        sa.Column("family_id", sa.String(36), sa.ForeignKey("family.id"), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.Column("registered_on", sa.Date, nullable=False),
        sa.Column("in_need", sa.Boolean, nullable=False),
        sa.Column("sessions_attended", sa.Integer, nullable=False),
        sa.Column("pushed", sa.Boolean, nullable=False),
    )
    op.create_index(
        "ix_family_year_figures",
        "family_year",
        ["year", "in_need", "district_code", "registered_on", "sessions_attended", "pushed"],
    )
    year = UTC_YEAR[op.get_bind().dialect.name]
    op.execute(
        BACKFILL.format(attended_year=year.format("session_starts_at"), pushed_year=year.format("pushed_at"))
    )


def downgrade() -> None:
    op.drop_index("ix_family_year_figures", table_name="family_year")
    op.drop_table("family_year")
