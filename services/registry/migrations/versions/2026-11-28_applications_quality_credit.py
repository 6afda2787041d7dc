"""Reviews, status history, versions, enrolment, licences, assessments, credit record, inspection
history, idempotency records; more facility columns and search indexes.

Revision ID: registry_0002
Revises: registry_0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.idempotency import create_idempotency_table

revision: str = "registry_0002"
down_revision: str | None = "registry_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("facility") as batch:
        batch.add_column(sa.Column("opening_hours", sa.JSON, nullable=False, server_default="[]"))
        for column in (
            "classes_infant",
            "classes_toddler",
            "classes_preschool",
            "enrolled_infant",
            "enrolled_toddler",
            "enrolled_preschool",
        ):
            batch.add_column(sa.Column(column, sa.Integer, nullable=False, server_default="0"))
        batch.add_column(sa.Column("enrolment_month", sa.String(7)))
        batch.add_column(sa.Column("rejection_reasons", sa.JSON, nullable=False, server_default="[]"))
        batch.add_column(sa.Column("grade", sa.String(8)))
        batch.add_column(sa.Column("is_demonstration", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("approved_at", sa.DateTime(timezone=True)))
        batch.create_index("ix_facility_lat_lon", ["lat", "lon"])
        batch.create_index("ix_facility_status_kind", ["status", "kind"])

    op.create_table(
        "facility_review",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("facility_id", sa.String(36), sa.ForeignKey("facility.id"), nullable=False, index=True),
        sa.Column("department", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("note", sa.String(2000), nullable=False),
        sa.Column("reviewer_client_id", sa.String(64), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("facility_id", "department", name="uq_review_department"),
    )
    op.create_table(
        "facility_status_change",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("facility_id", sa.String(36), sa.ForeignKey("facility.id"), nullable=False, index=True),
        sa.Column("from_status", sa.String(16)),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(2000), nullable=False),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "facility_version",
        sa.Column("facility_id", sa.String(36), sa.ForeignKey("facility.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("snapshot", sa.JSON, nullable=False),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "enrolment",
        sa.Column("facility_id", sa.String(36), sa.ForeignKey("facility.id"), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("infant", sa.Integer, nullable=False),
        sa.Column("toddler", sa.Integer, nullable=False),
        sa.Column("preschool", sa.Integer, nullable=False),
        sa.Column("reported_by", sa.String(64), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "license_sequence",
        sa.Column("district_code", sa.String(6), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("last_number", sa.Integer, nullable=False),
    )
    op.create_table(
        "assessment",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("facility_id", sa.String(36), sa.ForeignKey("facility.id"), nullable=False, index=True),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("scores", sa.JSON, nullable=False),
        sa.Column("grade", sa.String(8), nullable=False),
        sa.Column("assessed_on", sa.Date, nullable=False),
        sa.Column("assessor", sa.String(200), nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "credit_entry",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("facility_id", sa.String(36), sa.ForeignKey("facility.id"), nullable=False, index=True),
        sa.Column("polarity", sa.String(8), nullable=False),
        sa.Column("category", sa.String(32), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("detail", sa.String(2000), nullable=False),
        sa.Column("occurred_on", sa.Date, nullable=False),
        sa.Column("source_event_id", sa.String(64)),
        sa.Column("source_event_type", sa.String(128)),
        sa.Column("written_by", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("facility_id", "source_event_id", name="uq_credit_source_event"),
    )
    op.create_table(
        "inspection_record",
        sa.Column("inspection_id", sa.String(36), primary_key=True),
        sa.Column("facility_id", sa.String(36), sa.ForeignKey("facility.id"), nullable=False, index=True),
        sa.Column("inspected_on", sa.Date, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("failed_items", sa.JSON, nullable=False),
        sa.Column("rectify_by", sa.Date),
        sa.Column("rectified_on", sa.Date),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    )
    create_idempotency_table()


def downgrade() -> None:
    op.drop_table("idempotency_record")
    for table in (
        "inspection_record",
        "credit_entry",
        "assessment",
        "license_sequence",
        "enrolment",
        "facility_version",
        "facility_status_change",
        "facility_review",
    ):
        op.drop_table(table)
    with op.batch_alter_table("facility") as batch:
        batch.drop_index("ix_facility_status_kind")
        batch.drop_index("ix_facility_lat_lon")
        for column in (
            "approved_at",
            "is_demonstration",
            "grade",
            "rejection_reasons",
            "enrolment_month",
            "enrolled_preschool",
            "enrolled_toddler",
            "enrolled_infant",
            "classes_preschool",
            "classes_toddler",
            "classes_infant",
            "opening_hours",
        ):
            batch.drop_column(column)
