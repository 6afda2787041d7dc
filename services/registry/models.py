"""registry's tables, in its own metadata."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Column, DateTime, Index
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from shared.events.tables import inbox_table, outbox_table


class RegistryModel(SQLModel, registry=registry()):
    pass


metadata = RegistryModel.metadata
outbox = outbox_table(metadata)
inbox = inbox_table(metadata)


class District(RegistryModel, table=True):
    code: str = Field(primary_key=True, max_length=6)
    name: str = Field(max_length=32)
    pinyin: str = Field(max_length=64)
    is_central_city: bool
    population_2020: int | None = None
    population_2020_age0: int | None = None
    population_2020_age1_4: int | None = None


class Town(RegistryModel, table=True):
    """A 街镇 (street / town / township) or an `other` unit such as a development zone."""

    code: str = Field(primary_key=True, max_length=9)
    district_code: str = Field(foreign_key="district.code", index=True, max_length=6)
    name: str = Field(max_length=64)
    town_type: str = Field(max_length=16)  # street | town | township | other
    code_source: str = Field(max_length=16)
    mca2025_code: str | None = Field(default=None, max_length=9)
    name_variant: str | None = Field(default=None, max_length=64)


class Facility(RegistryModel, table=True):
    __table_args__ = (Index("ix_facility_district_status", "district_code", "status"),)

    id: str = Field(primary_key=True, max_length=36)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=32)
    inclusive: bool
    has_nursery_class: bool
    town_code: str = Field(foreign_key="town.code", index=True, max_length=9)
    district_code: str = Field(foreign_key="district.code", max_length=6)
    address: str = Field(max_length=300)
    lat: float
    lon: float
    operator_name: str = Field(max_length=200)
    service_modes: list[str] = Field(sa_column=Column(JSON, nullable=False))
    capacity_infant: int
    capacity_toddler: int
    capacity_preschool: int
    status: str = Field(max_length=16, index=True)
    license_no: str | None = Field(default=None, max_length=32, unique=True)
    owner_client_id: str | None = Field(default=None, max_length=64, index=True)
    version: int = 1
    submitted_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
    updated_at: datetime = Field(sa_column=Column(DateTime(timezone=True), nullable=False))
