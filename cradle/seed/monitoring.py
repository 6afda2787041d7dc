"""Demo data at city scale for monitoring: its facility projection as the registry's events would
build it, and the cameras of the approved facilities (about ten each, more for bigger ones; the
entrance, kitchen and outdoor area first, then classrooms and sleeping rooms), each with an
`external_id` unique in its facility. Written with SQLAlchemy Core executemany in large batches
(BASELINES.md). Cameras start `never_seen`: they are heard from once a video system sends their
events. `camera.registered` has no consumer and is not written for seeded cameras; staffing
verdicts arrive as the workforce's `staffing.assessed` events. Deterministic for a seed."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from cradle.layout import database_url
from cradle.seed import SeedRun, insert_missing, upsert_newer
from cradle.seed.complaints import seed_complaints
from services.monitoring.config import MonitoringSettings
from services.monitoring.handlers import FacilityFacts
from services.monitoring.models import Camera, Facility
from services.monitoring.service.common import as_utc
from services.monitoring.service.complaint_access import Complaints
from shared.db import refresh_planner_statistics
from shared.events.envelope import CloudEvent

BATCH = 5000
SEED_BY = "seed-demo"
# Projection columns only the consumer writes (from `staffing.assessed`), never the seeder.
CONSUMER_ONLY = frozenset({"id", "staffing_in_ratio", "staffing_shortfall"})
# Where a facility's cameras go, in the order they are installed.
LOCATIONS = (
    "entrance",
    "classroom",
    "sleeping_room",
    "kitchen",
    "outdoor",
    "classroom",
    "dining_room",
    "corridor",
    "sleeping_room",
    "toilet_area",
    "classroom",
    "corridor",
)
LABELS = {
    "entrance": "大门",
    "classroom": "活动室",
    "sleeping_room": "睡眠室",
    "kitchen": "厨房",
    "dining_room": "餐厅",
    "corridor": "走廊",
    "outdoor": "户外活动场地",
    "toilet_area": "盥洗室外",
    "other": "其他",
}
VENDORS = (("海康威视", "HIK", 5), ("大华", "DH", 3), ("宇视", "UNV", 1), ("天地伟业", "TDWY", 1))

Progress = Callable[[str, int, int], None]  # (step, done so far, step total)


@dataclass
class MonitoringReport:
    facilities: int = 0  # projection rows written
    cameras: int = 0
    facilities_with_cameras: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def projection_row(event: CloudEvent, now: datetime) -> dict[str, object]:
    """The row `handlers.on_facility_changed` makes of this event for a facility it has not seen:
    the same facts, version and `source_event_at`, so the event itself, delivered later, is not
    newer than the row and changes nothing."""
    facts = FacilityFacts.model_validate(event.data)
    enrolled = facts.enrolment
    return {
        "id": facts.facility_id,
        "name": facts.name,
        "kind": facts.kind,
        "district_code": facts.district_code,
        "town_code": facts.town_code,
        "status": facts.status,
        "owner_client_id": facts.owner_client_id,
        "opening_hours": [period.model_dump() for period in facts.opening_hours],
        "enrolled": enrolled.infant + enrolled.toddler + enrolled.preschool if enrolled else 0,
        "staffing_in_ratio": None,
        "staffing_shortfall": 0,
        "version": facts.version,
        "source_event_at": as_utc(event.time),
        "updated_at": now,
    }


def newest_per_facility(events: Sequence[CloudEvent]) -> list[CloudEvent]:
    """Of several events about one facility, the one the handler would keep: highest (version, time)."""
    newest: dict[str, CloudEvent] = {}
    for event in events:
        facility_id = str(event.data["facility_id"])
        kept = newest.get(facility_id)
        position = (int(event.data.get("version") or 0), as_utc(event.time))  # type: ignore[call-overload]
        if kept is None or position > (int(kept.data.get("version") or 0), as_utc(kept.time)):  # type: ignore[call-overload]
            newest[facility_id] = event
    return list(newest.values())


def _allocate(total: int, weights: list[float]) -> list[int]:
    """`total` split over `weights` (largest remainders), at least one each while there are enough."""
    if not weights:
        return []
    floor = 1 if total >= len(weights) else 0
    rest = total - floor * len(weights)
    scale = rest / sum(weights)
    shares = [w * scale for w in weights]
    counts = [floor + int(s) for s in shares]
    by_remainder = sorted(range(len(weights)), key=lambda i: shares[i] - int(shares[i]), reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


async def seed_monitoring(
    engine: AsyncEngine,
    *,
    facilities: Sequence[CloudEvent],
    cameras: int,
    seed: int = 2026,
    progress: Progress | None = None,
) -> MonitoringReport:
    """Write the projection of the registry's `facilities` (their facility events), then `cameras`
    cameras over the approved ones."""
    rng = random.Random(f"monitoring:{seed}")
    report = MonitoringReport()
    now = datetime.now(UTC)
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        report.seconds[name] = round(time.perf_counter() - clock, 2)
        clock = time.perf_counter()

    # --- the facility projection, exactly as the registry's events build it -----------------------
    # Upserted, newer row wins (version, event time): the consumer may have written some already
    # (`cradle up` running), or an earlier seeding. The staffing verdict is the consumer's alone.
    newest = newest_per_facility(facilities)
    rows = [projection_row(event, now) for event in newest]
    facts = tuple(column for column in rows[0] if column not in CONSUMER_ONLY) if rows else ()
    if progress:
        progress("monitoring projection", 0, len(rows))
    for start in range(0, len(rows), BATCH):
        async with engine.begin() as connection:
            await upsert_newer(
                connection,
                Facility.__table__,  # type: ignore[attr-defined]
                rows[start : start + BATCH],
                key="id",
                facts=facts,
            )
        if progress:
            progress("monitoring projection", min(start + BATCH, len(rows)), len(rows))
    report.facilities = len(rows)
    lap("facility projection")

    # --- cameras at the approved facilities, more where more children are -------------------------
    approved = [(event, row) for event, row in zip(newest, rows, strict=True) if row["status"] == "approved"]
    counts = _allocate(cameras, [4.0 + int(row["enrolled"]) / 8 for _, row in approved])  # type: ignore[call-overload]
    vendors, prefixes, weights = zip(*VENDORS, strict=True)
    batch: list[dict[str, object]] = []
    if progress:
        progress("cameras", 0, cameras)

    async def flush() -> None:
        async with engine.begin() as connection:
            await insert_missing(connection, Camera.__table__, batch)  # type: ignore[attr-defined]
        report.cameras += len(batch)
        batch.clear()
        if progress:
            progress("cameras", report.cameras, cameras)

    for (event, row), count in zip(approved, counts, strict=True):
        if not count:
            continue
        report.facilities_with_cameras += 1
        approved_at = event.data.get("approved_at")
        since = as_utc(datetime.fromisoformat(str(approved_at)) if approved_at else event.time)
        vendor = rng.choices(range(len(vendors)), weights=weights)[0]
        installed = min(since + timedelta(days=rng.randint(0, 30), hours=rng.randint(0, 8)), now)
        recorder = rng.randrange(16**8)  # the facility's video recorder, its cameras its channels
        seen: dict[str, int] = {}
        for n in range(count):
            location = LOCATIONS[n % len(LOCATIONS)] if n < 3 * len(LOCATIONS) else "other"
            seen[location] = seen.get(location, 0) + 1
            batch.append(
                {
                    "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                    "facility_id": row["id"],
                    "location": location,
                    "vendor": vendors[vendor],
                    "external_id": f"{prefixes[vendor]}-{recorder:08X}-CH{n + 1:03d}",
                    "label": f"{LABELS[location]} {seen[location]}",
                    "active": True,
                    "registered_by": SEED_BY,
                    "registered_at": min(installed + timedelta(minutes=n), now),
                    "last_seen_at": None,
                    "last_event_type": None,
                    "version": 1,
                }
            )
            if len(batch) >= BATCH:
                await flush()
    if batch:
        await flush()
    await refresh_planner_statistics(engine)
    lap("cameras and statistics")
    return report


async def seed_step(run: SeedRun, count: int) -> None:
    """`cradle seed-demo`'s monitoring step: the facility projection and `count` cameras."""
    clock = time.perf_counter()
    async with run.engine("monitoring") as engine:
        watch = await seed_monitoring(
            engine, facilities=run.facility_events, cameras=count, seed=run.seed, progress=run.steps.report
        )
        settings = MonitoringSettings(
            database_url=database_url("monitoring", run.base),
            internal_verify_key=run.keys.internal_verify_key,
            **run.keys.pii["monitoring"].settings(),  # type: ignore[arg-type]
        )
        filed = await seed_complaints(
            engine, desk=Complaints.from_settings(settings), namespace=run.namespace, seed=run.seed
        )
    seconds = time.perf_counter() - clock
    run.laps.append(("monitoring", seconds))
    run.laps.extend((f"  {name}", seconds) for name, seconds in watch.seconds.items())
    run.console.print(
        f"[green]{watch.cameras:,}[/] cameras at {watch.facilities_with_cameras:,} facilities, "
        f"{watch.facilities:,} projected facilities, written in {seconds:.1f} s; "
        f"{filed.lodged:,} complaints ({filed.answered:,} answered, {filed.founded:,} founded)"
    )
