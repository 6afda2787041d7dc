"""Fee schedules (收费公示, T7): versioned, disclosed on the public pages, and held to the district's
inclusive (普惠) cap. A schedule above the cap for an inclusive facility — or any schedule while the
facility is flagged for one — waits for EDU as a change request; meanwhile the facility is flagged to
its district and coverage does not count it as inclusive. EDU approving a schedule within the cap
clears the flag; approving one above it takes the facility out of 普惠 (inclusive = false)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.registry.config import RegistrySettings
from services.registry.errors import StatusChangeNotAllowed
from services.registry.events import FacilityUpdated
from services.registry.models import ChangeRequest, Facility, FeeSchedule
from services.registry.schemas import FacilityStatus, ServiceMode
from services.registry.schemas.fees import (
    ChangeRequestKind,
    ChangeRequestStatus,
    FeeCapFlag,
    FeeLineRead,
    FeeScheduleCreate,
    FeeScheduleRead,
    FeeScheduleStatus,
    FeeStanding,
    OtherChargeRead,
    PublicFees,
)
from services.registry.service.facilities import facts
from services.registry.service.search import visible_to
from shared.contracts.registry import FeeFacts, FeesPublished
from shared.errors import NotFound
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import Identity
from shared.pagination import PageParams, cut_page, keyset

# In a session's `info` (app.py puts the settings' caps there), for callers that hold only a session.
FEE_CAPS = "cradle_registry_fee_caps"
FEE_DEPARTMENTS = ["EDU"]  # 普惠 pricing is the education bureau's
ANY_DISTRICT = "*"
FEN = Decimal("0.01")

Caps = Mapping[str, Mapping[int, Decimal]]


def to_fen(yuan: Decimal) -> int:
    return int((yuan / FEN).to_integral_value())


def to_yuan(fen: int) -> Decimal:
    return (Decimal(fen) * FEN).quantize(FEN)


def cap_fen(caps: Caps, district_code: str, year: int) -> int | None:
    """The district's cap for the year: its own, else every district's ("*"); a year without one
    takes the latest earlier year's. None when no cap was ever set."""
    for key in (district_code, ANY_DISTRICT):
        years = caps.get(key) or {}
        earlier = [y for y in years if int(y) <= year]
        if earlier:
            return to_fen(Decimal(years[max(earlier)]))
    return None


def caps_of(session: AsyncSession) -> Caps:
    """The deployment's caps (the app puts them in every session's info); the settings' defaults for
    a session made elsewhere."""
    caps = session.info.get(FEE_CAPS)
    return caps if caps is not None else RegistrySettings.model_fields["fee_caps"].default


def max_full_day_fen(fees: list[dict[str, object]]) -> int | None:
    amounts = [int(f["amount_fen"]) for f in fees if f["service_mode"] == ServiceMode.full_day]  # type: ignore[call-overload]
    return max(amounts) if amounts else None


def over_cap(max_fen: int | None, cap: int | None) -> bool:
    return max_fen is not None and cap is not None and max_fen > cap


def public_fees(schedule: FeeSchedule) -> PublicFees:
    return PublicFees(
        effective_from=schedule.effective_from,
        fees=[
            FeeLineRead(
                age_class=f["age_class"], service_mode=f["service_mode"], amount=to_yuan(f["amount_fen"])
            )
            for f in schedule.fees
        ],
        meals_per_month=None
        if schedule.meals_fen_per_month is None
        else to_yuan(schedule.meals_fen_per_month),
        other_charges=[
            OtherChargeRead(name=c["name"], amount=to_yuan(c["amount_fen"])) for c in schedule.other_charges
        ],
    )


def to_read(schedule: FeeSchedule, change_request_id: str | None = None) -> FeeScheduleRead:
    shown = public_fees(schedule)
    return FeeScheduleRead(
        id=schedule.id,
        facility_id=schedule.facility_id,
        version=schedule.version,
        effective_from=schedule.effective_from,
        fees=shown.fees,
        meals_per_month=shown.meals_per_month,
        other_charges=shown.other_charges,
        status=FeeScheduleStatus(schedule.status),
        max_full_day_monthly=None
        if schedule.max_full_day_fen is None
        else to_yuan(schedule.max_full_day_fen),
        cap=None if schedule.cap_fen is None else to_yuan(schedule.cap_fen),
        over_cap=over_cap(schedule.max_full_day_fen, schedule.cap_fen),
        change_request_id=change_request_id,
        recorded_at=schedule.recorded_at,
        published_at=schedule.published_at,
    )


