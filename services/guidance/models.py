"""guidance's tables, in its own metadata."""

from __future__ import annotations

from sqlalchemy.orm import registry
from sqlmodel import SQLModel

from shared.events.tables import inbox_table, outbox_table


class GuidanceModel(SQLModel, registry=registry()):
    pass


metadata = GuidanceModel.metadata
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)
