"""Demo subsidies (综合奖补) for `cradle seed-demo`: FINANCE's rate for each of the 16 districts for the
year, set on 1 January; each approved facility's enrolment report for the latest closed month, filed
in its last week (about one in twenty files none); and that month's list for every district computed,
approved by EDU, published by FINANCE and paid, through the registry's own functions — so the
conditions, reasons, totals and events are the real ones. The seeded facilities' first version
(which the bulk writer leaves out) is recorded as of their approval, since a list reads a facility's
inclusive flag and capacity from its versions. A second run changes nothing; deterministic for a seed."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.registry.config import RegistrySettings
from services.registry.models import (
    District,
    EnrolmentFiling,
    Facility,
    FacilityVersion,
    SubsidyLine,
    SubsidyList,
    SubsidyRate,
    outbox,
)
from services.registry.schemas.subsidies import PaymentCreate, SubsidyListReview, SubsidyReviewDecision
from services.registry.service import subsidies
from services.registry.service.facilities import to_read
from shared.clock import SHANGHAI, as_utc, new_id, utcnow
from shared.events.outbox import OutboxWriter, outbox_session_info
from shared.events.streams import Namespace
from shared.identity import ClientKind, Identity

FINANCE = Identity(
    client_id="seed-demo", kind=ClientKind.bureau, bureau="FINANCE", scopes=["registry:review"]
)
EDU = Identity(client_id="seed-demo", kind=ClientKind.bureau, bureau="EDU", scopes=["registry:review"])
UNREPORTED_ONE_IN = 20
# Per inclusive place per month, in fen: the central districts a little higher.
RATES_FEN = (40_000, 45_000, 50_000, 55_000, 60_000)


def close_settings() -> RegistrySettings:
    """The registry's default close (the seeders run outside the service, without its settings)."""
    return RegistrySettings.model_construct(
        subsidy_close_days=RegistrySettings.model_fields["subsidy_close_days"].default
    )


def latest_closed_month(settings: RegistrySettings, now: datetime) -> str:
    today = now.astimezone(SHANGHAI)
    month = f"{today.year}-{today.month:02d}"
    while subsidies.closes_at(month, settings) > now:
        index = int(month[:4]) * 12 + int(month[5:7]) - 2
        month = f"{index // 12}-{index % 12 + 1:02d}"
    return month


async def _rates(session: AsyncSession, rng: random.Random, year: int) -> None:
    have = set(
        (await session.execute(select(SubsidyRate.district_code).where(SubsidyRate.year == year))).scalars()
    )
    for district in (await session.execute(select(District).order_by(District.code))).scalars():
        if district.code in have:
            continue
        amount = rng.choice(RATES_FEN[2:] if district.is_central_city else RATES_FEN[:4])
        session.add(
            SubsidyRate(
                id=new_id(),
                district_code=district.code,
                year=year,
                amount_fen=amount,
                note="示例：年度普惠托位运营补贴标准",
                set_by=FINANCE.client_id,
                set_at=datetime(year, 1, 1, 9, tzinfo=SHANGHAI),
            )
        )


async def _records(session: AsyncSession, rng: random.Random, month: str) -> int:
    """First versions of facilities without one, and the month's enrolment reports. Returns how many
    reports were filed."""
    versioned = select(FacilityVersion.facility_id).distinct()
    for facility in (await session.execute(select(Facility).where(Facility.id.not_in(versioned)))).scalars():
        session.add(
            FacilityVersion(
                facility_id=facility.id,
                version=1,
                snapshot=to_read(facility).model_dump(mode="json"),
                changed_by="seed-demo",
                changed_at=facility.approved_at or facility.submitted_at,
            )
        )
    filed = select(EnrolmentFiling.facility_id).where(EnrolmentFiling.month == month)
    approved = (
        await session.execute(
            select(Facility)
            .where(Facility.status == "approved", Facility.id.not_in(filed))
            .order_by(Facility.id)
        )
    ).scalars()
    end = subsidies.month_end(month)
    count = 0
    for facility in approved:
        if facility.approved_at is None or as_utc(facility.approved_at) >= end:
            continue
        if rng.randrange(UNREPORTED_ONE_IN) == 0:
            continue
        children = {
            a: max(
                0,
                min(
                    getattr(facility, f"capacity_{a}"),
                    getattr(facility, f"enrolled_{a}") + rng.randint(-2, 1),
                ),
            )
            for a in ("infant", "toddler", "preschool")
        }
        session.add(
            EnrolmentFiling(
                id=new_id(),
                facility_id=facility.id,
                month=month,
                **children,
                reported_by="seed-demo",
                reported_at=end - timedelta(days=rng.randint(1, 7), hours=rng.randint(0, 10)),
            )
        )
        count += 1
    return count


async def seed_subsidies(engine: AsyncEngine, *, namespace: str, seed: int = 2026) -> tuple[str, int, int]:
    """Returns (the month, lists published by this run, fen paid by this run)."""
    rng = random.Random(f"subsidies:{seed}")
    settings = close_settings()
    now = utcnow()
    month = latest_closed_month(settings, now)
    info = outbox_session_info(OutboxWriter(outbox, Namespace(namespace), "/cradle/registry"))
    maker = async_sessionmaker(engine, expire_on_commit=False, info=info)
    async with maker() as session, session.begin():
        await _rates(session, rng, int(month[:4]))
        await _records(session, rng, month)
    async with maker() as session:
        districts = list((await session.execute(select(District.code).order_by(District.code))).scalars())
        done = set(
            (
                await session.execute(select(SubsidyList.district_code).where(SubsidyList.month >= month))
            ).scalars()
        )
    published = paid = 0
    for district_code in districts:
        if district_code in done:
            continue
        async with maker() as session, session.begin():
            computed = await subsidies.compute_list(
                session=session, caller=FINANCE, month=month, district_code=district_code, settings=settings
            )
            approve = SubsidyListReview(decision=SubsidyReviewDecision.approve, note="已核对（示例）")
            await subsidies.review_list(
                session=session, caller=EDU, subsidy_list=computed, data=approve, if_match=None
            )
            await subsidies.publish_list(
                session=session, caller=FINANCE, subsidy_list=computed, if_match=None
            )
            lines = (
                await session.execute(
                    select(SubsidyLine)
                    .where(SubsidyLine.list_id == computed.id, SubsidyLine.amount_fen > 0)
                    .order_by(SubsidyLine.facility_id)
                )
            ).scalars()
            paid_on = (subsidies.closes_at(month, settings) + timedelta(days=10)).astimezone(SHANGHAI).date()
            for number, line in enumerate(lines, start=1):
                if paid_on > now.astimezone(SHANGHAI).date():
                    break
                payment = PaymentCreate(
                    paid_fen=line.amount_fen,
                    paid_on=paid_on,
                    reference=f"SHCZ-{month}-{district_code}-{number:05d}",
                )
                await subsidies.record_payment(
                    session=session, caller=FINANCE, subsidy_list=computed, line_id=line.id, data=payment
                )
                paid += line.amount_fen
            published += 1
    return month, published, paid
