"""`employment.contract_type` holds every value the API accepts (`service_agreement` is 17
characters; PostgreSQL refused it in a 16-character column).

Revision ID: workforce_0004
Revises: workforce_0003
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "workforce_0004"
down_revision: str | None = "workforce_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("employment") as batch:
        batch.alter_column(
            "contract_type", type_=sa.String(32), existing_type=sa.String(16), existing_nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("employment") as batch:
        batch.alter_column(
            "contract_type", type_=sa.String(16), existing_type=sa.String(32), existing_nullable=False
        )
