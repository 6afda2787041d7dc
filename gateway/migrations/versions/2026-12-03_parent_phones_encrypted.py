"""Parents' phone numbers encrypted (AES-256-GCM, `phone_encrypted` under `phone_key_id`) and found by
keyed hash (`phone_hash`, HMAC-SHA256); the clear `phone` column is dropped.

Existing accounts are converted here, with the keys the gateway will run with, read from the
environment (GATEWAY_PII_KEYS, GATEWAY_PII_ACTIVE_KEY_ID, GATEWAY_PII_HMAC_KEY; `cradle migrate` and
`cradle up` set them from the data directory's key file). A table with accounts and no keys in the
environment is refused, before anything changes: migrating without them would either lose every
parent's login or leave numbers in clear. An empty table needs no keys. The downgrade decrypts the
same way.

Revision ID: gateway_parent_phones
Revises: gateway_0003
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from pydantic import ValidationError
from pydantic_settings import SettingsConfigDict

from shared.pii import Encrypted
from shared.settings import PersonalDataKeys

revision: str = "gateway_parent_phones"
down_revision: str | None = "gateway_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PHONE = "parent.phone"  # the cipher's context, as gateway/parents.py seals and opens it


class _GatewayKeys(PersonalDataKeys):
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")


def _keys(rows: int) -> _GatewayKeys:
    try:
        return _GatewayKeys()  # type: ignore[call-arg]  # from the environment
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise RuntimeError(
            f"parent_account holds {rows} account(s) whose phone numbers this migration must encrypt: "
            "set GATEWAY_PII_KEYS, GATEWAY_PII_ACTIVE_KEY_ID and GATEWAY_PII_HMAC_KEY to the keys the "
            f"gateway runs with, then migrate again ({problems})"
        ) from None


def _count(bind: sa.Connection) -> int:
    return int(bind.execute(sa.text("SELECT count(*) FROM parent_account")).scalar_one())


def upgrade() -> None:
    bind = op.get_bind()
    rows = _count(bind)
    keys = _keys(rows) if rows else None  # refused before any change
    with op.batch_alter_table("parent_account") as batch:
        batch.add_column(sa.Column("phone_hash", sa.String(64)))
        batch.add_column(sa.Column("phone_key_id", sa.String(32)))
        batch.add_column(sa.Column("phone_encrypted", sa.String(200)))
    if keys is not None:
        cipher, lookup = keys.cipher(), keys.hasher()
        accounts = bind.execute(sa.text("SELECT parent_id, phone FROM parent_account")).all()
        for parent_id, phone in accounts:
            sealed = cipher.encrypt(phone, context=PHONE)
            bind.execute(
                sa.text(
                    "UPDATE parent_account SET phone_hash = :hash, phone_key_id = :kid, "
                    "phone_encrypted = :sealed WHERE parent_id = :id"
                ),
                {
                    "hash": lookup.digest(phone),
                    "kid": sealed.key_id,
                    "sealed": sealed.ciphertext,
                    "id": parent_id,
                },
            )
    with op.batch_alter_table("parent_account") as batch:
        batch.alter_column("phone_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("phone_key_id", existing_type=sa.String(32), nullable=False)
        batch.alter_column("phone_encrypted", existing_type=sa.String(200), nullable=False)
        batch.create_unique_constraint("uq_parent_account_phone_hash", ["phone_hash"])
        batch.drop_column("phone")


def downgrade() -> None:
    bind = op.get_bind()
    rows = _count(bind)
    keys = _keys(rows) if rows else None
    with op.batch_alter_table("parent_account") as batch:
        batch.add_column(sa.Column("phone", sa.String(11)))
    if keys is not None:
        cipher = keys.cipher()
        accounts = bind.execute(
            sa.text("SELECT parent_id, phone_key_id, phone_encrypted FROM parent_account")
        ).all()
        for parent_id, key_id, sealed in accounts:
            phone = cipher.decrypt(Encrypted(key_id, sealed), context=PHONE)
            bind.execute(
                sa.text("UPDATE parent_account SET phone = :phone WHERE parent_id = :id"),
                {"phone": phone, "id": parent_id},
            )
    with op.batch_alter_table("parent_account") as batch:
        batch.alter_column("phone", existing_type=sa.String(11), nullable=False)
        batch.create_unique_constraint("parent_account_phone_key", ["phone"])
        batch.drop_constraint("uq_parent_account_phone_hash", type_="unique")
        batch.drop_column("phone_encrypted")
        batch.drop_column("phone_key_id")
        batch.drop_column("phone_hash")
