"""Demo data: a plausible city of facilities spread over the 216 街镇, written the fast way
(SQLAlchemy Core, one transaction per batch) with the same outbox events the API would write, so
the other services' projections fill too."""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from cradle.seed import SeedRun
from cradle.seed.change_requests import seed_change_requests
from cradle.seed.fees import seed_fees
from cradle.seed.health import seed_health
from cradle.seed.subsidies import seed_subsidies
from services.registry.models import District, Facility, FacilityStatusChange, LicenseSequence, Town, outbox
from shared.db import refresh_planner_statistics
from shared.events.envelope import CloudEvent
from shared.events.streams import Namespace

# Approximate centre and radius (km) of each district's built-up area, for plausible coordinates.
DISTRICT_AREAS: dict[str, tuple[float, float, float]] = {
    "310101": (31.2317, 121.4846, 2.5),
    "310104": (31.1885, 121.4365, 4.5),
    "310105": (31.2204, 121.4040, 4.0),
    "310106": (31.2495, 121.4480, 4.0),
    "310107": (31.2496, 121.3970, 4.5),
    "310109": (31.2646, 121.5050, 3.0),
    "310110": (31.2595, 121.5260, 4.5),
    "310112": (31.1127, 121.3816, 11.0),
    "310113": (31.4045, 121.4893, 10.0),
    "310114": (31.3747, 121.2654, 11.0),
    "310115": (31.1500, 121.7000, 20.0),
    "310116": (30.8000, 121.2500, 11.0),
    "310117": (31.0322, 121.2277, 12.0),
    "310118": (31.1510, 121.1240, 13.0),
    "310120": (30.9180, 121.5000, 13.0),
    "310151": (31.6300, 121.5200, 18.0),
}
KINDS = (("private", 0.42), ("kindergarten", 0.28), ("community_point", 0.2), ("workplace", 0.1))
INCLUSIVE_SHARE = {"community_point": 1.0, "kindergarten": 0.7, "workplace": 0.45, "private": 0.2}
NAMES = {
    "private": "{town}{word}托育园",
    "kindergarten": "{town}{word}幼儿园",
    "community_point": "{town}社区托育点",
    "workplace": "{town}{word}单位托育点",
}
WORDS = (
    "小星星",
    "阳光",
    "彩虹",
    "启明",
    "育苗",
    "童心",
    "七彩",
    "宝贝",
    "晨曦",
    "金苹果",
    "向日葵",
    "小海豚",
)
BATCH = 500


def _point(rng: random.Random, lat: float, lon: float, radius_km: float) -> tuple[float, float]:
    distance = radius_km * math.sqrt(rng.random())
    angle = rng.random() * 2 * math.pi
    dlat = distance * math.cos(angle) / 111.0
    dlon = distance * math.sin(angle) / (111.0 * math.cos(math.radians(lat)))
    return round(min(max(lat + dlat, 30.70), 31.85), 6), round(min(max(lon + dlon, 120.90), 122.10), 6)


def _capacity(rng: random.Random, kind: str) -> dict[str, int]:
    if kind == "kindergarten":
        return {"infant": 0, "toddler": rng.choice((0, 15)), "preschool": rng.choice((20, 20, 40))}
    if kind == "community_point":
        return {
            "infant": rng.choice((0, 5, 10)),
            "toddler": rng.choice((10, 15)),
            "preschool": rng.choice((10, 20)),
        }
    return {
        "infant": rng.choice((0, 10, 10)),
        "toddler": rng.choice((15, 15, 30)),
        "preschool": rng.choice((20, 40)),
    }