async def record_schedule(
    *, session: AsyncSession, caller: Identity, facility: Facility, data: FeeScheduleCreate
) -> tuple[FeeSchedule, ChangeRequest | None]:
    """A new version of the facility's fees: published at once, or held for EDU (see the module)."""
    from services.registry.service import change_requests  # imports this module for EDU's decision

    if facility.status in (FacilityStatus.rejected, FacilityStatus.closed):
        raise StatusChangeNotAllowed(tr("A {status} facility records no fees.", status=facility.status))
    now = datetime.now(UTC)
    last = (
        await session.execute(
            select(func.max(FeeSchedule.version)).where(FeeSchedule.facility_id == facility.id)
        )
    ).scalar_one()
    lines = [
        {"age_class": f.age_class.value, "service_mode": f.service_mode.value, "amount_fen": to_fen(f.amount)}
        for f in data.fees
    ]
    highest = max_full_day_fen(lines)
    cap = cap_fen(caps_of(session), facility.district_code, data.effective_from.year)
    needs_review = facility.inclusive and (over_cap(highest, cap) or facility.fee_cap_flagged)
    schedule = FeeSchedule(
        id=str(uuid.uuid4()),
        facility_id=facility.id,
        version=(last or 0) + 1,
        effective_from=data.effective_from,
        fees=lines,
        meals_fen_per_month=None if data.meals_per_month is None else to_fen(data.meals_per_month),
        other_charges=[{"name": c.name, "amount_fen": to_fen(c.amount)} for c in data.other_charges],
        status=(FeeScheduleStatus.pending if needs_review else FeeScheduleStatus.published).value,
        max_full_day_fen=highest,
        cap_fen=cap,
        recorded_by=caller.client_id,
        recorded_at=now,
    )
    session.add(schedule)
    await session.flush()
    # A schedule still awaiting EDU is replaced by this one: one fee question open at a time.
    await change_requests.supersede_pending(session, facility, ChangeRequestKind.fees, now)
    if not needs_review:
        await publish(session, facility, schedule, now)
        return schedule, None
    facility.fee_cap_flagged = True
    request = await change_requests.open_request(
        session,
        caller=caller,
        facility=facility,
        kind=ChangeRequestKind.fees,
        changes={"fee_schedule_version": schedule.version, "effective_from": data.effective_from.isoformat()},
        departments=FEE_DEPARTMENTS,
        reason=tr("Monthly full-day fee above the district's inclusive cap.")
        if over_cap(highest, cap)
        else tr("Fees of a facility flagged for fees above the inclusive cap."),
        fee_schedule_id=schedule.id,
        now=now,
    )
    return schedule, request


async def publish(session: AsyncSession, facility: Facility, schedule: FeeSchedule, now: datetime) -> None:
    schedule.status = FeeScheduleStatus.published.value
    schedule.published_at = now
    shown = facility.fees or {}
    # The public pages show the latest schedule by the date it takes effect (announced ahead of it).
    if str(shown.get("effective_from", "")) <= schedule.effective_from.isoformat():
        facility.fees = public_fees(schedule).model_dump(mode="json")
    facility.version += 1
    facility.updated_at = now
    await session.flush()
    await emit(
        session,
        FeesPublished(
            **facts(facility),
            fees=FeeFacts(
                schedule_id=schedule.id,
                version=schedule.version,
                effective_from=schedule.effective_from,
                max_full_day_fen=schedule.max_full_day_fen,
                cap_fen=schedule.cap_fen,
                within_cap=not over_cap(schedule.max_full_day_fen, schedule.cap_fen),
            ),
        ),
    )


