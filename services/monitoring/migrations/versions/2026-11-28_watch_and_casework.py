"""The watch (facility projection, cameras, CCTV events, alerts) and the casework (incidents,
inspectors, inspection plans, inspections); idempotency records.

Revision ID: monitoring_0002
Revises: monitoring_0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.idempotency import create_idempotency_table

revision: str = "monitoring_0002"
down_revision: str | None = "monitoring_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "cctv_event",
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("camera_id", sa.String(length=36), nullable=False),
        sa.Column("facility_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_cctv_event_camera_occurred", "cctv_event", ["camera_id", "occurred_at"], unique=False)
    op.create_index("ix_cctv_event_received", "cctv_event", ["received_at"], unique=False)
    op.create_table(
        "facility",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("district_code", sa.String(length=6), nullable=False),
        sa.Column("town_code", sa.String(length=9), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("owner_client_id", sa.String(length=64), nullable=True),
        sa.Column("opening_hours", sa.JSON(), nullable=False),
        sa.Column("enrolled", sa.Integer(), nullable=False),
        sa.Column("staffing_in_ratio", sa.Boolean(), nullable=True),
        sa.Column("staffing_shortfall", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source_event_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_facility_district_code"), "facility", ["district_code"], unique=False)
    create_idempotency_table()
    op.create_table(
        "inspection_plan",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("district_code", sa.String(length=6), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("sample_size", sa.Integer(), nullable=False),
        sa.Column("seed", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=32), nullable=False),
        sa.Column("inputs", sa.JSON(), nullable=False),
        sa.Column("drawn_by", sa.String(length=64), nullable=False),
        sa.Column("drawn_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_plan_district_month", "inspection_plan", ["district_code", "month"], unique=False)
    op.create_table(
        "inspector",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("district_code", sa.String(length=6), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_inspector_district_code"), "inspector", ["district_code"], unique=False)
    op.create_table(
        "alert",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("facility_id", sa.String(length=36), nullable=False),
        sa.Column("district_code", sa.String(length=6), nullable=False),
        sa.Column("camera_id", sa.String(length=36), nullable=True),
        sa.Column("type", sa.String(length=48), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("source_ref", sa.String(length=200), nullable=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facility.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source_ref", name="uq_alert_source_ref"),
    )
    op.create_index(
        "ix_alert_district_status", "alert", ["district_code", "status", "raised_at"], unique=False
    )
    op.create_index("ix_alert_facility_status", "alert", ["facility_id", "status"], unique=False)
    op.create_index("ix_alert_fold", "alert", ["camera_id", "type", "status", "last_at"], unique=False)
    op.create_table(
        "camera",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("facility_id", sa.String(length=36), nullable=False),
        sa.Column("location", sa.String(length=32), nullable=False),
        sa.Column("vendor", sa.String(length=100), nullable=False),
        sa.Column("external_id", sa.String(length=100), nullable=False),
        sa.Column("label", sa.String(length=200), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("registered_by", sa.String(length=64), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_event_type", sa.String(length=32), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facility.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("facility_id", "external_id", name="uq_camera_external_id"),
    )
    op.create_index(op.f("ix_camera_facility_id"), "camera", ["facility_id"], unique=False)
    op.create_table(
        "incident",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("facility_id", sa.String(length=36), nullable=False),
        sa.Column("district_code", sa.String(length=6), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("description", sa.String(length=4000), nullable=False),
        sa.Column("practitioner_ids", sa.JSON(), nullable=False),
        sa.Column("reported_by_kind", sa.String(length=16), nullable=False),
        sa.Column("reporter_client_id", sa.String(length=64), nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("report_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reported_late", sa.Boolean(), nullable=False),
        sa.Column("finding_due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finding_overdue_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("decision_ref", sa.String(length=200), nullable=True),
        sa.Column("decided_by", sa.String(length=64), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("abuser_practitioner_ids", sa.JSON(), nullable=False),
        sa.Column("responsible_manager_ids", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facility.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_incident_district_status", "incident", ["district_code", "status"], unique=False)
    op.create_index("ix_incident_facility", "incident", ["facility_id", "occurred_at"], unique=False)
    op.create_index("ix_incident_finding_due", "incident", ["status", "finding_due_at"], unique=False)
    op.create_table(
        "inspection",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("plan_id", sa.String(length=36), nullable=True),
        sa.Column("facility_id", sa.String(length=36), nullable=False),
        sa.Column("district_code", sa.String(length=6), nullable=False),
        sa.Column("inspector_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("inspected_on", sa.Date(), nullable=True),
        sa.Column("rectify_by", sa.Date(), nullable=True),
        sa.Column("rectified_on", sa.Date(), nullable=True),
        sa.Column("rectification_overdue_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recorded_by", sa.String(length=64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_id"],
            ["facility.id"],
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["inspection_plan.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_inspection_facility_date", "inspection", ["facility_id", "inspected_on"], unique=False
    )
    op.create_index(op.f("ix_inspection_plan_id"), "inspection", ["plan_id"], unique=False)
    op.create_index(
        "ix_inspection_rectify", "inspection", ["outcome", "rectified_on", "rectify_by"], unique=False
    )
    op.create_table(
        "alert_transition",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("alert_id", sa.String(length=36), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alert.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_alert_transition_alert_id"), "alert_transition", ["alert_id"], unique=False)
    op.create_table(
        "incident_transition",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("incident_id", sa.String(length=36), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("note", sa.String(length=2000), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["incident_id"],
            ["incident.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_incident_transition_incident_id"), "incident_transition", ["incident_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_incident_transition_incident_id"), table_name="incident_transition")
    op.drop_table("incident_transition")
    op.drop_index(op.f("ix_alert_transition_alert_id"), table_name="alert_transition")
    op.drop_table("alert_transition")
    op.drop_index("ix_inspection_rectify", table_name="inspection")
    op.drop_index(op.f("ix_inspection_plan_id"), table_name="inspection")
    op.drop_index("ix_inspection_facility_date", table_name="inspection")
    op.drop_table("inspection")
    op.drop_index("ix_incident_finding_due", table_name="incident")
    op.drop_index("ix_incident_facility", table_name="incident")
    op.drop_index("ix_incident_district_status", table_name="incident")
    op.drop_table("incident")
    op.drop_index(op.f("ix_camera_facility_id"), table_name="camera")
    op.drop_table("camera")
    op.drop_index("ix_alert_fold", table_name="alert")
    op.drop_index("ix_alert_facility_status", table_name="alert")
    op.drop_index("ix_alert_district_status", table_name="alert")
    op.drop_table("alert")
    op.drop_index(op.f("ix_inspector_district_code"), table_name="inspector")
    op.drop_table("inspector")
    op.drop_index("ix_plan_district_month", table_name="inspection_plan")
    op.drop_table("inspection_plan")
    op.drop_table("idempotency_record")
    op.drop_index(op.f("ix_facility_district_code"), table_name="facility")
    op.drop_table("facility")
    op.drop_index("ix_cctv_event_received", table_name="cctv_event")
    op.drop_index("ix_cctv_event_camera_occurred", table_name="cctv_event")
    op.drop_table("cctv_event")
