"""Divisions (loaded), places, families with guardians and children, parent links, home visits,
sessions and bookings, resources and their pushes, the personal-data audit, idempotency records.

Revision ID: guidance_0002
Revises: guidance_0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.divisions import read_divisions
from shared.idempotency import create_idempotency_table

revision: str = "guidance_0002"
down_revision: str | None = "guidance_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _at(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    district = op.create_table(
        "district",
        sa.Column("code", sa.String(6), primary_key=True),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("is_central_city", sa.Boolean, nullable=False),
    )
    town = op.create_table(
        "town",
        sa.Column("code", sa.String(9), primary_key=True),
        sa.Column("district_code", sa.String(6), sa.ForeignKey("district.code"), nullable=False, index=True),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("town_type", sa.String(16), nullable=False),
    )
    op.create_table(
        "place",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("district_code", sa.String(6), sa.ForeignKey("district.code"), nullable=False),
        sa.Column("town_code", sa.String(9), sa.ForeignKey("town.code")),
        sa.Column("address", sa.String(300), nullable=False),
        sa.Column("opened_on", sa.Date, nullable=False),
        sa.Column("closed_on", sa.Date),
        sa.Column("created_by", sa.String(64), nullable=False),
        _at("created_at"),
        _at("updated_at"),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_place_kind_district", "place", ["kind", "district_code", "opened_on"])
    op.create_index("ix_place_town", "place", ["town_code", "kind"])

    op.create_table(
        "family",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("district_code", sa.String(6), sa.ForeignKey("district.code"), nullable=False),
        sa.Column("town_code", sa.String(9), sa.ForeignKey("town.code"), nullable=False),
        sa.Column("in_need", sa.Boolean, nullable=False),
        sa.Column("newborn", sa.Boolean, nullable=False),
        sa.Column("grandparent_carers", sa.Boolean, nullable=False),
        sa.Column("has_handbook", sa.Boolean, nullable=False),
        sa.Column("registered_on", sa.Date, nullable=False),
        _at("registered_at"),
        sa.Column("registered_by", sa.String(64), nullable=False),
        sa.Column("registered_via", sa.String(16), nullable=False),
        sa.Column("link_code_hash", sa.String(64), unique=True),
        _at("link_code_expires_at", nullable=True),
        sa.Column("version", sa.Integer, nullable=False),
        _at("updated_at"),
    )
    op.create_index("ix_family_district_town", "family", ["district_code", "town_code"])
    op.create_index("ix_family_need", "family", ["in_need", "registered_on", "district_code", "id"])
    op.create_index(
        "ix_family_newborn", "family", ["newborn", "in_need", "registered_on", "district_code", "id"]
    )
    op.create_index(
        "ix_family_registered", "family", ["district_code", "registered_on", "has_handbook", "in_need"]
    )

    op.create_table(
        "guardian",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("family_id", sa.String(36), sa.ForeignKey("family.id"), nullable=False, index=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("relation", sa.String(16), nullable=False),
        sa.Column("name", sa.String(64)),
        sa.Column("phone_key_id", sa.String(32)),
        sa.Column("phone_encrypted", sa.String(200)),
        sa.Column("phone_masked", sa.String(16)),
        sa.Column("phone_hash", sa.String(64), index=True),
    )
    op.create_table(
        "child",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("family_id", sa.String(36), sa.ForeignKey("family.id"), nullable=False, index=True),
        sa.Column("birth_date", sa.Date, nullable=False),
    )
    op.create_index("ix_child_birth_family", "child", ["birth_date", "family_id"])
    op.create_table(
        "family_link",
        sa.Column("parent_id", sa.String(64), primary_key=True),
        sa.Column("family_id", sa.String(36), sa.ForeignKey("family.id"), nullable=False, index=True),
        sa.Column("linked_via", sa.String(16), nullable=False),
        _at("linked_at"),
    )
    op.create_table(
        "link_attempt",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("parent_id", sa.String(64), nullable=False),
        _at("attempted_at"),
    )
    op.create_index("ix_link_attempt_parent", "link_attempt", ["parent_id", "attempted_at"])

    op.create_table(
        "home_visit",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("family_id", sa.String(36), sa.ForeignKey("family.id"), nullable=False),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.Column("visited_on", sa.Date, nullable=False),
        sa.Column("visitor", sa.String(100), nullable=False),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.Column("notes", sa.String(2000), nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        _at("recorded_at"),
    )
    op.create_index("ix_home_visit_family", "home_visit", ["family_id", "visited_on"])
    op.create_index("ix_home_visit_district", "home_visit", ["district_code", "visited_on"])

    op.create_table(
        "guidance_session",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.String(2000), nullable=False),
        _at("starts_at"),
        _at("ends_at", nullable=True),
        sa.Column("place_id", sa.String(36), sa.ForeignKey("place.id"), index=True),
        sa.Column("district_code", sa.String(6), sa.ForeignKey("district.code")),
        sa.Column("town_code", sa.String(9), sa.ForeignKey("town.code")),
        sa.Column("venue", sa.String(300), nullable=False),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("booked", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("organiser_client_id", sa.String(64), nullable=False),
        _at("created_at"),
        sa.Column("version", sa.Integer, nullable=False),
        sa.CheckConstraint("booked >= 0 AND booked <= capacity", name="ck_session_booked_within_capacity"),
    )
    op.create_index("ix_session_starts", "guidance_session", ["starts_at"])
    op.create_index("ix_session_level_kind", "guidance_session", ["level", "kind", "starts_at"])
    op.create_index("ix_session_district", "guidance_session", ["district_code", "starts_at"])
    op.create_table(
        "booking",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("session_id", sa.String(36), sa.ForeignKey("guidance_session.id"), nullable=False),
        sa.Column("family_id", sa.String(36), sa.ForeignKey("family.id"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("booked_by", sa.String(64), nullable=False),
        _at("booked_at"),
        _at("cancelled_at", nullable=True),
        sa.Column("attended", sa.Boolean, nullable=False),
        _at("attended_at", nullable=True),
        _at("session_starts_at"),
        sa.UniqueConstraint("session_id", "family_id", name="uq_booking_session_family"),
    )
    op.create_index("ix_booking_family", "booking", ["family_id", "attended", "session_starts_at"])

    op.create_table(
        "resource",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("summary", sa.String(2000), nullable=False),
        sa.Column("url", sa.String(500)),
        sa.Column("age_from_months", sa.Integer, nullable=False),
        sa.Column("age_to_months", sa.Integer, nullable=False),
        sa.Column("topics", sa.JSON, nullable=False),
        sa.Column("audience", sa.String(16), nullable=False),
        _at("published_at"),
        sa.Column("published_by", sa.String(64), nullable=False),
        sa.Column("pushed_families", sa.Integer, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
    )
    op.create_index("ix_resource_published", "resource", ["published_at"])
    op.create_index("ix_resource_age", "resource", ["age_from_months", "age_to_months"])
    op.create_table(
        "resource_push",
        sa.Column("resource_id", sa.String(36), sa.ForeignKey("resource.id"), primary_key=True),
        sa.Column("family_id", sa.String(36), sa.ForeignKey("family.id"), primary_key=True),
        _at("pushed_at"),
    )
    op.create_index("ix_resource_push_family", "resource_push", ["family_id", "pushed_at"])

    op.create_table(
        "pii_access",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("accessed_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("client_id", sa.String(64), nullable=False, index=True),
        sa.Column("record_type", sa.String(32), nullable=False),
        sa.Column("record_id", sa.String(36), nullable=False, index=True),
        sa.Column("fields", sa.String(100), nullable=False),
        sa.Column("purpose", sa.String(300), nullable=False),
        sa.Column("request_id", sa.String(128)),
    )
    create_idempotency_table()

    districts: dict[str, dict[str, object]] = {}
    towns: list[dict[str, object]] = []
    for row in read_divisions():
        districts.setdefault(
            row.district_code,
            {"code": row.district_code, "name": row.district_name, "is_central_city": row.is_central_city},
        )
        towns.append(
            {
                "code": row.town_code,
                "district_code": row.district_code,
                "name": row.town_name,
                "town_type": row.town_type,
            }
        )
    op.bulk_insert(district, list(districts.values()))
    op.bulk_insert(town, towns)


def downgrade() -> None:
    for table in (
        "idempotency_record",
        "pii_access",
        "resource_push",
        "resource",
        "booking",
        "guidance_session",
        "home_visit",
        "link_attempt",
        "family_link",
        "child",
        "guardian",
        "family",
        "place",
        "town",
        "district",
    ):
        op.drop_table(table)
