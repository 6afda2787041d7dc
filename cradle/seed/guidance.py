"""Demo data at city scale: guidance stations in (nearly) every 街镇, bases, sites and rooms, hundreds
of thousands of families with encrypted phones, home visits, sessions with bookings and attendance,
and resources with their pushes. Written the fast way: SQLAlchemy Core executemany in big batches,
one transaction per batch (bookings with the families' yearly tallies of them); pushes with the same
INSERT … SELECT the API uses, which tallies them too. Deterministic for a seed (except the phones'
random AES-GCM nonces)."""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cradle.layout import database_url
from cradle.seed import SeedRun
from services.guidance.config import GuidanceSettings
from services.guidance.models import (
    Booking,
    Child,
    District,
    Family,
    Guardian,
    GuidanceSession,
    HomeVisit,
    Place,
    Resource,
    Town,
    outbox,
)
from services.guidance.service.common import PHONE, Guidance, shanghai_today
from services.guidance.service.resources import push
from services.guidance.service.tallies import add_attendance
from shared.db import refresh_planner_statistics
from shared.divisions import LEGAL_TOWN_TYPES
from shared.events.envelope import CloudEvent
from shared.events.streams import Namespace
from shared.pii import mask

BATCH = 5000
SEED_BY = "seed-demo"
RESOURCE_TITLES = (
    ("新生儿护理要点", 0, 2, ["newborn_care"]),
    ("母乳喂养常见问题", 0, 6, ["breastfeeding", "nutrition"]),
    ("辅食添加指南", 6, 12, ["nutrition"]),
    ("预防接种时间表", 0, 24, ["vaccination"]),
    ("婴幼儿睡眠", 3, 18, ["sleep"]),
    ("语言发展小游戏", 12, 36, ["language", "early_development"]),
    ("居家安全检查", 6, 48, ["safety"]),
    ("如厕训练", 18, 36, ["toilet_training"]),
    ("幼小衔接：入园准备", 30, 48, ["school_readiness"]),
    ("祖辈课堂：科学带娃", 0, 36, ["grandparenting"]),
    ("情绪与行为", 24, 72, ["mental_health"]),
    ("困难家庭支持政策", 0, 72, ["family_support"]),
)


@dataclass
class SeedReport:
    families: int = 0
    guardians: int = 0
    children: int = 0
    places: int = 0
    visits: int = 0
    sessions: int = 0
    bookings: int = 0
    resources: int = 0
    pushes: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _day(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randint(0, max(0, (end - start).days)))


def _at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour - 8, 0, tzinfo=UTC)  # Shanghai hour, in UTC


async def _write(engine: AsyncEngine, table: object, rows: list[dict[str, object]]) -> None:
    for start in range(0, len(rows), BATCH):
        async with engine.begin() as connection:
            await connection.execute(insert(table), rows[start : start + BATCH])  # type: ignore[arg-type]


def _event(ns: Namespace, event_type: str, subject: str, data: dict[str, object]) -> dict[str, object]:
    event = CloudEvent(source="/cradle/guidance", type=event_type, subject=subject, data=data)
    return {
        "event_id": event.id,
        "subject": ns.subject(event_type),
        "payload": event.model_dump_json(exclude_none=True),
        "created_at": event.time,
        "attempts": 0,
    }


