"""Subsidies (综合奖补): every enrolment filing kept (backfilled from the latest report of each month),
FINANCE's rates per district and year with their history, the monthly lists and their lines.

Revision ID: registry_0006
Revises: registry_0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "registry_0006"
down_revision: str | None = "registry_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "enrolment_filing",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("facility_id", sa.String(36), sa.ForeignKey("facility.id"), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("infant", sa.Integer, nullable=False),
        sa.Column("toddler", sa.Integer, nullable=False),
        sa.Column("preschool", sa.Integer, nullable=False),
        sa.Column("reported_by", sa.String(64), nullable=False),
        _at("reported_at"),
    )
    op.create_index("ix_enrolment_filing_lookup", "enrolment_filing", ["facility_id", "month", "reported_at"])
    # The reports made before filings were kept: each month's latest, as of when it was made. An id
    # from the row's own key, the same on both databases (no uuid function on SQLite).
    op.execute(
        "INSERT INTO enrolment_filing "
        "(id, facility_id, month, infant, toddler, preschool, reported_by, reported_at) "
        "SELECT substr(facility_id, 1, 28) || replace(month, '-', ''), facility_id, month, infant, "
        "toddler, preschool, reported_by, reported_at FROM enrolment"
    )
    op.create_table(
        "subsidy_rate",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("district_code", sa.String(6), sa.ForeignKey("district.code"), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("note", sa.String(2000), nullable=False),
        sa.Column("set_by", sa.String(64), nullable=False),
        _at("set_at"),
    )
    op.create_index("ix_subsidy_rate_lookup", "subsidy_rate", ["district_code", "year", "set_at"])
    op.create_table(
        "subsidy_list",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("district_code", sa.String(6), sa.ForeignKey("district.code"), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        _at("closes_at"),
        sa.Column("rate_fen", sa.BigInteger, nullable=False),
        sa.Column("line_count", sa.Integer, nullable=False),
        sa.Column("eligible_lines", sa.Integer, nullable=False),
        sa.Column("places", sa.Integer, nullable=False),
        sa.Column("total_fen", sa.BigInteger, nullable=False),
        sa.Column("computed_by", sa.String(64), nullable=False),
        _at("computed_at"),
        sa.Column("reviewed_by", sa.String(64)),
        _at("reviewed_at", nullable=True),
        sa.Column("review_note", sa.String(2000), nullable=False),
        sa.Column("published_by", sa.String(64)),
        _at("published_at", nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.UniqueConstraint("month", "district_code", name="uq_subsidy_list_month_district"),
    )
    op.create_table(
        "subsidy_line",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("list_id", sa.String(36), sa.ForeignKey("subsidy_list.id"), nullable=False, index=True),
        sa.Column("facility_id", sa.String(36), sa.ForeignKey("facility.id"), nullable=False),
        sa.Column("facility_name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("for_month", sa.String(7), nullable=False),
        sa.Column("eligible", sa.Boolean, nullable=False),
        sa.Column("places", sa.Integer, nullable=False),
        sa.Column("rate_fen", sa.BigInteger, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("checks", sa.JSON, nullable=False),
        sa.Column("refusals", sa.JSON, nullable=False),
        sa.Column("paid_fen", sa.BigInteger),
        sa.Column("paid_on", sa.Date),
        sa.Column("payment_reference", sa.String(64)),
        sa.Column("paid_by", sa.String(64)),
        _at("paid_at", nullable=True),
        sa.UniqueConstraint("list_id", "facility_id", "for_month", name="uq_subsidy_line"),
    )
    op.create_index("ix_subsidy_line_facility", "subsidy_line", ["facility_id", "for_month"])


def downgrade() -> None:
    op.drop_index("ix_subsidy_line_facility", table_name="subsidy_line")
    op.drop_table("subsidy_line")
    op.drop_table("subsidy_list")
    op.drop_index("ix_subsidy_rate_lookup", table_name="subsidy_rate")
    op.drop_table("subsidy_rate")
    op.drop_index("ix_enrolment_filing_lookup", table_name="enrolment_filing")
    op.drop_table("enrolment_filing")
