"""A facility's carers against its children, by age class."""

from __future__ import annotations

from pydantic import BaseModel, Field

from services.workforce.schemas.common import AgeClass


class AgeClassStaffing(BaseModel):
    age_class: AgeClass
    children: int
    carers: int
    ratio: str = Field(description="carers:children, e.g. 1:3")
    carers_required: int
    met: bool


class StaffingRead(BaseModel):
    facility_id: str
    name: str
    district_code: str
    classes: list[AgeClassStaffing]
    unassigned_carers: int = Field(description="carers in caring roles with no age class recorded")
    met: bool
