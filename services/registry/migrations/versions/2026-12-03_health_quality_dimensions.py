"""Children's entry health checks (入托体检), HEALTH's yearly 卫生保健 assessments, the versioned quality
framework (its first version: the first-level dimensions of WS/T 821—2023) and each assessment's
framework version and grades by dimension.

Revision ID: registry_0004
Revises: registry_0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "registry_0004"
down_revision: str | None = "registry_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# 托育机构质量评估标准 (WS/T 821—2023, National Health Commission, November 2023): its evaluation
# covers 办托条件、托育队伍、保育照护、卫生保健、养育支持、安全保障、机构管理, as Xinhua's report of
# 3 November 2023 lists them. Items are only those that report names; EDU adds the rest as a new
# version.
STANDARD = "WS/T 821—2023 托育机构质量评估标准"
DIMENSIONS = [
    {
        "code": "facility_conditions",
        "name": "办托条件",
        "items": [
            {"code": "qualification", "name": "机构资质"},
            {"code": "environment", "name": "环境空间"},
            {"code": "equipment", "name": "设备设施"},
            {"code": "play_materials", "name": "玩具材料"},
        ],
    },
    {
        "code": "workforce",
        "name": "托育队伍",
        "items": [
            {"code": "director_qualification", "name": "负责人资质"},
            {"code": "staff_health_and_record", "name": "工作人员健康证明与无犯罪记录证明"},
        ],
    },
    {"code": "care", "name": "保育照护", "items": []},
    {"code": "health_care", "name": "卫生保健", "items": []},
    {"code": "parenting_support", "name": "养育支持", "items": []},
    {
        "code": "safety",
        "name": "安全保障",
        "items": [
            {"code": "safety_equipment", "name": "安全设施设备(一键式报警、消防设施)"},
            {"code": "cctv", "name": "生活场所监控全覆盖,录像保存不少于 90 天"},
            {"code": "safety_education", "name": "安全教育"},
        ],
    },
    {"code": "management", "name": "机构管理", "items": []},
]


def upgrade() -> None:
    framework = op.create_table(
        "quality_framework",
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("source", sa.String(300), nullable=False),
        sa.Column("dimensions", sa.JSON, nullable=False),
        sa.Column("published_by", sa.String(64), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.bulk_insert(
        framework,
        [
            {
                "version": 1,
                "title": "托育机构质量评估 一级指标",
                "source": STANDARD,
                "dimensions": DIMENSIONS,
                "published_by": "migration",
                "published_at": datetime(2026, 12, 3, tzinfo=UTC),
            }
        ],
    )
    with op.batch_alter_table("assessment") as batch:
        batch.add_column(sa.Column("framework_version", sa.Integer, nullable=True))
        batch.add_column(sa.Column("dimension_grades", sa.JSON, nullable=True))
        batch.create_foreign_key(
            "fk_assessment_framework_version", "quality_framework", ["framework_version"], ["version"]
        )
    op.create_table(
        "entry_health_check",
        sa.Column("facility_id", sa.String(36), sa.ForeignKey("facility.id"), primary_key=True),
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("district_code", sa.String(6), nullable=False, index=True),
        sa.Column("children_enrolled", sa.Integer, nullable=False),
        sa.Column("children_checked", sa.Integer, nullable=False),
        sa.Column("reported_by", sa.String(64), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "health_assessment",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("facility_id", sa.String(36), sa.ForeignKey("facility.id"), nullable=False),
        sa.Column("district_code", sa.String(6), nullable=False, index=True),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("result", sa.String(24), nullable=False),
        sa.Column("assessed_on", sa.Date, nullable=False),
        sa.Column("notes", sa.String(2000), nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_health_assessment_facility_year", "health_assessment", ["facility_id", "year", "recorded_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_health_assessment_facility_year", table_name="health_assessment")
    op.drop_table("health_assessment")
    op.drop_table("entry_health_check")
    with op.batch_alter_table("assessment") as batch:
        batch.drop_constraint("fk_assessment_framework_version", type_="foreignkey")
        batch.drop_column("dimension_grades")
        batch.drop_column("framework_version")
    op.drop_table("quality_framework")
