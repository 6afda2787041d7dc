"""持证上岗: the share of people working in certified roles who hold a certificate valid for the role,
on a given day — per district and citywide, for the plan's `certified_rate` indicator."""

from __future__ import annotations

from datetime import date

from sqlalchemy import and_, exists, false, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.models import Certificate, Employment, FacilityProjection
from services.workforce.schemas import CertificationCompliance, CertificationCounts
from services.workforce.service.common import Workforce, visible_facilities
from shared.identity import Identity


async def compliance(
    *, session: AsyncSession, workforce: Workforce, caller: Identity, on: date
) -> CertificationCompliance:
    """Employments in certified roles that were active on `on`, at facilities the caller may see,
    and how many of their holders had a valid certificate of an accepted type that day."""
    required = workforce.settings.role_certificates
    valid_for_role = or_(
        false(),
        *(
            and_(Employment.role == role, Certificate.type.in_(types))
            for role, types in required.items()
            if types
        ),
    )
    holds_valid = exists().where(
        Certificate.practitioner_id == Employment.practitioner_id,
        Certificate.issued_on <= on,
        Certificate.expires_on >= on,
        valid_for_role,
    )
    certified_roles = [role for role, types in required.items() if types]
    rows = await session.execute(
        select(
            FacilityProjection.district_code,
            func.count(),
            func.sum(func.cast(holds_valid, type_=func.count().type)),
        )
        .select_from(Employment)
        .join(FacilityProjection, FacilityProjection.facility_id == Employment.facility_id)
        .where(
            Employment.role.in_(certified_roles),
            Employment.start_date <= on,
            or_(Employment.end_date.is_(None), Employment.end_date >= on),
            visible_facilities(caller),
        )
        .group_by(FacilityProjection.district_code)
        .order_by(FacilityProjection.district_code)
    )
    districts = {
        code: CertificationCounts(employments=total, certified=int(certified or 0))
        for code, total, certified in rows.all()
    }
    employments = sum(c.employments for c in districts.values())
    certified = sum(c.certified for c in districts.values())
    return CertificationCompliance(
        on=on,
        employments=employments,
        certified=certified,
        rate=certified / employments if employments else None,
        districts=districts,
    )
