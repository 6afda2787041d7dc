"""Divisions, facilities, outbox and inbox; Shanghai's divisions loaded.

Revision ID: registry_0001
Revises:
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.divisions import read_divisions
from shared.events.tables import create_event_tables, drop_event_tables

revision: str = "registry_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    district = op.create_table(
        "district",
        sa.Column("code", sa.String(6), primary_key=True),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("pinyin", sa.String(64), nullable=False),
        sa.Column("is_central_city", sa.Boolean, nullable=False),
        sa.Column("population_2020", sa.Integer),
        sa.Column("population_2020_age0", sa.Integer),
        sa.Column("population_2020_age1_4", sa.Integer),
    )
    town = op.create_table(
        "town",
        sa.Column("code", sa.String(9), primary_key=True),
        sa.Column("district_code", sa.String(6), sa.ForeignKey("district.code"), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("town_type", sa.String(16), nullable=False),
        sa.Column("code_source", sa.String(16), nullable=False),
        sa.Column("mca2025_code", sa.String(9)),
        sa.Column("name_variant", sa.String(64)),
    )
    op.create_table(
        "facility",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("inclusive", sa.Boolean, nullable=False),
        sa.Column("has_nursery_class", sa.Boolean, nullable=False),
        sa.Column("town_code", sa.String(9), sa.ForeignKey("town.code"), nullable=False, index=True),
        sa.Column("district_code", sa.String(6), sa.ForeignKey("district.code"), nullable=False),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("lat", sa.Float, nullable=False),
        sa.Column("lon", sa.Float, nullable=False),
        sa.Column("operator_name", sa.String(200), nullable=False),
        sa.Column("service_modes", sa.JSON, nullable=False),
        sa.Column("capacity_infant", sa.Integer, nullable=False),
        sa.Column("capacity_toddler", sa.Integer, nullable=False),
        sa.Column("capacity_preschool", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("license_no", sa.String(32), unique=True),
        sa.Column("owner_client_id", sa.String(64), index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_facility_district_status", "facility", ["district_code", "status"])
    create_event_tables()

    districts: dict[str, dict[str, object]] = {}
    towns: list[dict[str, object]] = []
    for row in read_divisions():
        districts.setdefault(
            row.district_code,
            {
                "code": row.district_code,
                "name": row.district_name,
                "pinyin": row.district_pinyin,
                "is_central_city": row.is_central_city,
                "population_2020": row.district_population_2020,
                "population_2020_age0": row.district_population_2020_age0,
                "population_2020_age1_4": row.district_population_2020_age1_4,
            },
        )
        towns.append(
            {
                "code": row.town_code,
                "district_code": row.district_code,
                "name": row.town_name,
                "town_type": row.town_type,
                "code_source": row.town_code_source,
                "mca2025_code": row.mca2025_code,
                "name_variant": row.name_variant,
            }
        )
    op.bulk_insert(district, list(districts.values()))
    op.bulk_insert(town, towns)


def downgrade() -> None:
    drop_event_tables()
    op.drop_table("facility")
    op.drop_table("town")
    op.drop_table("district")
