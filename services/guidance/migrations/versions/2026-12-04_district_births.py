"""Births per district and year, the denominator of the handbook's coverage (T19); 2020 seeded with
each district's age-0 population in the 2020 census (the project's shanghai_divisions.csv).

Revision ID: guidance_0005
Revises: guidance_0004
Create Date: 2026-12-04
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from shared.divisions import read_divisions

revision: str = "guidance_0005"
down_revision: str | None = "guidance_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CENSUS = "第七次全国人口普查(2020)各区 0 岁人口"


def upgrade() -> None:
    births = op.create_table(
        "district_births",
        sa.Column("district_code", sa.String(6), sa.ForeignKey("district.code"), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("births", sa.Integer, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    age0: dict[str, int] = {}
    for row in read_divisions():
        if row.district_population_2020_age0 is not None:
            age0.setdefault(row.district_code, row.district_population_2020_age0)
    recorded_at = datetime(2026, 12, 4, tzinfo=UTC)
    op.bulk_insert(
        births,
        [
            {
                "district_code": code,
                "year": 2020,
                "births": count,
                "source": CENSUS,
                "recorded_by": "migration",
                "recorded_at": recorded_at,
            }
            for code, count in sorted(age0.items())
        ],
    )


def downgrade() -> None:
    op.drop_table("district_births")
