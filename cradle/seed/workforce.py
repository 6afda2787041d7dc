"""Demo data at city scale for the workforce: its facility projection as the registry's events would
build it, practitioners with valid and unique GB 11643 ID numbers (encrypted and hashed with the
service's own keys, as registration does), their certificates (持证上岗), and active employments in
ratio-plausible numbers at the approved facilities: one director each, carers per age class for the
enrolment (a few facilities one carer short), a health worker, other staff. Practitioners beyond
those posts are registered without a current post; about half of them left an earlier one.

Written the fast way (BASELINES.md): no ORM objects, SQLAlchemy Core executemany in large batches,
one transaction per batch. Employed practitioners also get the clear background check of their hire
and this year's re-check, so the annual re-check job does not start by re-checking the whole city.
The only events written are one `staffing.assessed` per approved facility, as the service's own
`staffing.announce` would after the last hire (monitoring's risk score reads them); practitioner,
certificate and employment events are not written for seeded rows. What the service's daily job
announces is left to it: a few non-carers' health certificates (健康合格证明) have lapsed, and its
first round under `cradle up` flags those employments and tells their facilities and districts
(`employment.flagged`, an alert in monitoring), as it announces expired certificates.

Deterministic for a seed, except the AES-GCM nonces and row ids of the staffing events."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from cradle.layout import database_url
from cradle.seed import SeedRun, upsert_newer
from services.workforce.config import HEALTH_CERTIFICATE, WorkforceSettings
from services.workforce.events import AgeClassStaffingFacts, StaffingAssessed
from services.workforce.handlers import FacilityFacts
from services.workforce.models import (
    BackgroundCheck,
    Certificate,
    Employment,
    FacilityProjection,
    Person,
    Practitioner,
    Recheck,
    outbox,
)
from services.workforce.service import staffing
from services.workforce.service.common import (
    ACTIVE,
    ENDED,
    ID_NUMBER,
    PHONE,
    SHANGHAI,
    WORKFORCE_SESSION_KEY,
    Workforce,
    as_utc,
    shanghai_today,
)
from shared.db import refresh_planner_statistics
from shared.events.envelope import CloudEvent
from shared.events.outbox import OutboxWriter, emit_many, outbox_session_info
from shared.events.streams import Namespace
from shared.pii import mask, national_id_check_char

BATCH = 5000
SEED_BY = "seed-demo"
AGE_CLASSES = ("infant", "toddler", "preschool")

# Where the practitioners were born (GB/T 2260 county-level codes): Shanghai first, then the
# provinces most of the city's childcare staff come from.
REGIONS = (
    ("310101", 4), ("310104", 4), ("310105", 4), ("310106", 4), ("310107", 5), ("310109", 4),
    ("310110", 5), ("310112", 6), ("310113", 6), ("310114", 4), ("310115", 10), ("310116", 3),
    ("310117", 4), ("310118", 3), ("310120", 3), ("310230", 2),
    ("320583", 3), ("320681", 2), ("321323", 2), ("330481", 2), ("341222", 4), ("342401", 3),
    ("340104", 2), ("360102", 2), ("370102", 1), ("411522", 3), ("410102", 2), ("420102", 2),
    ("430102", 2), ("500101", 2), ("510102", 2), ("511102", 1), ("610102", 1), ("230102", 1),
)  # fmt: skip
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
    "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚邵万钱严武戴莫孔汤"
)
GIVEN_FEMALE = "丽敏静燕芳娟霞婷玲红慧洁琳颖雪晶倩佳欣怡萍艳莉华英梅秀兰凤云琴蓉瑶诗雯悦彤璐晓思"
GIVEN_MALE = "伟强磊军勇杰涛明超斌浩鹏辉刚健峰宇航俊"
# Who works with which age class (all three are caring roles for the ratios).
CLASS_ROLES = {
    "infant": (("infant_carer", 8), ("childcare_worker", 2)),
    "toddler": (("childcare_worker", 6), ("infant_carer", 4)),
    "preschool": (("teacher", 13), ("childcare_worker", 7)),
}
SECOND_CERTIFICATE = {  # a second qualification some hold, and how many
    "director": ("teacher", 0.5),
    "infant_carer": ("childcare_worker", 0.25),
    "childcare_worker": ("infant_carer", 0.2),
    "teacher": ("childcare_worker", 0.3),
}
POOL_CLASSES = {
    "infant_carer": "infant",
    "childcare_worker": "toddler",
    "teacher": "preschool",
    "health_worker": None,
}
POOL_CERTIFICATES = (("infant_carer", 35), ("childcare_worker", 35), ("teacher", 20), ("health_worker", 10))
ISSUERS = {
    "infant_carer": "上海市职业技能鉴定中心",
    "childcare_worker": "上海市职业技能鉴定中心",
    "health_worker": "上海市妇幼保健中心",
    "teacher": "上海市教育委员会",
    "director": "上海市托育服务指导中心",
    "health": "上海市疾病预防控制中心",
}
NUMBER_PREFIX = {
    "infant_carer": "YY",
    "childcare_worker": "BY",
    "health_worker": "BJ",
    "teacher": "JS",
    "director": "FZ",
    "health": "JK",
}
# Not "service_agreement": 17 characters, and employment.contract_type is VARCHAR(16) (PostgreSQL
# refuses it; reported, the column is not this module's to change).
CONTRACTS = (("labour_contract", 82), ("dispatched", 11), ("part_time", 7))
END_REASONS = (("resigned", 6), ("contract_expired", 3), ("transferred", 1))
# Priorities when there are fewer practitioners than posts: directors, then carers up to the ratio,
# then health workers, carers beyond it, other staff.
DIRECTOR, REQUIRED, HEALTH, EXTRA, OTHER = range(5)

Progress = Callable[[str, int, int], None]  # (step, done so far, step total)


@dataclass
class WorkforceReport:
    facilities: int = 0  # projection rows written
    practitioners: int = 0
    certificates: int = 0
    employments: int = 0  # active
    ended_employments: int = 0
    directors: int = 0
    facilities_short: int = 0  # approved facilities planned one carer short of a ratio
    out_of_ratio: int = 0  # approved facilities whose staffing misses a ratio (the events' verdict)
    background_checks: int = 0
    rechecks: int = 0
    provisional: int = 0  # recent hires of non-carers whose background check is still pending
    # Active employments whose holder's health certificate has lapsed: left for the workforce's daily
    # job, which flags each and tells its facility and district (employment.flagged) on its first round.
    health_lapsed: int = 0
    staffing_events: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Post:
    priority: int
    facility_id: str
    district_code: str
    role: str
    age_class: str | None
    opened: date  # when the facility was approved


def _uuid(rng: random.Random) -> str:
    """`str(uuid.UUID(int=rng.getrandbits(128), version=4))`, at twice the speed."""
    bits = rng.getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48) | (0x4000 << 64) | (0x8000 << 48)
    h = f"{bits:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _weighted(pairs: Sequence[tuple[Any, int]]) -> tuple[tuple[Any, ...], list[int]]:
    """Values and cumulative weights for `rng.choices(values, cum_weights=...)` (the same draws as
    with `weights=`, without summing them again at every call)."""
    values, weights = zip(*pairs, strict=True)
    return values, list(itertools.accumulate(weights))


def _day(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randint(0, max(0, (end - start).days)))


def _at(day: date, hour: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI).astimezone(UTC)


def projection_row(event: CloudEvent, now: datetime) -> dict[str, object]:
    """The row `handlers.on_facility_changed` makes of this event for a facility it has not seen:
    the same facts, version and `source_event_at`, so the event itself, delivered later, is older
    than or equal to the row and changes nothing."""
    facts = FacilityFacts.model_validate(event.data)
    row: dict[str, object] = {
        "facility_id": facts.facility_id,
        "name": facts.name,
        "district_code": facts.district_code,
        "town_code": facts.town_code,
        "status": facts.status,
        "owner_client_id": facts.owner_client_id,
        "version": facts.version or 0,
        "source_event_at": as_utc(event.time),
        "updated_at": now,
    }
    for kind, values in (("capacity", facts.capacity), ("enrolment", facts.enrolment)):
        for age_class in AGE_CLASSES:
            row[f"{kind}_{age_class}"] = getattr(values, age_class) if values is not None else 0
    return row


def newest_per_facility(events: Sequence[CloudEvent]) -> list[CloudEvent]:
    """Of several events about one facility, the one the handlers would keep: the highest
    (version, time)."""
    newest: dict[str, CloudEvent] = {}
    for event in events:
        facility_id = str(event.data["facility_id"])
        kept = newest.get(facility_id)
        position = (int(event.data.get("version") or 0), as_utc(event.time))  # type: ignore[call-overload]
        if kept is None or position > (int(kept.data.get("version") or 0), as_utc(kept.time)):  # type: ignore[call-overload]
            newest[facility_id] = event
    return list(newest.values())


async def write_projection(
    engine: AsyncEngine, events: Sequence[CloudEvent], *, progress: Progress | None = None
) -> list[dict[str, object]]:
    """Write the projection rows of these facilities, each unless the one there (the consumer's,
    when `cradle up` runs, or an earlier seeding's) is as new; return the rows of all of them."""
    now = datetime.now(UTC)
    rows = [projection_row(event, now) for event in newest_per_facility(events)]
    facts = tuple(column for column in rows[0] if column != "facility_id") if rows else ()
    if progress:
        progress("workforce projection", 0, len(rows))
    for start in range(0, len(rows), BATCH):
        async with engine.begin() as connection:
            await upsert_newer(
                connection,
                FacilityProjection.__table__,  # type: ignore[attr-defined]
                rows[start : start + BATCH],
                key="facility_id",
                facts=facts,
            )
        if progress:
            progress("workforce projection", min(start + BATCH, len(rows)), len(rows))
    return rows


def _plan_posts(
    rng: random.Random,
    facilities: list[dict[str, object]],
    opened: dict[str, date],
    ratios: dict[str, int],
    report: WorkforceReport,
) -> list[_Post]:
    posts: list[_Post] = []
    for f in facilities:
        if f["status"] != "approved":
            continue  # only approved facilities can hire
        fid, district = str(f["facility_id"]), str(f["district_code"])
        day = opened[fid]
        posts.append(_Post(DIRECTOR, fid, district, "director", None, day))
        enrolled = {a: int(f[f"enrolment_{a}"]) for a in AGE_CLASSES}  # type: ignore[call-overload]
        staffed = [a for a in AGE_CLASSES if enrolled[a] > 0]
        short = rng.choice(staffed) if staffed and rng.random() < 0.07 else None
        report.facilities_short += short is not None
        for age_class in staffed:
            required = math.ceil(enrolled[age_class] / ratios[age_class]) - (short == age_class)
            extra = 0 if short == age_class else rng.choices((0, 1, 2), weights=(5, 4, 1))[0]
            roles, weights = zip(*CLASS_ROLES[age_class], strict=True)
            for n in range(required + extra):
                role = rng.choices(roles, weights=weights)[0]
                posts.append(_Post(REQUIRED if n < required else EXTRA, fid, district, role, age_class, day))
        if sum(enrolled.values()) and rng.random() < 0.9:
            posts.append(_Post(HEALTH, fid, district, "health_worker", None, day))
        for _ in range(rng.randint(1, 3)):  # cooks, cleaners, guards: no certificate, not carers
            posts.append(_Post(OTHER, fid, district, "other", None, day))
    return posts


class _People:
    """Unique, valid GB 11643 ID numbers, Chinese names and mobile numbers."""

    def __init__(self, rng: random.Random, today: date) -> None:
        self.rng, self.today = rng, today
        self.regions, self.region_weights = _weighted(REGIONS)
        self.seen: set[str] = set()

    def id_number(self, *, female: bool, min_age: int, max_age: int) -> str:
        while True:
            born = self.today - timedelta(days=self.rng.randint(min_age * 365 + 5, max_age * 365))
            sequence = self.rng.randrange(500) * 2 + (0 if female else 1)  # odd for men, even for women
            region = self.rng.choices(self.regions, cum_weights=self.region_weights)[0]
            first17 = f"{region}{born:%Y%m%d}{sequence:03d}"
            number = first17 + national_id_check_char(first17)
            if number not in self.seen:
                self.seen.add(number)
                return number

    def name(self, *, female: bool) -> str:
        given = GIVEN_FEMALE if female else GIVEN_MALE
        return self.rng.choice(SURNAMES) + "".join(self.rng.choices(given, k=self.rng.choice((1, 2, 2))))

    def phone(self) -> str | None:
        if self.rng.random() < 0.25:
            return None
        return f"1{self.rng.choice('35789')}{self.rng.randrange(10**9):09d}"


async def seed_workforce(
    engine: AsyncEngine,
    *,
    workforce: Workforce,
    facilities: Sequence[CloudEvent],
    practitioners: int,
    seed: int = 2026,
    namespace: str = "cradle",
    progress: Progress | None = None,
) -> WorkforceReport:
    """Write the projection of the registry's `facilities` (their facility events), then
    `practitioners` practitioners, their certificates and the posts they hold."""
    rng = random.Random(f"workforce:{seed}")
    report = WorkforceReport()
    today = shanghai_today()
    now = datetime.now(UTC)
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        report.seconds[name] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    # --- the facility projection, exactly as the registry's events build it -----------------------
    rows = await write_projection(engine, facilities, progress=progress)
    report.facilities = len(rows)
    lap("facility projection")
    opened: dict[str, date] = {}
    for event in newest_per_facility(facilities):
        approved_at = event.data.get("approved_at")
        moment = datetime.fromisoformat(str(approved_at)) if approved_at else event.time
        opened[str(event.data["facility_id"])] = min(as_utc(moment).astimezone(SHANGHAI).date(), today)

    # --- posts: who works where, in ratio (mostly) --------------------------------------------------
    posts = _plan_posts(rng, rows, opened, workforce.settings.ratios, report)
    posts.sort(key=lambda p: p.priority)  # stable: within a priority, facility order
    posts = posts[:practitioners]
    assignment: list[_Post | None] = [*posts, *([None] * (practitioners - len(posts)))]
    rng.shuffle(assignment)
    approved = [p for p in rows if p["status"] == "approved"]

    async with engine.connect() as connection:
        taken = set((await connection.execute(select(Person.id_hash))).scalars())
    people = _People(rng, today)
    certificate_numbers: dict[str, int] = dict.fromkeys(NUMBER_PREFIX, 0)
    year_start = _at(date(today.year, 1, 1), 0)
    if progress:
        progress("practitioners", 0, practitioners)

    health_days = workforce.settings.health_certificate_valid_days

    def certificate(practitioner_id: str, kind: str, issued: date, created: datetime) -> dict[str, object]:
        certificate_numbers[kind] += 1
        valid_days = health_days if kind == HEALTH_CERTIFICATE else 5 * 365
        return {
            "id": _uuid(rng),
            "practitioner_id": practitioner_id,
            "type": kind,
            "number": f"{NUMBER_PREFIX[kind]}{issued.year}{certificate_numbers[kind]:07d}",
            "issuer": ISSUERS[kind],
            "issued_on": issued,
            "expires_on": issued + timedelta(days=valid_days),
            "recorded_by": SEED_BY,
            "created_at": created,
            "expiry_announced_at": None,
        }

    timings = {"encryption": 0.0}
    caring = set(workforce.settings.caring_roles)
    pool_kinds, pool_weights = _weighted(POOL_CERTIFICATES)
    contracts, contract_weights = _weighted(CONTRACTS)
    end_reasons, end_weights = _weighted(END_REASONS)

    def build(batch: list[_Post | None]) -> dict[Any, list[dict[str, object]]]:
        """One batch's rows, table by table (CPU only: runs in a worker thread while the previous
        batch is written)."""
        persons: list[dict[str, object]] = []
        practitioner_rows: list[dict[str, object]] = []
        certificates: list[dict[str, object]] = []
        employments: list[dict[str, object]] = []
        checks: list[dict[str, object]] = []
        rechecks: list[dict[str, object]] = []
        clear: list[tuple[str, str | None]] = []  # (ID number, phone) per practitioner, then sealed
        for post in batch:
            female = rng.random() < (0.75 if post and post.role in ("director", "other") else 0.95)
            director = post is not None and post.role == "director"
            id_number = people.id_number(female=female, min_age=28 if director else 20, max_age=56)
            practitioner_id = _uuid(rng)
            if post is not None:
                # Founding staff start when the facility opens; the rest joined since.
                start = (
                    _day(rng, post.opened, min(post.opened + timedelta(days=14), today))
                    if post.priority in (DIRECTOR, REQUIRED) and rng.random() < 0.6
                    else _day(rng, post.opened, today)
                )
                hired_at = min(_at(start, 9), now)
                registered = min(_at(start - timedelta(days=rng.randint(1, 30)), 10), now)
            else:
                start, hired_at = None, None
                registered = min(_at(_day(rng, today - timedelta(days=5 * 365), today), 10), now)
            phone = people.phone()
            clear.append((id_number, phone))
            practitioner_rows.append(
                {
                    "id": practitioner_id,
                    "id_hash": None,  # below, with the encryption
                    "name": people.name(female=female),
                    "nationality": "CN",
                    "work_permit_no": None,
                    "grade": None,
                    "registered_by": SEED_BY,
                    "version": 1,
                    "created_at": registered,
                    "updated_at": registered,
                }
            )
            # Certificates valid today (and, but for renewals, on the first day of work): 持证上岗.
            kinds: list[str] = []
            if post is None:
                kinds.append(rng.choices(pool_kinds, cum_weights=pool_weights)[0])
            elif post.role != "other":
                kinds.append(post.role)
                second = SECOND_CERTIFICATE.get(post.role)
                if second and rng.random() < second[1]:
                    kinds.append(second[0])
            for kind in kinds:
                anchor = start or today
                issued = _day(rng, max(anchor - timedelta(days=2 * 365), today - timedelta(days=4 * 365)),
                              min(anchor, today))  # fmt: skip
                recorded = max(registered, min(_at(issued, 10), now))
                certificates.append(certificate(practitioner_id, kind, issued, recorded))
            # 健康合格证明, renewed yearly: valid today, but for a few non-carers whose renewal is late.
            lapsed = post is not None and post.role not in caring and rng.random() < 0.03
            checkup = (
                _day(rng, today - timedelta(days=health_days + 60), today - timedelta(days=health_days + 1))
                if lapsed
                else _day(rng, today - timedelta(days=health_days - 30), today)
            )
            certificates.append(
                certificate(
                    practitioner_id, HEALTH_CERTIFICATE, checkup, max(registered, min(_at(checkup, 10), now))
                )
            )
            if post is not None:
                assert start is not None and hired_at is not None
                contract = rng.choices(contracts, cum_weights=contract_weights)[0]
                employment_id = _uuid(rng)
                insured = contract != "part_time" and rng.random() < 0.96
                # A non-carer hired in the last fortnight may still wait on POLICE's answer: provisional.
                waiting = (
                    post.role not in caring and start >= today - timedelta(days=14) and rng.random() < 0.5
                )
                hire_check = _uuid(rng)
                employments.append(
                    {
                        "id": employment_id,
                        "practitioner_id": practitioner_id,
                        "facility_id": post.facility_id,
                        "district_code": post.district_code,
                        "role": post.role,
                        "age_class": post.age_class,
                        "contract_type": contract,
                        "social_insurance_paid": insured,
                        "social_insurance_since": (
                            start + timedelta(days=rng.choice((0, 0, 0, 30, 61))) if insured else None
                        ),
                        "start_date": start,
                        "end_date": None,
                        "end_reason": None,
                        "end_note": None,
                        "status": ACTIVE,
                        "created_by": SEED_BY,
                        "created_at": hired_at,
                        "ended_at": None,
                        "ended_by": None,
                        "standing": "provisional" if waiting else "cleared",
                        "background_check_id": hire_check,
                        "health_certificate_pending": False,
                        "health_flagged_on": None,  # the daily job flags a lapse, and alerts
                        "suspended_at": None,
                        "version": 1,
                    }
                )
                # 资格审查 at hiring, clear (or pending, for a provisional hire); and this year's re-check
                # (a new check if the last is old).
                check = _check(hire_check, practitioner_id, employment_id, "hire", hired_at, now)
                if waiting:
                    check.update(status="pending", answered_by=None, answered_at=None)
                checks.append(check)
                checked_at = max(year_start, hired_at) + (now - max(year_start, hired_at)) * rng.random()
                annual = None
                if hired_at <= checked_at - timedelta(days=workforce.settings.recheck_every_days):
                    annual = _uuid(rng)
                    checks.append(_check(annual, practitioner_id, None, "annual", checked_at, now))
                rechecks.append(
                    {
                        "id": _uuid(rng),
                        "practitioner_id": practitioner_id,
                        "year": today.year,
                        "checked_at": checked_at,
                        "banned": False,
                        "background_check_id": annual,
                    }
                )
            elif approved and rng.random() < 0.5:
                # Left an earlier post.
                place = rng.choice(approved)
                began = _day(rng, opened[str(place["facility_id"])], today - timedelta(days=30))
                ended = min(began + timedelta(days=rng.randint(90, 1200)), today - timedelta(days=1))
                ended = max(ended, began)
                reason = rng.choices(end_reasons, cum_weights=end_weights)[0]
                employments.append(
                    {
                        "id": _uuid(rng),
                        "practitioner_id": practitioner_id,
                        "facility_id": place["facility_id"],
                        "district_code": place["district_code"],
                        "role": kinds[0],
                        "age_class": POOL_CLASSES[kinds[0]],
                        "contract_type": rng.choices(contracts, cum_weights=contract_weights)[0],
                        "social_insurance_paid": True,
                        "social_insurance_since": began,
                        "start_date": began,
                        "end_date": ended,
                        "end_reason": reason,
                        "end_note": None,
                        "status": ENDED,
                        "created_by": SEED_BY,
                        "created_at": min(_at(began, 9), now),
                        "ended_at": min(_at(ended, 18), now),
                        "ended_by": SEED_BY,
                        "standing": "cleared",
                        "background_check_id": None,
                        "health_certificate_pending": False,
                        "health_flagged_on": None,
                        "suspended_at": None,
                        "version": 1,
                    }
                )
        # Personal data: sealed and hashed with the service's own keys, as registration does.
        started = time.perf_counter()
        for row, (id_number, phone) in zip(practitioner_rows, clear, strict=True):
            sealed = workforce.seal(id_number, context=ID_NUMBER)
            row["id_hash"] = workforce.hash_id(id_number)
            row["id_number_key_id"], row["id_number_encrypted"] = sealed.key_id, sealed.ciphertext
            row["id_number_masked"] = mask(id_number)
            if phone:
                sealed_phone = workforce.seal(phone, context=PHONE)
                row["phone_key_id"], row["phone_encrypted"] = sealed_phone.key_id, sealed_phone.ciphertext
                row["phone_masked"] = mask(phone)
            else:
                row["phone_key_id"] = row["phone_encrypted"] = row["phone_masked"] = None
        timings["encryption"] += time.perf_counter() - started
        fresh = [r for r in practitioner_rows if r["id_hash"] not in taken]
        if len(fresh) < len(practitioner_rows):  # already registered by an earlier seeding: skip
            keep = {r["id"] for r in fresh}
            certificates = [c for c in certificates if c["practitioner_id"] in keep]
            employments = [e for e in employments if e["practitioner_id"] in keep]
            checks = [c for c in checks if c["practitioner_id"] in keep]
            rechecks = [r for r in rechecks if r["practitioner_id"] in keep]
            practitioner_rows = fresh
        persons = [{"id_hash": r["id_hash"], "created_at": r["created_at"]} for r in practitioner_rows]
        return {
            Person: persons,
            Practitioner: practitioner_rows,
            Certificate: certificates,
            Employment: employments,
            BackgroundCheck: checks,
            Recheck: rechecks,
        }

    async def write(tables: dict[Any, list[dict[str, object]]], done: int) -> None:
        async with engine.begin() as connection:
            for model, table_rows in tables.items():  # in foreign-key order
                if table_rows:
                    await connection.execute(insert(model), table_rows)
        report.practitioners += len(tables[Practitioner])
        report.certificates += len(tables[Certificate])
        report.employments += sum(1 for e in tables[Employment] if e["status"] == ACTIVE)
        report.ended_employments += sum(1 for e in tables[Employment] if e["status"] == ENDED)
        report.directors += sum(
            1 for e in tables[Employment] if e["status"] == ACTIVE and e["role"] == "director"
        )
        report.background_checks += len(tables[BackgroundCheck])
        report.rechecks += len(tables[Recheck])
        report.provisional += sum(1 for e in tables[Employment] if e.get("standing") == "provisional")
        lapsed_holders = {
            c["practitioner_id"]
            for c in tables[Certificate]
            if c["type"] == HEALTH_CERTIFICATE and c["expires_on"] < today  # type: ignore[operator]
        }
        report.health_lapsed += sum(
            1 for e in tables[Employment] if e["status"] == ACTIVE and e["practitioner_id"] in lapsed_holders
        )
        if progress:
            progress("practitioners", done, practitioners)

    # Building a batch (Python) and writing the one before (mostly SQLite's own work, outside the
    # GIL) overlap; rows are still built in order, so the seed decides them.
    writing: asyncio.Task[None] | None = None
    try:
        for start in range(0, practitioners, BATCH):
            tables = await asyncio.to_thread(build, assignment[start : start + BATCH])
            if writing is not None:
                await writing
            writing = asyncio.create_task(write(tables, min(start + BATCH, practitioners)))
    finally:
        if writing is not None:
            await writing
    lap("practitioners, certificates, employments")
    report.seconds["of which encryption and hashing"] = round(timings["encryption"], 2)

    # --- staffing.assessed for every approved facility, by the service's own verdict ---------------
    report.staffing_events, report.out_of_ratio = await announce_staffing(
        engine, workforce=workforce, facility_ids=[str(f["facility_id"]) for f in approved],
        namespace=namespace, progress=progress,
    )  # fmt: skip
    await refresh_planner_statistics(engine)
    lap("staffing events and statistics")
    return report


def _check(
    check_id: str, practitioner_id: str, employment_id: str | None, reason: str, at: datetime, now: datetime
) -> dict[str, object]:
    return {
        "id": check_id,
        "practitioner_id": practitioner_id,
        "employment_id": employment_id,
        "reason": reason,
        "status": "clear",
        "requested_by": SEED_BY,
        "requested_at": at,
        "answered_by": SEED_BY,
        "answered_at": min(at + timedelta(days=3), now),
        "answer_note": None,
        "resolved_by": None,
        "resolved_at": None,
        "resolution_note": None,
    }


async def announce_staffing(
    engine: AsyncEngine,
    *,
    workforce: Workforce,
    facility_ids: list[str],
    namespace: str = "cradle",
    progress: Progress | None = None,
) -> tuple[int, int]:
    """What `staffing.announce` publishes after a hire, for many facilities at once: their
    staffing by the service's own verdict (`staffing.staffing_of`), one `staffing.assessed` each,
    500 facilities to a transaction and one executemany into the outbox (announcing facility by
    facility costs a statement per event). Returns how many events, and how many of them say the
    facility is out of ratio."""
    info = outbox_session_info(OutboxWriter(outbox, Namespace(namespace), "/cradle/workforce"))
    info[WORKFORCE_SESSION_KEY] = workforce
    if progress:
        progress("staffing events", 0, len(facility_ids))
    written = out_of_ratio = 0
    for start in range(0, len(facility_ids), 500):
        chunk = facility_ids[start : start + 500]
        async with AsyncSession(engine, info=info) as session, session.begin():
            facilities = (
                (
                    await session.execute(
                        select(FacilityProjection).where(FacilityProjection.facility_id.in_(chunk))
                    )
                )
                .scalars()
                .all()
            )
            carers = await staffing.active_carers(
                session, workforce.settings.caring_roles, [f.facility_id for f in facilities]
            )
            assessed_at = datetime.now(UTC)
            events = []
            for facility in sorted(facilities, key=lambda f: f.facility_id):
                verdict = staffing.staffing_of(workforce, facility, carers)
                events.append(
                    StaffingAssessed(
                        facility_id=facility.facility_id,
                        district_code=facility.district_code,
                        met=verdict.met,
                        shortfall=sum(max(0, c.carers_required - c.carers) for c in verdict.classes),
                        classes=[
                            AgeClassStaffingFacts(
                                age_class=c.age_class.value,
                                children=c.children,
                                carers=c.carers,
                                carers_required=c.carers_required,
                            )
                            for c in verdict.classes
                        ],
                        assessed_at=assessed_at,
                    )
                )
            await emit_many(session, events)
            written += len(events)
            out_of_ratio += sum(1 for event in events if not event.met)
        if progress:
            progress("staffing events", min(start + 500, len(facility_ids)), len(facility_ids))
    return written, out_of_ratio


async def seed_step(run: SeedRun, count: int) -> None:
    """`cradle seed-demo`'s workforce step: `count` practitioners, with the data directory's keys."""
    clock = time.perf_counter()
    settings = WorkforceSettings(
        database_url=database_url("workforce", run.base),
        internal_verify_key=run.keys.internal_verify_key,
        **run.keys.pii["workforce"].settings(),  # type: ignore[arg-type]
    )
    async with run.engine("workforce") as engine:
        staff = await seed_workforce(
            engine,
            workforce=Workforce.from_settings(settings),
            facilities=run.facility_events,
            practitioners=count,
            seed=run.seed,
            namespace=run.namespace,
            progress=run.steps.report,
        )
    seconds = time.perf_counter() - clock
    run.laps.append(("workforce", seconds))
    run.laps.extend((f"  {name}", seconds) for name, seconds in staff.seconds.items())
    run.console.print(
        f"[green]{staff.practitioners:,}[/] practitioners ({staff.certificates:,} certificates, "
        f"{staff.employments:,} active employments incl. {staff.directors:,} directors, "
        f"{staff.ended_employments:,} ended), {staff.facilities:,} projected facilities, "
        f"{staff.staffing_events:,} staffing events ({staff.out_of_ratio:,} out of ratio), "
        f"written in {seconds:.1f} s"
    )