async def settle(
    session: AsyncSession, facility: Facility, request: ChangeRequest, approved: bool, now: datetime
) -> None:
    """EDU's decision on a fee request. Approval publishes the schedule and clears the flag (taking
    the facility out of 普惠 when the schedule is above the cap); a rejection leaves the flag until
    EDU approves a schedule within the cap or the facility stops being inclusive."""
    schedule = await session.get(FeeSchedule, request.fee_schedule_id)
    assert schedule is not None, "a fee request names its schedule"
    if not approved:
        schedule.status = FeeScheduleStatus.rejected.value
        await session.flush()
        return
    facility.fee_cap_flagged = False
    leaves_inclusive = facility.inclusive and over_cap(schedule.max_full_day_fen, schedule.cap_fen)
    if leaves_inclusive:
        facility.inclusive = False
    await publish(session, facility, schedule, now)
    if leaves_inclusive:
        await emit(session, FacilityUpdated(**facts(facility)))


async def inclusive_changed(session: AsyncSession, facility: Facility) -> None:
    """After an approved change of the inclusive flag: a facility no longer inclusive has no cap to
    keep; one becoming inclusive is flagged when its disclosed monthly full-day fee is above the cap."""
    if not facility.inclusive:
        facility.fee_cap_flagged = False
        return
    latest = await latest_published(session, facility.id)
    if latest is not None:
        cap = cap_fen(caps_of(session), facility.district_code, latest.effective_from.year)
        facility.fee_cap_flagged = facility.fee_cap_flagged or over_cap(latest.max_full_day_fen, cap)


