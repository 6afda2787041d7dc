"""`cradle seed-demo`'s complaints (投诉) on both databases: about one approved facility in twelve,
routed to its district, deadlines from Shanghai's working calendar, most answered (some founded),
complainants sealed and never in an event, each step's event in the outbox; a second run adds
nothing, and the escalation job finds exactly the late ones the seed left for it."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import async_sessionmaker

from cradle.seed.complaints import ANSWERS, SHARE, seed_complaints
from cradle.seed.monitoring import seed_monitoring
from cradle.seed.registry import seed_facilities
from services.monitoring.config import MonitoringSettings
from services.monitoring.jobs import escalate_late_complaints
from services.monitoring.models import Complaint, outbox
from services.monitoring.models import Facility as WatchedFacility
from services.monitoring.service.complaint_access import NAME, PHONE, Complaints
from shared.clock import as_utc
from shared.db import make_engine
from shared.events.envelope import CloudEvent
from shared.events.outbox import OutboxWriter, outbox_session_info
from shared.events.streams import Namespace
from shared.workcalendar import WorkCalendar
from tests.conftest import service_settings
from tests.support import DatabaseFactory


async def test_seeded_complaints_are_plausible_and_left_late_for_the_job(
    databases: DatabaseFactory, keys: dict[str, Any]
) -> None:
    settings: MonitoringSettings = service_settings(
        MonitoringSettings, url=await databases.fresh("monitoring"), nats_url="", namespace="demo", keys=keys
    )
    desk = Complaints.from_settings(settings)
    registry = make_engine(await databases.fresh("registry"))
    watch = make_engine(settings.database_url)
    try:
        events: list[CloudEvent] = []
        await seed_facilities(registry, count=600, seed=7, events_out=events)
        await seed_monitoring(watch, facilities=events, cameras=0, seed=7)
        report = await seed_complaints(watch, desk=desk, namespace="demo", seed=7)
        again = await seed_complaints(watch, desk=desk, namespace="demo", seed=7)
        async with watch.connect() as connection:
            facilities = {
                f.id: f for f in (await connection.execute(select(WatchedFacility.__table__))).all()
            }
            rows = (await connection.execute(select(Complaint.__table__))).all()
            sent = [
                CloudEvent.model_validate_json(payload)
                for payload in (await connection.execute(select(outbox.c.payload))).scalars()
            ]
        approved = {i for i, f in facilities.items() if f.status == "approved"}

        assert (again.lodged, again.answered) == (0, 0)  # seeded once per database
        assert report.lodged == len(rows) and report.answered == sum(r.status == "answered" for r in rows)
        about = {r.facility_id for r in rows}
        assert about <= approved
        assert len(approved) / (2 * SHARE) < len(about) < 2 * len(approved) / SHARE
        calendar = WorkCalendar(settings.working_calendar)
        for r in rows:
            assert r.district_code == facilities[r.facility_id].district_code
            lodged_at = as_utc(r.lodged_at)
            assert as_utc(r.acknowledge_due_at) == calendar.deadline(lodged_at, 1)
            assert as_utc(r.answer_due_at) == calendar.deadline(lodged_at, 15)
            if r.status == "answered":
                assert r.outcome in ANSWERS and r.answer == ANSWERS[r.outcome]
                assert lodged_at <= as_utc(r.answered_at) <= datetime.now(UTC)
            for key_id, sealed, context in (
                (r.name_key_id, r.name_encrypted, NAME),
                (r.phone_key_id, r.phone_encrypted, PHONE),
            ):
                if sealed is not None:
                    clear = desk.open(key_id, sealed, context=context)
                    assert clear and clear not in sealed
        assert 0.5 * len(rows) < report.answered < len(rows)
        assert 0 < report.founded < 0.7 * report.answered
        assert {r.complainant_kind for r in rows} == {"parent", "public", "bureau"}

        # Each step's event waits in the outbox; none names the complainant or repeats the words.
        by_type = Counter(e.type.rsplit(".", 1)[-1] for e in sent if ".complaint." in e.type)
        assert by_type.get("lodged") == len(rows)
        assert by_type.get("answered") == report.answered
        # An answer acknowledges a complaint not acknowledged yet, without an event of its own (at the
        # answer's instant, which an acknowledgement just before an answer may share).
        acknowledged = [r for r in rows if r.acknowledged_at is not None]
        before_answer = [
            r for r in acknowledged if r.answered_at is None or r.acknowledged_at < r.answered_at
        ]
        assert len(before_answer) <= by_type["acknowledged"] <= len(acknowledged)
        words = {r.description for r in rows}
        for event in sent:
            text = json.dumps(event.data, ensure_ascii=False)
            assert not any(w in text for w in words) and "女士" not in text and "先生" not in text

        # Left for the escalation job: each open complaint past a deadline, once.
        now = datetime.now(UTC)
        late = [
            r
            for r in rows
            if r.status != "answered"
            and (
                (r.acknowledged_at is None and as_utc(r.acknowledge_due_at) < now)
                or as_utc(r.answer_due_at) < now
            )
        ]
        assert late, "a four-month city has complaints past a deadline"
        info = outbox_session_info(OutboxWriter(outbox, Namespace("demo"), "/cradle/monitoring"))
        maker = async_sessionmaker(watch, expire_on_commit=False, info=info)
        assert await escalate_late_complaints(maker=maker, now=now) == len(late)
        assert await escalate_late_complaints(maker=maker, now=now) == 0
    finally:
        await registry.dispose()
        await watch.dispose()
