"""workforce's tables, in its own metadata."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, DateTime
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.events.tables import inbox_table, outbox_table


class WorkforceModel(SQLModel, registry=registry()):
    pass


metadata = WorkforceModel.metadata
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)


class FacilityProjection(WorkforceModel, table=True):
    """The workforce's own view of registry facilities, fed by registry events: hiring checks read
    this, never the registry's tables."""

    __tablename__ = "facility_projection"

    facility_id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    district_code: str = Field(max_length=6, index=True)
    town_code: str = Field(max_length=9)
    status: str = Field(max_length=16)
    owner_client_id: str | None = Field(default=None, max_length=64)
    source_event_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
