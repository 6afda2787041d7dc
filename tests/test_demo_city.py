"""`cradle seed-demo`'s workforce and monitoring at a small scale: the projections are what the
registry's events build (and those events, delivered later, change nothing), ID numbers are valid,
unique, encrypted and found by keyed hash, staffing is in ratio for most facilities, and the
command itself seeds every service from the data directory's own keys."""

from __future__ import annotations

import sqlite3
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from cradle.cli import SCALES, Scale, app
from cradle.layout import load_or_create_keys
from cradle.seed.monitoring import seed_monitoring
from cradle.seed.registry import seed_facilities
from cradle.seed.workforce import seed_workforce
from services.monitoring import handlers as monitoring_handlers
from services.monitoring.config import MonitoringSettings
from services.monitoring.models import Alert, Camera
from services.monitoring.models import Facility as WatchedFacility
from services.monitoring.models import outbox as monitoring_outbox
from services.monitoring.service.complaint_access import NAME as COMPLAINANT_NAME
from services.monitoring.service.complaint_access import Complaints
from services.registry.models import Facility
from services.registry.models import outbox as registry_outbox
from services.workforce import handlers as workforce_handlers
from services.workforce.config import WorkforceSettings
from services.workforce.jobs import run_due_jobs
from services.workforce.models import (
    BackgroundCheck,
    Certificate,
    Employment,
    FacilityProjection,
    Person,
    Practitioner,
    Recheck,
)
from services.workforce.models import outbox as workforce_outbox
from services.workforce.service.common import ID_NUMBER, WORKFORCE_SESSION_KEY, Workforce
from services.workforce.service.rechecks import run_annual_recheck
from services.workforce.service.staffing import facility_staffing
from shared.clock import shanghai_today
from shared.db import make_engine
from shared.events.envelope import CloudEvent
from shared.events.outbox import OutboxWriter, outbox_session_info
from shared.events.streams import Namespace
from shared.pii import mask, validate_national_id
from tests.conftest import service_settings
from tests.support import DatabaseFactory

AGE_CLASSES = ("infant", "toddler", "preschool")


async def _rows(engine: AsyncEngine, table: Any) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(select(table))).all())