async def seed_facilities(
    engine: AsyncEngine,
    *,
    count: int,
    seed: int = 2026,
    namespace: str = "cradle",
    progress: Callable[[int], None] | None = None,
    events_out: list[CloudEvent] | None = None,
) -> int:
    """Write `count` facilities (about 90 % approved with licences) and their events. Returns how
    many were written. Deterministic for a given seed. When `events_out` is given, each facility's
    event (the facts the other services' projections are built from) is appended to it."""
    rng = random.Random(seed)
    ns = Namespace(namespace)
    async with engine.connect() as connection:
        districts = (await connection.execute(select(District))).all()
        towns = (await connection.execute(select(Town))).all()
        # Continue each district's licence numbering where it stands.
        sequences = {
            (row.district_code, row.year): row.last_number
            for row in (await connection.execute(select(LicenseSequence))).all()
        }
    weight = {d.code: (d.population_2020_age0 or 1) for d in districts}
    towns_by_district: dict[str, list] = {}
    for town in towns:
        towns_by_district.setdefault(town.district_code, []).append(town)
    legal = [t for t in towns if t.town_type != "other"]
    town_weights = [weight[t.district_code] / len(towns_by_district[t.district_code]) for t in legal]
    kinds, kind_weights = zip(*KINDS, strict=True)
    # Every 街镇 gets one facility first, so coverage has a realistic shape; the rest by population.
    chosen = legal[:count] + rng.choices(legal, weights=town_weights, k=max(0, count - len(legal)))
    now = datetime.now(UTC)
    written = 0
    for start in range(0, len(chosen), BATCH):
        drawn: list[tuple[dict[str, object], dict[str, int], dict[str, int]]] = []
        for town in chosen[start : start + BATCH]:
            kind = rng.choices(kinds, weights=kind_weights)[0]
            lat, lon, radius = DISTRICT_AREAS[town.district_code]
            anchor = random.Random(f"{seed}:{town.code}")
            town_lat, town_lon = _point(anchor, lat, lon, radius * 0.85)
            f_lat, f_lon = _point(rng, town_lat, town_lon, min(1.5, radius / 3))
            capacity = _capacity(rng, kind)
            approved = rng.random() < 0.9
            submitted_at = now - timedelta(days=rng.randint(30, 6 * 365))
            approved_at = submitted_at + timedelta(days=rng.randint(10, 60)) if approved else None
            if approved_at and approved_at > now:
                approved_at = now
            enrolled = {a: int(capacity[a] * rng.uniform(0.5, 1.0)) if approved else 0 for a in capacity}
            row = {
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "name": NAMES[kind].format(
                    town=town.name.removesuffix("街道").removesuffix("镇"), word=rng.choice(WORDS)
                ),
                "kind": kind,
                "inclusive": rng.random() < INCLUSIVE_SHARE[kind],
                "has_nursery_class": kind == "kindergarten" and capacity["toddler"] > 0,
                "town_code": town.code,
                "district_code": town.district_code,
                "address": f"{town.name}示范路 {rng.randint(1, 999)} 号",
                "lat": f_lat,
                "lon": f_lon,
                "operator_name": f"{town.name}{rng.choice(WORDS)}教育服务有限公司",
                "service_modes": rng.choice(
                    (["full_day"], ["full_day", "hourly"], ["half_day"], ["full_day", "half_day"])
                ),
                "opening_hours": [{"days": [1, 2, 3, 4, 5], "opens": "08:00", "closes": "18:00"}],
                **{
                    f"classes_{a}": math.ceil(capacity[a] / size)
                    for a, size in (("infant", 10), ("toddler", 15), ("preschool", 20))
                },
                **{f"capacity_{a}": capacity[a] for a in capacity},
                **{f"enrolled_{a}": enrolled[a] for a in enrolled},
                "enrolment_month": now.strftime("%Y-%m") if approved else None,
                "status": "approved" if approved else "submitted",
                "license_no": None,  # numbered below, once it is known to be a new facility
                "rejection_reasons": [],
                "grade": rng.choice(("A", "B", "B", "C", None)) if approved else None,
                "is_demonstration": approved and rng.random() < 0.03,
                "owner_client_id": None,
                "version": 1,
                "submitted_at": submitted_at,
                "approved_at": approved_at,
                "updated_at": approved_at or submitted_at,
            }
            drawn.append((row, capacity, enrolled))
        # The same seed draws the same ids: a facility an earlier run wrote is not written again (nor
        # numbered, nor announced), but its facts still go to the next steps, which then draw the
        # same staff and cameras for it and skip them too.
        async with engine.connect() as connection:
            stored = dict(
                (
                    await connection.execute(
                        select(Facility.id, Facility.license_no).where(
                            Facility.id.in_([row["id"] for row, _, _ in drawn])
                        )
                    )
                ).all()
            )
        facilities, changes, events = [], [], []
        written_events: list[CloudEvent] = []
        for row, capacity, enrolled in drawn:
            approved_at = row["approved_at"]
            new = row["id"] not in stored
            if not new:
                row["license_no"] = stored[row["id"]]
            elif isinstance(approved_at, datetime):
                key = (str(row["district_code"]), approved_at.year)
                sequences[key] = sequences.get(key, 0) + 1
                row["license_no"] = f"沪托{key[0]}-{key[1]}-{sequences[key]:05d}"
            event_type = (
                "cradle.registry.facility.approved"
                if row["status"] == "approved"
                else "cradle.registry.facility.submitted"
            )
            data = {
                "facility_id": row["id"],
                "name": row["name"],
                "kind": row["kind"],
                "inclusive": row["inclusive"],
                "has_nursery_class": row["has_nursery_class"],
                "district_code": row["district_code"],
                "town_code": row["town_code"],
                "status": row["status"],
                "license_no": row["license_no"],
                "owner_client_id": None,
                "capacity": capacity,
                "enrolment": enrolled,
                "opening_hours": row["opening_hours"],
                "version": 1,
                "occurred_at": row["updated_at"].isoformat(),  # type: ignore[attr-defined]
            }
            if isinstance(approved_at, datetime):
                data["approved_at"] = approved_at.isoformat()
            event = CloudEvent(source="/cradle/registry", type=event_type, subject=row["id"], data=data)
            written_events.append(event)
            if not new:
                continue
            facilities.append(row)
            changes.append(
                {
                    "id": str(uuid.uuid4()),
                    "facility_id": row["id"],
                    "from_status": None,
                    "to_status": row["status"],
                    "reason": "demo data",
                    "changed_by": "seed-demo",
                    "changed_at": row["updated_at"],
                }
            )
            events.append(
                {
                    "event_id": event.id,
                    "subject": ns.subject(event_type),
                    "payload": event.model_dump_json(exclude_none=True),
                    "created_at": event.time,
                    "attempts": 0,
                }
            )
        if facilities:
            async with engine.begin() as connection:
                await connection.execute(insert(Facility), facilities)
                await connection.execute(insert(FacilityStatusChange), changes)
                await connection.execute(insert(outbox), events)
        written += len(facilities)
        if events_out is not None:
            events_out.extend(written_events)
        if progress:
            progress(len(drawn))
    if sequences:
        # The highest number of each kept: the registry may have licensed facilities meanwhile.
        async with engine.begin() as connection:
            statement = (postgresql if connection.dialect.name == "postgresql" else sqlite).insert(
                LicenseSequence.__table__  # type: ignore[attr-defined]
            )
            await connection.execute(
                statement.on_conflict_do_update(
                    index_elements=["district_code", "year"],
                    set_={
                        "last_number": case(
                            (
                                statement.excluded.last_number > LicenseSequence.last_number,
                                statement.excluded.last_number,
                            ),
                            else_=LicenseSequence.last_number,
                        )
                    },
                ),
                [{"district_code": d, "year": y, "last_number": n} for (d, y), n in sequences.items()],
            )
    await refresh_planner_statistics(engine)
    return written