async def seed_guidance(
    engine: AsyncEngine,
    *,
    guidance: Guidance,
    families: int,
    seed: int = 2026,
    namespace: str = "cradle",
    progress: Callable[[str, int], None] | None = None,
) -> SeedReport:
    """Write `families` families and a city of places, sessions and resources around them."""
    rng = random.Random(seed)
    ns = Namespace(namespace)
    report = SeedReport()
    today = shanghai_today()
    now = datetime.now(UTC)
    this_year = today.year
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        report.seconds[name] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    async with engine.connect() as connection:
        districts = (await connection.execute(select(District))).all()
        towns = (await connection.execute(select(Town))).all()
    legal = [t for t in towns if t.town_type in LEGAL_TOWN_TYPES]
    by_district: dict[str, list[object]] = defaultdict(list)
    for town in legal:
        by_district[town.district_code].append(town)

    # --- places: a station in ~97 % of the 街镇, opened over the plan's years -------------------
    places: list[dict[str, object]] = []
    events: list[dict[str, object]] = []

    def place(
        kind: str, name: str, district_code: str, town_code: str | None, opened: date
    ) -> dict[str, object]:
        row = {
            "id": _uuid(rng),
            "kind": kind,
            "name": name,
            "district_code": district_code,
            "town_code": town_code,
            "address": "",
            "opened_on": opened,
            "closed_on": None,
            "created_by": SEED_BY,
            "created_at": now,
            "updated_at": now,
            "version": 1,
        }
        places.append(row)
        events.append(
            _event(
                ns,
                "cradle.guidance.place.opened",
                str(row["id"]),
                {
                    "place_id": row["id"],
                    "kind": kind,
                    "name": name,
                    "district_code": district_code,
                    "town_code": town_code,
                    "opened_on": opened.isoformat(),
                },
            )
        )
        return row

    stations: dict[str, list[dict[str, object]]] = defaultdict(list)
    for town in legal:
        if rng.random() < 0.97:
            opened = _day(
                rng,
                date(2019, 1, 1),
                date(this_year, 1, 1) + timedelta(days=min(300, today.timetuple().tm_yday)),
            )
            opened = min(opened, today)
            stations[town.district_code].append(
                place(
                    "guidance_station",
                    f"{town.name}家庭科学育儿指导站",
                    town.district_code,
                    town.code,
                    opened,
                )
            )
    for d in districts:
        for n in range(1 + (rng.random() < 0.2)):
            place(
                "development_base",
                f"{d.name}儿童早期发展基地{n + 1}",
                d.code,
                None,
                _day(rng, date(2020, 1, 1), today),
            )
        if rng.random() < 0.75:
            town = rng.choice(by_district[d.code])
            place(
                "observation_room",
                f"{town.name}社区卫生服务中心游戏观察室",
                d.code,
                town.code,
                _day(rng, date(2020, 6, 1), today),
            )
        for town in rng.sample(by_district[d.code], k=min(4, len(by_district[d.code]))):
            place(
                "parent_child_room",
                f"{town.name}社区卫生服务中心亲子活动室",
                d.code,
                town.code,
                _day(rng, date(2020, 1, 1), today),
            )
    for year in range(2020, this_year + 1):
        for _ in range(rng.randint(45, 70)):
            town = rng.choice(legal)
            place(
                "child_friendly_site",
                f"{town.name}儿童友好社区示范点",
                town.district_code,
                town.code,
                min(_day(rng, date(year, 1, 1), date(year, 12, 31)), today),
            )
    await _write(engine, Place.__table__, places)
    report.places = len(places)
    lap("places")

    # --- families, guardians (encrypted phones), children ---------------------------------------
    weights = [
        len(by_district[d.code]) * 3 + (d.code in ("310115", "310112", "310114")) * 40 for d in districts
    ]
    district_codes = [d.code for d in districts]
    need: list[tuple[str, str, date]] = []  # (family id, district, registered_on) of families in need
    newborn_need: list[tuple[str, str, date]] = []
    cipher, hasher = guidance.cipher, guidance.hasher
    family_rows: list[dict[str, object]] = []
    guardian_rows: list[dict[str, object]] = []
    child_rows: list[dict[str, object]] = []
    start_day = date(this_year - 2, 1, 1)
    encrypt_seconds = 0.0

    async def flush_families() -> None:
        async with engine.begin() as connection:
            await connection.execute(insert(Family), family_rows)
            await connection.execute(insert(Guardian), guardian_rows)
            await connection.execute(insert(Child), child_rows)
        if progress:
            progress("families", len(family_rows))
        family_rows.clear()
        guardian_rows.clear()
        child_rows.clear()

    for _ in range(families):
        district_code = rng.choices(district_codes, weights=weights)[0]
        town = rng.choice(by_district[district_code])
        registered = _day(rng, start_day, today)
        in_need = rng.random() < 0.15
        newborn = rng.random() < 0.3
        grand = rng.random() < 0.35
        family_id = _uuid(rng)
        family_rows.append(
            {
                "id": family_id,
                "district_code": district_code,
                "town_code": town.code,
                "in_need": in_need,
                "newborn": newborn,
                "grandparent_carers": grand,
                "has_handbook": rng.random() < 0.85,
                "registered_on": registered,
                "registered_at": _at(registered, 10),
                "registered_by": SEED_BY,
                "registered_via": "app" if rng.random() < 0.4 else "station",
                "link_code_hash": None,
                "link_code_expires_at": None,
                "version": 1,
                "updated_at": now,
            }
        )
        relations = (
            ["mother"] + (["father"] if rng.random() < 0.45 else []) + (["grandmother"] if grand else [])
        )
        for position, relation in enumerate(relations):
            phone = (
                f"1{rng.choice('3578')}{rng.randrange(10**9):09d}"
                if position == 0 or rng.random() < 0.5
                else None
            )
            sealed_key = sealed_text = masked = digest = None
            if phone:
                started = time.perf_counter()
                sealed = cipher.encrypt(phone, context=PHONE)
                sealed_key, sealed_text, masked, digest = (
                    sealed.key_id,
                    sealed.ciphertext,
                    mask(phone),
                    hasher.digest(phone),
                )
                encrypt_seconds += time.perf_counter() - started
            guardian_rows.append(
                {
                    "id": _uuid(rng),
                    "family_id": family_id,
                    "position": position,
                    "relation": relation,
                    "name": None,
                    "phone_key_id": sealed_key,
                    "phone_encrypted": sealed_text,
                    "phone_masked": masked,
                    "phone_hash": digest,
                }
            )
        # A newborn family's youngest child was born shortly before it registered.
        youngest = (
            registered - timedelta(days=rng.randint(0, 60))
            if newborn
            else _day(rng, today - timedelta(days=6 * 365), registered)
        )
        births = [youngest] + (
            [youngest - timedelta(days=rng.randint(400, 1500))] if rng.random() < 0.25 else []
        )
        for birth in births:
            if birth >= today - timedelta(days=6 * 365):
                child_rows.append({"id": _uuid(rng), "family_id": family_id, "birth_date": birth})
        report.guardians += len(relations)
        report.children += len(births)
        if in_need:
            need.append((family_id, district_code, registered))
            if newborn:
                newborn_need.append((family_id, district_code, registered))
        if len(family_rows) >= BATCH:
            await flush_families()
    if family_rows:
        await flush_families()
    report.families = families
    lap("families")
    report.seconds["of which phone encryption"] = round(encrypt_seconds, 2)

    # --- home visits: most newborn families in need get one or two --------------------------------
    visits: list[dict[str, object]] = []
    topics = ["newborn_visit", "breastfeeding", "nutrition", "growth", "vaccination", "safety"]
    for family_id, district_code, registered in newborn_need:
        if rng.random() < 0.85:
            for _ in range(rng.choice((1, 1, 2))):
                visited = min(registered + timedelta(days=rng.randint(1, 40)), today)
                visits.append(
                    {
                        "id": _uuid(rng),
                        "family_id": family_id,
                        "district_code": district_code,
                        "visited_on": visited,
                        "visitor": "社区医生",
                        "topics": rng.sample(topics, k=2),
                        "notes": "",
                        "recorded_by": SEED_BY,
                        "recorded_at": _at(visited, 18),
                    }
                )
    await _write(engine, HomeVisit.__table__, visits)
    report.visits = len(visits)
    lap("home visits")

    # --- sessions: monthly at each station, district and city events; bookings and attendance ----
    sessions: list[dict[str, object]] = []
    open_sessions: dict[tuple[str, int], list[dict[str, object]]] = defaultdict(list)
    for year in (this_year - 1, this_year):
        for month in range(1, 13):
            day = date(year, month, 15)
            for code in district_codes:
                for station in stations[code]:
                    if rng.random() < 0.5:
                        continue
                    row = {
                        "id": _uuid(rng),
                        "level": "station",
                        "kind": rng.choice(("course", "lecture", "play_group")),
                        "title": "育儿指导课堂",
                        "description": "",
                        "starts_at": _at(day + timedelta(days=rng.randint(-10, 10)), 9),
                        "ends_at": None,
                        "place_id": station["id"],
                        "district_code": code,
                        "town_code": station["town_code"],
                        "venue": station["name"],
                        "capacity": 200,
                        "booked": 0,
                        "status": "scheduled",
                        "organiser_client_id": SEED_BY,
                        "created_at": now,
                        "version": 1,
                    }
                    sessions.append(row)
                    open_sessions[(code, year)].append(row)
                if month in (3, 6, 9, 11) or rng.random() < 0.2:
                    row = {
                        "id": _uuid(rng),
                        "level": "district",
                        "kind": "parenting_station_event",
                        "title": "育儿加油站",
                        "description": "",
                        "starts_at": _at(day, 14),
                        "ends_at": None,
                        "place_id": None,
                        "district_code": code,
                        "town_code": None,
                        "venue": "区妇女儿童活动中心",
                        "capacity": 500,
                        "booked": 0,
                        "status": "scheduled",
                        "organiser_client_id": SEED_BY,
                        "created_at": now,
                        "version": 1,
                    }
                    sessions.append(row)
                    open_sessions[(code, year)].append(row)
            if month in (5, 10):
                sessions.append(
                    {
                        "id": _uuid(rng),
                        "level": "city",
                        "kind": "parenting_station_event" if month == 5 else "carnival",
                        "title": "上海市育儿加油站" if month == 5 else "上海市亲子嘉年华",
                        "description": "",
                        "starts_at": _at(day, 10),
                        "ends_at": None,
                        "place_id": None,
                        "district_code": None,
                        "town_code": None,
                        "venue": "上海展览中心",
                        "capacity": 2000,
                        "booked": 0,
                        "status": "scheduled",
                        "organiser_client_id": SEED_BY,
                        "created_at": now,
                        "version": 1,
                    }
                )
    bookings: list[dict[str, object]] = []
    booked_pairs: set[tuple[str, str]] = set()

    def book(row: dict[str, object], family_id: str, attend: float) -> None:
        if row["booked"] >= row["capacity"] or (str(row["id"]), family_id) in booked_pairs:  # type: ignore[operator]
            return
        row["booked"] = int(row["booked"]) + 1  # type: ignore[call-overload]
        booked_pairs.add((str(row["id"]), family_id))
        starts = row["starts_at"]
        assert isinstance(starts, datetime)
        attended = starts < now and rng.random() < attend
        bookings.append(
            {
                "id": _uuid(rng),
                "session_id": row["id"],
                "family_id": family_id,
                "status": "booked",
                "booked_by": SEED_BY,
                "booked_at": starts - timedelta(days=5),
                "cancelled_at": None,
                "attended": attended,
                "attended_at": starts if attended else None,
                "session_starts_at": starts,
            }
        )

    for family_id, code, registered in need:
        for year in (this_year - 1, this_year):
            choices = [s for s in open_sessions[(code, year)][:400] if s["starts_at"].date() >= registered]  # type: ignore[union-attr]
            if not choices:
                continue
            for row in rng.sample(choices, k=min(len(choices), rng.randint(3, 10))):
                book(row, family_id, 0.85)
    await _write(engine, GuidanceSession.__table__, sessions)
    # Each batch of bookings with the families' yearly tallies of it, in one transaction.
    in_need = {family_id: (code, registered) for family_id, code, registered in need}
    for start in range(0, len(bookings), BATCH):
        batch = bookings[start : start + BATCH]
        attended = Counter(
            (str(b["family_id"]), b["session_starts_at"].year)  # type: ignore[attr-defined]
            for b in batch
            if b["attended"]
        )
        tallies = [
            {
                "family_id": family_id,
                "year": year,
                "district_code": in_need[family_id][0],
                "registered_on": in_need[family_id][1],
                "in_need": True,
                "sessions_attended": n,
                "pushed": False,
            }
            for (family_id, year), n in attended.items()
        ]
        async with engine.begin() as connection:
            await connection.execute(insert(Booking), batch)
            await add_attendance(connection=connection, rows=tallies)
    report.sessions, report.bookings = len(sessions), len(bookings)
    lap("sessions and bookings")

    # --- resources, each pushed set-based to the families in need with a child in its range --------
    maker_rows: list[Resource] = []
    for n in range(36):
        title, age_from, age_to, resource_topics = RESOURCE_TITLES[n % len(RESOURCE_TITLES)]
        published = now - timedelta(days=rng.randint(0, 700))
        maker_rows.append(
            Resource(
                id=_uuid(rng),
                kind=rng.choice(("article", "video", "course", "package")),
                title=title,
                summary="",
                url=None,
                age_from_months=age_from,
                age_to_months=age_to,
                topics=resource_topics,
                audience="grandparents" if "grandparenting" in resource_topics else "parents",
                published_at=published,
                published_by=SEED_BY,
                pushed_families=0,
                version=1,
            )
        )
    async with AsyncSession(engine, expire_on_commit=False) as session, session.begin():
        session.add_all(maker_rows)
        await session.flush()
        for resource in maker_rows:
            resource.pushed_families = await push(
                session=session, resource=resource, now=resource.published_at
            )
            report.pushes += resource.pushed_families
            events.append(
                _event(
                    ns,
                    "cradle.guidance.resource.published",
                    resource.id,
                    {
                        "resource_id": resource.id,
                        "title": resource.title,
                        "kind": resource.kind,
                        "age_from_months": resource.age_from_months,
                        "age_to_months": resource.age_to_months,
                        "audience": resource.audience,
                        "topics": resource.topics,
                        "pushed_families": resource.pushed_families,
                        "published_at": resource.published_at.isoformat(),
                    },
                )
            )
    report.resources = len(maker_rows)
    lap("resources and pushes")

    await _write(engine, outbox, events)
    await refresh_planner_statistics(engine)
    lap("events and statistics")
    return report