async def _count(engine: AsyncEngine, model: Any, *where: Any) -> int:
    async with engine.connect() as connection:
        return (await connection.execute(select(func.count()).select_from(model).where(*where))).scalar_one()


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def test_seeded_workforce_and_monitoring_match_the_registry(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    settings: WorkforceSettings = service_settings(
        WorkforceSettings, url=await databases.fresh("workforce"), nats_url="", namespace="demo", keys=keys
    )
    workforce = Workforce.from_settings(settings)
    registry = make_engine(await databases.fresh("registry"))
    staff_db = make_engine(settings.database_url)
    watch_db = make_engine(await databases.fresh("monitoring"))
    try:
        events: list[CloudEvent] = []
        assert await seed_facilities(registry, count=120, seed=5, events_out=events) == 120
        staff = await seed_workforce(
            staff_db, workforce=workforce, facilities=events, practitioners=1500, seed=5, namespace="demo"
        )
        watch = await seed_monitoring(watch_db, facilities=events, cameras=800, seed=5)

        facilities = {f.id: f for f in await _rows(registry, Facility.__table__)}
        approved = {i for i, f in facilities.items() if f.status == "approved"}
        assert len(facilities) == 120 and 90 <= len(approved) < 120

        # --- counts ----------------------------------------------------------------------------
        assert staff.practitioners == 1500 == await _count(staff_db, Practitioner)
        assert await _count(staff_db, Person) == 1500
        assert staff.certificates == await _count(staff_db, Certificate) >= 1000
        assert staff.employments == await _count(staff_db, Employment, Employment.status == "active")
        assert staff.directors == len(approved)  # enough practitioners for every post here
        assert staff.background_checks == await _count(staff_db, BackgroundCheck)
        assert staff.rechecks == await _count(staff_db, Recheck) == staff.employments
        assert watch.cameras == 800 == await _count(watch_db, Camera)

        # --- the projections are the registry's rows, as its events describe them ---------------
        sent = {
            e.subject: e
            for e in (
                CloudEvent.model_validate_json(payload)
                for payload in [r.payload for r in await _rows(registry, registry_outbox)]
            )
        }
        projected = {p.facility_id: p for p in await _rows(staff_db, FacilityProjection.__table__)}
        watched = {w.id: w for w in await _rows(watch_db, WatchedFacility.__table__)}
        assert set(projected) == set(watched) == set(facilities) == set(sent)
        for facility_id, f in facilities.items():
            p, w, event = projected[facility_id], watched[facility_id], sent[facility_id]
            assert (p.name, p.district_code, p.town_code, p.status, p.owner_client_id, p.version) == (
                f.name,
                f.district_code,
                f.town_code,
                f.status,
                f.owner_client_id,
                f.version,
            )
            for a in AGE_CLASSES:
                assert getattr(p, f"capacity_{a}") == getattr(f, f"capacity_{a}")
                assert getattr(p, f"enrolment_{a}") == getattr(f, f"enrolled_{a}")
            assert (w.name, w.kind, w.district_code, w.town_code, w.status, w.version) == (
                f.name,
                f.kind,
                f.district_code,
                f.town_code,
                f.status,
                f.version,
            )
            assert w.opening_hours == f.opening_hours
            assert w.enrolled == sum(getattr(f, f"enrolled_{a}") for a in AGE_CLASSES)
            assert _utc(p.source_event_at) == _utc(w.source_event_at) == event.time

        # The registry's events, delivered now through both services' handlers, change nothing.
        before = (projected, watched, await _count(staff_db, workforce_outbox))
        for engine, handle in (
            (staff_db, workforce_handlers.HANDLERS),
            (watch_db, monitoring_handlers.HANDLERS),
        ):
            async with AsyncSession(engine, info={WORKFORCE_SESSION_KEY: workforce}) as session:
                async with session.begin():
                    for event in sent.values():
                        await handle[event.type](event, session)
        after = (
            {p.facility_id: p for p in await _rows(staff_db, FacilityProjection.__table__)},
            {w.id: w for w in await _rows(watch_db, WatchedFacility.__table__)},
            await _count(staff_db, workforce_outbox),
        )
        assert after == before

        # --- ID numbers: valid, unique, encrypted, found by keyed hash --------------------------
        practitioners = await _rows(staff_db, Practitioner.__table__)
        clear = [
            workforce.open(r.id_number_key_id, r.id_number_encrypted, context=ID_NUMBER)
            for r in practitioners
        ]
        assert len(set(clear)) == len(clear) == 1500
        for row, number in zip(practitioners, clear, strict=True):
            assert validate_national_id(number) == number
            assert not any(isinstance(v, str) and number in v for v in row), "a clear ID number is stored"
            assert row.id_hash == workforce.hash_id(number) and row.id_number_masked == mask(number)
        async with staff_db.connect() as connection:
            found = await connection.execute(
                select(Practitioner.id).where(Practitioner.id_hash == workforce.hash_id(clear[7]))
            )
            assert found.scalar_one() == practitioners[7].id

        # --- posts: at approved facilities, certified, in ratio for most ------------------------
        employments = [e for e in await _rows(staff_db, Employment.__table__) if e.status == "active"]
        assert {e.facility_id for e in employments} == approved
        assert Counter(e.facility_id for e in employments if e.role == "director") == dict.fromkeys(
            approved, 1
        )
        assert len({e.practitioner_id for e in employments}) == len(employments)
        today = shanghai_today()
        certificates = await _rows(staff_db, Certificate.__table__)
        valid = {(c.practitioner_id, c.type) for c in certificates if c.issued_on <= today <= c.expires_on}
        for e in employments:
            accepted = settings.role_certificates.get(e.role, [])
            assert not accepted or any((e.practitioner_id, t) in valid for t in accepted), e.role
        staffing_events = [
            CloudEvent.model_validate_json(r.payload) for r in await _rows(staff_db, workforce_outbox)
        ]
        assert staff.staffing_events == len(staffing_events) == len(approved)
        assessed = {e.data["facility_id"]: e.data for e in staffing_events}
        assert set(assessed) == approved
        in_ratio = sum(1 for data in assessed.values() if data["met"])
        assert in_ratio >= 0.85 * len(approved)
        assert len(approved) - in_ratio == staff.out_of_ratio == staff.facilities_short  # all posts filled
        # The events say what the service's own staffing answer says.
        async with AsyncSession(staff_db) as session:
            for facility_id in sorted(approved)[:10]:
                answer = await facility_staffing(
                    session=session,
                    workforce=workforce,
                    facility=await session.get(FacilityProjection, facility_id),
                )
                data = assessed[facility_id]
                assert data["met"] == answer.met
                assert [(c["age_class"], c["children"], c["carers"]) for c in data["classes"]] == [
                    (c.age_class.value, c.children, c.carers) for c in answer.classes
                ]
        # This year's re-check is done: the job finds nobody due.
        maker = async_sessionmaker(staff_db, expire_on_commit=False)
        assert await run_annual_recheck(maker=maker, workforce=workforce, now=datetime.now(UTC)) == 0

        # --- cameras: at approved facilities, about ten each ------------------------------------
        cameras = await _rows(watch_db, Camera.__table__)
        per_facility = Counter(c.facility_id for c in cameras)
        assert set(per_facility) == approved and min(per_facility.values()) >= 1
        assert len({(c.facility_id, c.external_id) for c in cameras}) == len(cameras)

        # --- health certificates (健康合格证明): every active employee's valid, but a few lapsed;
        # the service's daily job flags those employments once and tells facility and district ----
        holders = {c.practitioner_id for c in certificates if c.type == "health"}
        assert holders >= {e.practitioner_id for e in employments}
        assert 0 < staff.health_lapsed < 0.05 * len(employments)
        assert not any(e.health_flagged_on for e in employments)  # the job's to flag, not the seed's
        assert 0 < staff.provisional < 0.05 * len(employments)
        assert all(e.standing in ("cleared", "provisional") for e in employments)
        pending = {
            c.employment_id for c in await _rows(staff_db, BackgroundCheck.__table__) if c.status == "pending"
        }
        assert {e.id for e in employments if e.standing == "provisional"} == pending
        assert 0.8 * len(employments) < sum(e.social_insurance_paid for e in employments) < len(employments)
        info = outbox_session_info(OutboxWriter(workforce_outbox, Namespace("demo"), "/cradle/workforce"))
        jobs = async_sessionmaker(
            staff_db, expire_on_commit=False, info={**info, WORKFORCE_SESSION_KEY: workforce}
        )
        first = await run_due_jobs(maker=jobs, workforce=workforce, now=datetime.now(UTC))
        assert first.health_flagged == staff.health_lapsed
        assert (
            await run_due_jobs(maker=jobs, workforce=workforce, now=datetime.now(UTC))
        ).health_flagged == 0
        flagged_events = [
            event
            for event in (
                CloudEvent.model_validate_json(r.payload) for r in await _rows(staff_db, workforce_outbox)
            )
            if event.type.endswith("workforce.employment.flagged")
        ]
        assert len(flagged_events) == staff.health_lapsed
        # Delivered to monitoring: a high alert each, for the facility's district and operator.
        watch_info = outbox_session_info(
            OutboxWriter(monitoring_outbox, Namespace("demo"), "/cradle/monitoring")
        )
        async with AsyncSession(watch_db, info=watch_info) as session, session.begin():
            for event in flagged_events:
                await monitoring_handlers.HANDLERS["cradle.workforce.employment.flagged"](event, session)
        raised = [a for a in await _rows(watch_db, Alert.__table__) if a.type == "employment_flagged"]
        assert len(raised) == staff.health_lapsed and {a.severity for a in raised} == {"high"}
    finally:
        for engine in (registry, staff_db, watch_db):
            await engine.dispose()


def test_the_command_seeds_every_service_with_the_data_directory_keys(tmp_path: Path) -> None:
    env: dict[str, str | None] = {
        f"{name}_{suffix}": None
        for name in ("GATEWAY", "REGISTRY", "WORKFORCE", "MONITORING", "GUIDANCE")
        for suffix in ("DATABASE_URL", "PII_KEYS", "PII_ACTIVE_KEY_ID", "PII_HMAC_KEY")
    }
    env |= {"CRADLE_DATA_DIR": str(tmp_path), "CRADLE_EVENT_NAMESPACE": None, "COLUMNS": "160"}
    result = CliRunner().invoke(
        app, ["seed-demo", "--scale", "small", "--practitioners", "900", "--families", "150"], env=env
    )
    assert result.exit_code == 0, result.output
    small = SCALES[Scale.small]
    for step in ("migrations", "registry", "workforce", "monitoring", "guidance", "total"):
        assert step in result.output

    def count(db: str, table: str, where: str = "1") -> int:
        with sqlite3.connect(tmp_path / f"{db}.db") as connection:
            return connection.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()[0]

    assert count("registry", "facility") == small["facilities"]  # from the preset
    assert count("workforce", "facility_projection") == small["facilities"]
    assert count("monitoring", "facility") == small["facilities"]
    assert count("workforce", "practitioner") == 900  # given explicitly
    assert count("monitoring", "camera") == small["cameras"]
    assert count("guidance", "family") == 150
    approved = count("registry", "facility", "status = 'approved'")
    assert count("workforce", "employment", "status = 'active' AND role = 'director'") == approved
    assert count("workforce", "outbox") == approved  # one staffing.assessed each

    # The practitioners' ID numbers are sealed with the data directory's workforce keys.
    pii = load_or_create_keys(tmp_path).pii["workforce"]
    workforce = Workforce.from_settings(
        WorkforceSettings(
            database_url="sqlite://",
            internal_verify_key=load_or_create_keys(tmp_path).internal_verify_key,
            **pii.settings(),  # type: ignore[arg-type]
        )  # fmt: skip
    )
    with sqlite3.connect(tmp_path / "workforce.db") as connection:
        key_id, sealed, id_hash = connection.execute(
            "SELECT id_number_key_id, id_number_encrypted, id_hash FROM practitioner LIMIT 1"
        ).fetchone()
    assert workforce.hash_id(workforce.open(key_id, sealed, context=ID_NUMBER)) == id_hash

    # Complaints lodged at about one approved facility in twelve, names sealed with monitoring's keys.
    assert 0 < count("monitoring", "complaint") <= approved
    desk = Complaints.from_settings(
        MonitoringSettings(
            database_url="sqlite://",
            internal_verify_key=load_or_create_keys(tmp_path).internal_verify_key,
            **load_or_create_keys(tmp_path).pii["monitoring"].settings(),  # type: ignore[arg-type]
        )  # fmt: skip
    )
    with sqlite3.connect(tmp_path / "monitoring.db") as connection:
        name_key, name_sealed = connection.execute(
            "SELECT name_key_id, name_encrypted FROM complaint WHERE name_encrypted IS NOT NULL LIMIT 1"
        ).fetchone()
    assert desk.open(name_key, name_sealed, context=COMPLAINANT_NAME)[-2:] in ("女士", "先生")
