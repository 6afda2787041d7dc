"""Demo fee schedules (收费公示) for `cradle seed-demo`: every approved facility discloses one, in force
from the last 1 September on or before the latest month a subsidy list can be computed for (so that
month's list finds it), disclosed two weeks before it takes effect or on the facility's approval if
later: the subsidies read a month's fees as published by its close. Inclusive facilities charge
below their district's cap (the settings' `REGISTRY_FEE_CAPS` defaults), except about one in
twenty-five, whose schedule goes above it and waits for EDU — so the district's list of facilities
flagged for fees over the cap has a few. Recorded through the registry's own function, so versions,
flags, change requests and events are the real ones. Facilities that already have a schedule are
left as they are; deterministic for a seed."""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncEngine

from cradle.seed.approved import approved_without, in_batches, registry_sessions
from cradle.seed.subsidies import close_settings, latest_closed_month
from services.registry.models import Facility, FeeSchedule
from services.registry.schemas.fees import FeeLine, FeeScheduleCreate, OtherCharge
from services.registry.service import fees
from services.registry.service.subsidies import month_start
from shared.clock import SHANGHAI, as_utc, utcnow
from shared.identity import ClientKind, Identity

ABOVE_CAP_ONE_IN = 25
SEEDER = Identity(client_id="seed-demo", kind=ClientKind.bureau, bureau="EDU", scopes=["registry:write"])
# Monthly full-day fees of facilities outside 普惠, in yuan (low, high), by kind.
MARKET_FEES = {
    "private": (4500, 9800),
    "kindergarten": (3800, 7500),
    "workplace": (2500, 5200),
    "community_point": (3000, 5500),
}


def _yuan(amount: float) -> Decimal:
    return Decimal(round(amount / 10) * 10).quantize(Decimal("0.01"))  # to the 10 yuan, as posted


def _schedule(
    rng: random.Random, facility: Facility, cap_fen: int | None, effective: date
) -> FeeScheduleCreate:
    cap = (cap_fen or 300_000) / 100
    if facility.inclusive:
        full_day = cap * (
            rng.uniform(1.05, 1.25) if rng.randrange(ABOVE_CAP_ONE_IN) == 0 else rng.uniform(0.6, 0.97)
        )
    else:
        full_day = rng.uniform(*MARKET_FEES.get(facility.kind, (3500, 8000)))
    lines = []
    for age_class, factor in (("infant", 1.12), ("toddler", 1.0), ("preschool", 0.94)):
        if getattr(facility, f"capacity_{age_class}") == 0:
            continue
        monthly = min(full_day * factor, full_day) if facility.inclusive else full_day * factor
        lines.append(FeeLine(age_class=age_class, service_mode="full_day", amount=_yuan(monthly)))
        if "half_day" in facility.service_modes:
            lines.append(FeeLine(age_class=age_class, service_mode="half_day", amount=_yuan(monthly * 0.6)))
        if "hourly" in facility.service_modes:
            hourly = Decimal(rng.choice((40, 50, 60, 70, 80))).quantize(Decimal("0.01"))
            lines.append(FeeLine(age_class=age_class, service_mode="hourly", amount=hourly))
    charges = (
        [OtherCharge(name="被褥费（一次性）", amount=Decimal(rng.choice((150, 200, 300))))]
        if rng.random() < 0.4
        else []
    )
    return FeeScheduleCreate(
        effective_from=effective,
        fees=lines or [FeeLine(age_class="toddler", service_mode="full_day", amount=_yuan(full_day))],
        meals_per_month=_yuan(rng.uniform(300, 650)),
        other_charges=charges,
    )


def fees_in_force_from(now: datetime) -> date:
    """The last 1 September on or before the first day of the latest closed subsidy month."""
    first = month_start(latest_closed_month(close_settings(), now)).astimezone(SHANGHAI).date()
    return date(first.year if first.month >= 9 else first.year - 1, 9, 1)


async def seed_fees(engine: AsyncEngine, *, namespace: str, seed: int = 2026) -> tuple[int, int]:
    """Returns (schedules recorded, schedules held for EDU above the cap)."""
    rng = random.Random(f"fees:{seed}")
    maker = registry_sessions(engine, namespace)
    effective = fees_in_force_from(utcnow())
    announced = datetime.combine(effective - timedelta(days=14), time(10), tzinfo=SHANGHAI)
    async with maker() as session:
        ids = await approved_without(session, FeeSchedule.facility_id)
        caps = fees.caps_of(session)  # the settings' defaults: the seeder runs outside the service
    recorded = held = 0
    async for session, batch in in_batches(maker, ids):
        for facility in batch:
            cap = fees.cap_fen(caps, facility.district_code, effective.year)
            data = _schedule(rng, facility, cap, effective)
            schedule, request = await fees.record_schedule(
                session=session, caller=SEEDER, facility=facility, data=data
            )
            # Recorded as the facility would have disclosed it, not at the seeding's instant.
            approved_at = as_utc(facility.approved_at) if facility.approved_at else announced
            schedule.recorded_at = max(announced, approved_at)
            if schedule.published_at is not None:
                schedule.published_at = schedule.recorded_at
            recorded += 1
            held += request is not None
    return recorded, held