async def _seeded_before(engine: AsyncEngine) -> bool:
    async with engine.connect() as connection:
        found = await connection.execute(select(Place.id).where(Place.created_by == SEED_BY).limit(1))
        return found.first() is not None


async def seed_step(run: SeedRun, count: int) -> None:
    """`cradle seed-demo`'s guidance step: `count` families and all that hangs on them."""
    clock = time.perf_counter()
    settings = GuidanceSettings(
        database_url=database_url("guidance", run.base),
        internal_verify_key=run.keys.internal_verify_key,
        **run.keys.pii["guidance"].settings(),  # type: ignore[arg-type]
    )
    family_step = run.steps.counter("guidance families", count)
    after_families = "guidance the rest"  # visits, sessions, bookings, resources: no counts

    def on_families(_step: str, n: int) -> None:
        family_step(n)
        if run.steps.rows["guidance families"] >= count and after_families not in run.steps.tasks:
            run.steps.report(after_families, 0, None)

    async with run.engine("guidance") as engine:
        if await _seeded_before(engine):
            # Its tallies add up rather than upsert: a second run would count every family twice.
            run.steps.report("guidance families", count, count)
            run.console.print("guidance: seeded by an earlier run, left as it is")
            return
        report = await seed_guidance(
            engine,
            guidance=Guidance.from_settings(settings),
            families=count,
            seed=run.seed,
            namespace=run.namespace,
            progress=on_families,
        )
    run.steps.report(after_families, 1, 1)
    seconds = time.perf_counter() - clock
    run.laps.append(("guidance", seconds))
    run.laps.extend((f"  {name}", seconds) for name, seconds in report.seconds.items())
    run.console.print(
        f"[green]{report.families:,}[/] families ({report.guardians:,} guardians, "
        f"{report.children:,} children), {report.places:,} places, {report.sessions:,} sessions, "
        f"{report.bookings:,} bookings, {report.resources:,} resources pushed {report.pushes:,} "
        f"times, written in {seconds:.1f} s"
    )