async def latest_published(session: AsyncSession, facility_id: str) -> FeeSchedule | None:
    query = (
        select(FeeSchedule)
        .where(
            FeeSchedule.facility_id == facility_id, FeeSchedule.status == FeeScheduleStatus.published.value
        )
        .order_by(FeeSchedule.effective_from.desc(), FeeSchedule.version.desc())
        .limit(1)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def schedule_in_force(
    session: AsyncSession, facility_id: str, on: date, *, published_by: datetime | None = None
) -> FeeSchedule | None:
    """The published schedule with the latest effective date on or before `on` (the later version
    when two take effect the same day); with `published_by`, among those published by that instant
    only (a schedule disclosed later, even one dated back into force, is not on the record then)."""
    query = select(FeeSchedule).where(
        FeeSchedule.facility_id == facility_id,
        FeeSchedule.status == FeeScheduleStatus.published.value,
        FeeSchedule.effective_from <= on,
    )
    if published_by is not None:
        query = query.where(FeeSchedule.published_at <= published_by)
    query = query.order_by(FeeSchedule.effective_from.desc(), FeeSchedule.version.desc()).limit(1)
    return (await session.execute(query)).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class CapStanding:
    """How a facility's fees stood against its district's cap on a day: the schedule in force (its
    highest monthly full-day fee) and the cap, in fen; `within` only when both exist and it keeps."""

    schedule_version: int | None
    max_full_day_fen: int | None
    cap_fen: int | None

    @property
    def within(self) -> bool:
        return (
            self.schedule_version is not None
            and self.cap_fen is not None
            and not over_cap(self.max_full_day_fen, self.cap_fen)
        )


async def cap_standing(
    session: AsyncSession,
    facility_id: str,
    on: date,
    *,
    published_by: datetime | None = None,
    caps: Caps | None = None,
) -> CapStanding:
    """The facility's fees against its district's cap for `on`'s year, by the schedule in force on
    `on` (published by `published_by`, when given)."""
    facility = await session.get(Facility, facility_id)
    if facility is None:
        return CapStanding(None, None, None)
    schedule = await schedule_in_force(session, facility_id, on, published_by=published_by)
    cap = cap_fen(caps if caps is not None else caps_of(session), facility.district_code, on.year)
    if schedule is None:
        return CapStanding(None, None, cap)
    return CapStanding(schedule.version, schedule.max_full_day_fen, cap)


async def fees_within_cap(
    session: AsyncSession,
    facility_id: str,
    on: date,
    *,
    published_by: datetime | None = None,
    caps: Caps | None = None,
) -> bool:
    """True when the schedule in force on `on` keeps its monthly full-day fees within the facility's
    district's cap for that year. False without a schedule, or without a cap to hold it to."""
    standing = await cap_standing(session, facility_id, on, published_by=published_by, caps=caps)
    return standing.within


async def standing(session: AsyncSession, facility: Facility, today: date) -> FeeStanding:
    """The facility's fees as they stand today (see FeeStanding)."""
    in_force = await schedule_in_force(session, facility.id, today)
    later = (
        await session.execute(
            select(FeeSchedule)
            .where(
                FeeSchedule.facility_id == facility.id,
                FeeSchedule.status == FeeScheduleStatus.published.value,
                FeeSchedule.effective_from > today,
            )
            .order_by(FeeSchedule.effective_from.desc(), FeeSchedule.version.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    pending = (
        await session.execute(
            select(FeeSchedule)
            .where(
                FeeSchedule.facility_id == facility.id,
                FeeSchedule.status == FeeScheduleStatus.pending.value,
            )
            .order_by(FeeSchedule.version.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    requests = await _requests_of(session, [pending.id] if pending else [])
    cap = cap_fen(caps_of(session), facility.district_code, today.year)
    return FeeStanding(
        facility_id=facility.id,
        in_force=to_read(in_force) if in_force else None,
        announced=to_read(later) if later else None,
        pending=to_read(pending, requests.get(pending.id)) if pending else None,
        flagged_over_cap=facility.fee_cap_flagged,
        cap=None if cap is None else to_yuan(cap),
    )


async def by_version(session: AsyncSession, facility: Facility, version: int) -> FeeScheduleRead:
    schedule = (
        await session.execute(
            select(FeeSchedule).where(FeeSchedule.facility_id == facility.id, FeeSchedule.version == version)
        )
    ).scalar_one_or_none()
    if schedule is None:
        raise NotFound(
            tr(
                "No fee schedule version {version} for facility {facility_id}.",
                version=version,
                facility_id=facility.id,
            )
        )
    requests = await _requests_of(session, [schedule.id])
    return to_read(schedule, requests.get(schedule.id))


async def history(
    *, session: AsyncSession, facility: Facility, page: PageParams
) -> tuple[list[tuple[FeeSchedule, str | None]], str | None]:
    """Every schedule recorded, newest version first, with the change request of those held for EDU."""
    query = keyset(
        select(FeeSchedule).where(FeeSchedule.facility_id == facility.id),
        [FeeSchedule.version],
        page,
        descending=True,
    )
    rows, cursor = cut_page(
        (await session.execute(query)).scalars().all(), limit=page.limit, position_of=lambda r: [r.version]
    )
    requests = await _requests_of(session, [r.id for r in rows])
    return [(r, requests.get(r.id)) for r in rows], cursor


async def _requests_of(session: AsyncSession, schedule_ids: list[str]) -> dict[str, str]:
    if not schedule_ids:
        return {}
    rows = await session.execute(
        select(ChangeRequest.fee_schedule_id, ChangeRequest.id).where(
            ChangeRequest.fee_schedule_id.in_(schedule_ids)
        )
    )
    return {schedule_id: request_id for schedule_id, request_id in rows.all()}


async def flagged(
    *, session: AsyncSession, caller: Identity, district_code: str | None, page: PageParams
) -> tuple[list[FeeCapFlag], str | None]:
    """Inclusive facilities flagged for fees above the cap that the caller may see, by id."""
    query = visible_to(select(Facility).where(Facility.fee_cap_flagged.is_(True)), caller)
    if district_code:
        query = query.where(Facility.district_code == district_code)
    query = keyset(query, [Facility.id], page)
    found, cursor = cut_page(
        (await session.execute(query)).scalars().all(), limit=page.limit, position_of=lambda f: [f.id]
    )
    pending = {}
    if found:
        rows = await session.execute(
            select(ChangeRequest.facility_id, ChangeRequest.id, FeeSchedule)
            .join(FeeSchedule, FeeSchedule.id == ChangeRequest.fee_schedule_id)
            .where(
                ChangeRequest.facility_id.in_([f.id for f in found]),
                ChangeRequest.status == ChangeRequestStatus.pending.value,
            )
        )
        pending = {
            facility_id: to_read(schedule, request_id) for facility_id, request_id, schedule in rows.all()
        }
    items = [
        FeeCapFlag(
            facility_id=f.id,
            name=f.name,
            district_code=f.district_code,
            town_code=f.town_code,
            current_fees=PublicFees.model_validate(f.fees) if f.fees else None,
            pending_schedule=pending.get(f.id),
        )
        for f in found
    ]
    return items, cursor
