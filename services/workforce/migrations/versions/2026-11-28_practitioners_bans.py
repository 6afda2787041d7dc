"""Practitioners, certificates, employment, training, background checks, bans and their audits;
the facility projection learns capacity, enrolment and version.

Revision ID: workforce_0002
Revises: workforce_0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "workforce_0002"
down_revision: str | None = "workforce_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PROJECTION_COUNTS = (
    "capacity_infant",
    "capacity_toddler",
    "capacity_preschool",
    "enrolment_infant",
    "enrolment_toddler",
    "enrolment_preschool",
    "version",
)


def _at(name: str, *, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    with op.batch_alter_table("facility_projection") as batch:
        for column in PROJECTION_COUNTS:
            batch.add_column(sa.Column(column, sa.Integer, nullable=False, server_default="0"))

    op.create_table(
        "person",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        _at("created_at"),
    )
    op.create_table(
        "practitioner",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("id_hash", sa.String(64), sa.ForeignKey("person.id_hash"), nullable=False, unique=True),
        sa.Column("id_number_key_id", sa.String(32), nullable=False),
        sa.Column("id_number_encrypted", sa.Text, nullable=False),
        sa.Column("id_number_masked", sa.String(18), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("phone_key_id", sa.String(32)),
        sa.Column("phone_encrypted", sa.Text),
        sa.Column("phone_masked", sa.String(32)),
        sa.Column("nationality", sa.String(2), nullable=False),
        sa.Column("work_permit_no", sa.String(64)),
        sa.Column("grade", sa.Integer),
        sa.Column("registered_by", sa.String(64), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        _at("created_at"),
        _at("updated_at"),
    )
    op.create_table(
        "grade_change",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "practitioner_id", sa.String(36), sa.ForeignKey("practitioner.id"), nullable=False, index=True
        ),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("changed_by", sa.String(64), nullable=False),
        _at("changed_at"),
    )
    op.create_table(
        "certificate",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "practitioner_id", sa.String(36), sa.ForeignKey("practitioner.id"), nullable=False, index=True
        ),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("number", sa.String(64), nullable=False),
        sa.Column("issuer", sa.String(200), nullable=False),
        sa.Column("issued_on", sa.Date, nullable=False),
        sa.Column("expires_on", sa.Date, nullable=False, index=True),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        _at("created_at"),
        _at("expiry_announced_at", nullable=True),
        sa.UniqueConstraint("practitioner_id", "type", "number", name="uq_certificate_number"),
    )
    op.create_table(
        "employment",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("practitioner_id", sa.String(36), sa.ForeignKey("practitioner.id"), nullable=False),
        sa.Column(
            "facility_id", sa.String(36), sa.ForeignKey("facility_projection.facility_id"), nullable=False
        ),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("age_class", sa.String(16)),
        sa.Column("contract_type", sa.String(16), nullable=False),
        sa.Column("social_insurance_paid", sa.Boolean, nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("end_date", sa.Date),
        sa.Column("end_reason", sa.String(32)),
        sa.Column("end_note", sa.String(300)),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        _at("created_at"),
        _at("ended_at", nullable=True),
        sa.Column("ended_by", sa.String(64)),
    )
    op.create_index("ix_employment_practitioner_status", "employment", ["practitioner_id", "status"])
    op.create_index("ix_employment_facility_status", "employment", ["facility_id", "status"])
    op.create_table(
        "hire_attempt",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column(
            "practitioner_id", sa.String(36), sa.ForeignKey("practitioner.id"), nullable=False, index=True
        ),
        sa.Column("facility_id", sa.String(36), nullable=False, index=True),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        _at("attempted_at"),
    )
    op.create_table(
        "ban",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("id_hash", sa.String(64), sa.ForeignKey("person.id_hash"), nullable=False, index=True),
        sa.Column("practitioner_id", sa.String(36), sa.ForeignKey("practitioner.id")),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("id_number_key_id", sa.String(32), nullable=False),
        sa.Column("id_number_encrypted", sa.Text, nullable=False),
        sa.Column("id_number_masked", sa.String(18), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=False),
        sa.Column("decision_ref", sa.String(100), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("incident_id", sa.String(36), index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("issued_by", sa.String(64), nullable=False),
        _at("issued_at"),
        sa.UniqueConstraint("id_hash", "decision_ref", name="uq_ban_person_decision"),
    )
    op.create_table(
        "ban_rescission",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("ban_id", sa.String(36), sa.ForeignKey("ban.id"), nullable=False, unique=True),
        sa.Column("reason", sa.String(1000), nullable=False),
        sa.Column("authority_ref", sa.String(100), nullable=False),
        sa.Column("rescinded_by", sa.String(64), nullable=False),
        _at("rescinded_at"),
    )
    op.create_table(
        "ban_notification",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("ban_id", sa.String(36), sa.ForeignKey("ban.id"), nullable=False),
        sa.Column("facility_id", sa.String(36), nullable=False, index=True),
        sa.Column("district_code", sa.String(6), nullable=False),
        sa.Column("employment_id", sa.String(36), nullable=False),
        _at("notified_at"),
        _at("acknowledged_at", nullable=True),
        sa.Column("acknowledged_by", sa.String(64)),
        _at("escalated_at", nullable=True),
        sa.UniqueConstraint("ban_id", "facility_id", name="uq_ban_notification_facility"),
    )
    op.create_index("ix_ban_notification_open", "ban_notification", ["acknowledged_at", "escalated_at"])
    op.create_table(
        "ban_check",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("client_id", sa.String(64), nullable=False, index=True),
        sa.Column("client_kind", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("id_hash", sa.String(64)),
        sa.Column("purpose", sa.String(300)),
        sa.Column("request_id", sa.String(128)),
    )
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
    op.create_table(
        "background_check",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("practitioner_id", sa.String(36), sa.ForeignKey("practitioner.id"), nullable=False),
        sa.Column("employment_id", sa.String(36)),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("requested_by", sa.String(64), nullable=False),
        _at("requested_at"),
        sa.Column("answered_by", sa.String(64)),
        _at("answered_at", nullable=True),
        sa.Column("answer_note", sa.String(1000)),
        sa.Column("resolved_by", sa.String(64)),
        _at("resolved_at", nullable=True),
        sa.Column("resolution_note", sa.String(1000)),
    )
    op.create_index(
        "ix_background_check_practitioner_status", "background_check", ["practitioner_id", "status"]
    )
    op.create_table(
        "training",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("practitioner_id", sa.String(36), sa.ForeignKey("practitioner.id"), nullable=False),
        sa.Column("category", sa.String(16), nullable=False),
        sa.Column("hours", sa.Float, nullable=False),
        sa.Column("trained_on", sa.Date, nullable=False, index=True),
        sa.Column("provider", sa.String(200), nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        _at("created_at"),
    )
    op.create_index("ix_training_practitioner_on", "training", ["practitioner_id", "trained_on"])
    op.create_table(
        "recheck",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("practitioner_id", sa.String(36), sa.ForeignKey("practitioner.id"), nullable=False),
        sa.Column("year", sa.Integer, nullable=False, index=True),
        _at("checked_at"),
        sa.Column("banned", sa.Boolean, nullable=False),
        sa.Column("background_check_id", sa.String(36)),
        sa.UniqueConstraint("practitioner_id", "year", name="uq_recheck_practitioner_year"),
    )


def downgrade() -> None:
    for table in (
        "recheck",
        "training",
        "background_check",
        "pii_access",
        "ban_check",
        "ban_notification",
        "ban_rescission",
        "ban",
        "hire_attempt",
        "employment",
        "certificate",
        "grade_change",
        "practitioner",
        "person",
    ):
        op.drop_table(table)
    with op.batch_alter_table("facility_projection") as batch:
        for column in reversed(PROJECTION_COUNTS):
            batch.drop_column(column)