async def seed_step(run: SeedRun, count: int) -> None:
    """`cradle seed-demo`'s registry step: `count` facilities; their events go to the next steps."""
    clock = time.perf_counter()
    async with run.engine("registry") as engine:
        written = await seed_facilities(
            engine,
            count=count,
            seed=run.seed,
            namespace=run.namespace,
            progress=run.steps.counter("registry facilities", count),
            events_out=run.facility_events,
        )
        recorded, held = await seed_fees(engine, namespace=run.namespace, seed=run.seed)
        month, listed, paid_fen = await seed_subsidies(engine, namespace=run.namespace, seed=run.seed)
        health_records = await seed_health(engine, namespace=run.namespace, seed=run.seed)
        # After the subsidies: an approved change is a version recorded now, after the month listed.
        changes = await seed_change_requests(engine, namespace=run.namespace, seed=run.seed)
    seconds = time.perf_counter() - clock
    run.laps.append(("registry", seconds))
    run.console.print(
        f"[green]{written:,}[/] facilities written, [green]{recorded:,}[/] fee schedules "
        f"({held:,} above the inclusive cap, awaiting EDU), {listed} subsidy lists for {month} published "
        f"({paid_fen / 100:,.2f} yuan paid), {health_records.reports:,} months of entry health checks, "
        f"{health_records.assessments:,} 卫生保健 results, {health_records.quality:,} graded "
        f"quality assessments, {changes.asked:,} changes of licensed facts asked ({changes.approved:,} "
        f"approved, {changes.rejected:,} rejected, the rest under review) in {seconds:.1f} s"
    )
