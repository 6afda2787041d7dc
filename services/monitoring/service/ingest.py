"""CCTV ingest at city scale (20,000+ cameras): a batch is validated event by event, written with one
INSERT (PostgreSQL: … ON CONFLICT DO NOTHING RETURNING; SQLite: a plain one, see `_insert_sqlite`;
no ORM object, no await per event), and only then acknowledged. The few events that alert are
handled in the same transaction, so "accepted" always means "stored, and its alert raised".

Cameras and facilities are looked up through a short-lived cache (one query per batch for what it
lacks). A camera's last-seen time is soft state derived from the stored events: it is gathered in
memory and written every `presence_flush_seconds` (and before the offline check), instead of one
UPDATE per event on the hot path."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from hashlib import md5
from typing import Any

import orjson
import structlog
from prometheus_client import Counter
from pydantic import TypeAdapter, ValidationError
from sqlalchemy import bindparam, insert, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from services.monitoring.config import MonitoringSettings
from services.monitoring.events import AlertRaised
from services.monitoring.models import Alert, AlertTransition, Camera, CctvEvent, Facility
from services.monitoring.schemas import CctvEventIn, IngestReply, RejectedEvent
from services.monitoring.service.alerts import ACTIVE_STATUSES, ALERTING_SEVERITIES
from shared.bounded import raise_if_cancelling, settle, stop_task
from shared.clock import as_utc, new_id, utcnow
from shared.db import is_sqlite, session_scope, writer_turn
from shared.errors import FieldError, field_errors
from shared.events.outbox import emit_many
from shared.identity import Identity
from shared.observability import Metrics

log = structlog.get_logger("cradle.monitoring.ingest")

_BATCH = TypeAdapter(list[CctvEventIn])
CACHE_SECONDS = 60.0
EVENT_COLUMNS = "id_ms, dedup_key, event_id, camera_id, facility_id, type, occurred_at, received_at, payload"
COLLIDES = "shares its storage key with another stored event: send it again with another event_id"

_PG_INSERT = f"""
INSERT INTO cctv_event ({EVENT_COLUMNS})
SELECT m, k, e, c, f, t, o, $6, p::json
FROM unnest($9::bigint[], $8::bigint[], $1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[],
            $5::timestamptz[], $7::text[])
    AS u(m, k, e, c, f, t, o, p)
ON CONFLICT (id_ms, dedup_key) DO NOTHING
RETURNING event_id, facility_id
"""


def clean_batch(body: bytes) -> list[CctvEventIn] | None:
    """A body that is an array of valid events, read and validated in one pass in pydantic-core (no
    Python objects for the JSON first): the common case. None for anything else."""
    try:
        return _BATCH.validate_json(body)
    except ValidationError:
        return None


def dedup_key(facility_id: str, event_id: str) -> int:
    """The second half of the table's key (models.CctvEvent): 64 bits of MD5(facility_id ":"
    event_id), as migration monitoring_0009 computed it for the rows it found."""
    digest = md5(f"{facility_id}:{event_id}".encode(), usedforsecurity=False).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_UUID7 = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-7[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}")
_ULID = re.compile(r"[0-7][0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{25}")
_CROCKFORD = {c: n for n, c in enumerate("0123456789ABCDEFGHJKMNPQRSTVWXYZ")}


def id_ms(event_id: str) -> int:
    """The first half of the table's key: the Unix milliseconds a time-ordered event id begins with
    (a UUIDv7, a ULID), else 0. Leading the key, it makes such ids land at the index's right edge,
    so a batch rewrites a few pages however many events are stored; random ids (uuid4) all share 0
    and spread over the whole index as before. Read from the id alone, so a repeat finds its key
    whatever else it carries (as migration monitoring_0010 computed it for the rows it found)."""
    if len(event_id) == 36 and _UUID7.fullmatch(event_id):
        return int(event_id[:8] + event_id[9:13], 16)
    if len(event_id) == 26 and _ULID.fullmatch(event_id):
        ms = 0
        for char in event_id[:10].upper():
            ms = ms * 32 + _CROCKFORD[char]
        return ms
    return 0


@dataclass(frozen=True, slots=True)
class CameraRef:
    id: str
    facility_id: str
    external_id: str
    active: bool
    cached_at: float


@dataclass(frozen=True, slots=True)
class FacilityRef:
    id: str
    district_code: str
    owner_client_id: str | None
    status: str
    cached_at: float

    def visible_to(self, caller: Identity) -> bool:
        return caller.may_see_facility(
            facility_id=self.id, district_code=self.district_code, owner_client_id=self.owner_client_id
        )


@dataclass(frozen=True, slots=True)
class Prepared:
    """An event's row values that need no lookup, computed before the batch waits for the writer."""

    index: int
    event: CctvEventIn
    id_ms: int
    dedup_key: int
    occurred_at: datetime | str  # the text SQLAlchemy writes, on SQLite
    payload: str


@dataclass(frozen=True, slots=True)
class Accepted:
    index: int
    event: CctvEventIn
    camera: CameraRef
    facility: FacilityRef
    row: Prepared


def sqlite_time(value: datetime) -> str:
    """The text SQLAlchemy's DateTime writes on SQLite (UTC, no offset), so raw rows compare alike."""
    if value.utcoffset():
        value = value.astimezone(UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


class Directory:
    """Cameras by id and by (facility, external id), and facilities, each cached for a minute: a
    camera registered on another replica is found on the first miss."""

    def __init__(self) -> None:
        self.cameras: dict[str, CameraRef] = {}
        self.by_external: dict[tuple[str, str], CameraRef] = {}
        self.facilities: dict[str, FacilityRef] = {}

    def forget_camera(self, camera_id: str) -> None:
        ref = self.cameras.pop(camera_id, None)
        if ref is not None:
            self.by_external.pop((ref.facility_id, ref.external_id), None)

    def _fresh(self, ref: CameraRef | FacilityRef | None, now: float) -> bool:
        return ref is not None and now - ref.cached_at < CACHE_SECONDS

    async def load(self, session: AsyncSession, events: Sequence[CctvEventIn]) -> None:
        now = time.monotonic()
        stale = now - CACHE_SECONDS  # cached at or before: looked up again
        cameras, by_external = self.cameras, self.by_external
        ids = {
            camera_id
            for camera_id in {e.camera_id for e in events}
            if camera_id and ((ref := cameras.get(camera_id)) is None or ref.cached_at <= stale)
        }
        pairs = {
            pair
            for pair in {(e.facility_id, e.external_id) for e in events if e.external_id}
            if (ref := by_external.get(pair)) is None or ref.cached_at <= stale
        }
        columns = (Camera.id, Camera.facility_id, Camera.external_id, Camera.active)
        found = []
        if ids:
            found += (await session.execute(select(*columns).where(Camera.id.in_(ids)))).all()
        if pairs:
            found += (
                await session.execute(
                    select(*columns).where(tuple_(Camera.facility_id, Camera.external_id).in_(pairs))
                )
            ).all()
        for row in found:
            ref = CameraRef(row.id, row.facility_id, row.external_id, row.active, now)
            self.cameras[ref.id] = ref
            self.by_external[(ref.facility_id, ref.external_id)] = ref
        # The cameras just loaded, not every cached one: a scan of 20,000 refs per batch showed in
        # the profile.
        facility_ids = {e.facility_id for e in events} | {row.facility_id for row in found}
        facility_ids = {f for f in facility_ids if not self._fresh(self.facilities.get(f), now)}
        if facility_ids:
            rows = await session.execute(
                select(Facility.id, Facility.district_code, Facility.owner_client_id, Facility.status).where(
                    Facility.id.in_(facility_ids)
                )
            )
            for row in rows:
                self.facilities[row.id] = FacilityRef(
                    row.id, row.district_code, row.owner_client_id, row.status, now
                )

    def camera_for(self, event: CctvEventIn) -> CameraRef | None:
        if event.camera_id is not None:
            return self.cameras.get(event.camera_id)
        assert event.external_id is not None
        return self.by_external.get((event.facility_id, event.external_id))


def ingest_counter(metrics: Metrics) -> Counter:
    return Counter(
        "cradle_ingest_events_total",
        "CCTV events received over HTTP or NATS, by outcome: stored, duplicate, rejected",
        ["outcome"],
        registry=metrics.registry,
    )


class Ingest:
    def __init__(
        self,
        *,
        settings: MonitoringSettings,
        maker: async_sessionmaker[AsyncSession],
        counted: Counter | None = None,
    ) -> None:
        self.settings = settings
        self.maker = maker
        self.counted = counted
        self.directory = Directory()
        self.presence: dict[str, tuple[datetime, str]] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._sqlite = is_sqlite(settings.database_url)

    # ---- the batch -----------------------------------------------------------------------------

    async def accept(
        self, items: Sequence[Any], caller: Identity, *, now: datetime | None = None
    ) -> IngestReply:
        now = now or utcnow()
        rejected: list[RejectedEvent] = []
        parsed: list[Prepared] = []
        sqlite = self._sqlite
        latest = now + timedelta(seconds=self.settings.max_clock_skew_seconds)
        earliest = now - timedelta(days=self.settings.event_retention_days)
        try:  # the common case, a clean batch, in one call into pydantic-core (events pass as they are)
            clean: list[CctvEventIn | None] = list(_BATCH.validate_python(items))
        except ValidationError:
            clean = [None] * len(items)
        for index, item in enumerate(items):
            try:
                event = clean[index] or CctvEventIn.model_validate(item)
            except ValidationError as exc:
                event_id = item.get("event_id") if isinstance(item, dict) else None
                rejected.append(
                    RejectedEvent(
                        index=index,
                        event_id=event_id if isinstance(event_id, str) else None,
                        errors=field_errors(exc.errors()),
                    )
                )
                continue
            if event.occurred_at > latest:
                rejected.append(
                    _reject(index, event, "occurred_at", "is in the future (check the device's clock)")
                )
            elif event.occurred_at < earliest:
                rejected.append(_reject(index, event, "occurred_at", "is older than the retention period"))
            else:
                parsed.append(
                    Prepared(
                        index,
                        event,
                        id_ms(event.event_id),
                        dedup_key(event.facility_id, event.event_id),
                        sqlite_time(event.occurred_at) if sqlite else event.occurred_at,
                        orjson.dumps(event.payload).decode(),
                    )
                )

        # Cameras and facilities are read before the batch waits for the writer (none at all once
        # they are cached), and the events judged against them: SQLite's one writer holds its lock
        # only for the statements that write.
        async with session_scope(self.maker) as session:
            await self.directory.load(session, [row.event for row in parsed])
        accepted: list[Accepted] = []
        # An event id is the sender's: unique within its facility, not across the city.
        seen: set[tuple[str, str]] = set()
        in_batch_duplicates = 0
        whole_city = caller.sees_whole_city()
        visible: dict[str, bool] = {}
        for row in parsed:
            index, event = row.index, row.event
            camera = self.directory.camera_for(event)
            facility = self.directory.facilities.get(event.facility_id)
            if facility is not None and not whole_city and facility.id not in visible:
                visible[facility.id] = facility.visible_to(caller)
            if facility is None or not (whole_city or visible[facility.id]):
                rejected.append(
                    _reject(index, event, "facility_id", "no such facility that you may send for")
                )
            elif camera is None or not camera.active:
                field = "camera_id" if event.camera_id else "external_id"
                rejected.append(_reject(index, event, field, "no such active camera at this facility"))
            elif camera.facility_id != event.facility_id:
                rejected.append(
                    _reject(index, event, "facility_id", "the camera belongs to another facility")
                )
            elif event.key in seen:
                in_batch_duplicates += 1
            else:
                seen.add(event.key)
                accepted.append(Accepted(index, event, camera, facility, row))
        stored: set[tuple[str, str]] = set()
        alerts = 0
        if accepted:
            async with writer_turn(self.maker), session_scope(self.maker) as session:
                stored = await self._insert(session, accepted, now)
                if len(stored) < len(accepted):
                    collided = await self._collisions(
                        session, [a for a in accepted if a.event.key not in stored]
                    )
                    for item in collided:
                        rejected.append(_reject(item.index, item.event, "event_id", COLLIDES))
                    accepted = [a for a in accepted if a not in collided] if collided else accepted
                alerts = await self._raise_alerts(
                    session, [a for a in accepted if a.event.key in stored], now
                )
        self._note_presence(a for a in accepted if a.event.key in stored)
        rejected.sort(key=lambda r: r.index)
        duplicates = len(accepted) - len(stored) + in_batch_duplicates
        self.count(stored=len(stored), duplicate=duplicates, rejected=len(rejected))
        return IngestReply(
            accepted=len(stored),
            duplicates=duplicates,
            rejected=rejected,
            alerts_raised=alerts,
        )

    def count(self, **outcomes: int) -> None:
        if self.counted is None:
            return
        for outcome, events in outcomes.items():
            if events:
                self.counted.labels(outcome).inc(events)

    async def _insert(
        self, session: AsyncSession, accepted: list[Accepted], now: datetime
    ) -> set[tuple[str, str]]:
        """The (event id, facility) of each event stored now; a repeat is left out."""
        connection = await session.connection()
        if connection.dialect.name == "postgresql":
            result = await connection.exec_driver_sql(
                _PG_INSERT,
                (
                    [a.event.event_id for a in accepted],
                    [a.camera.id for a in accepted],
                    [a.facility.id for a in accepted],
                    [a.event.type for a in accepted],
                    [a.row.occurred_at for a in accepted],
                    now,
                    [a.row.payload for a in accepted],
                    [a.row.dedup_key for a in accepted],
                    [a.row.id_ms for a in accepted],
                ),
            )
            return {(row[0], row[1]) for row in result}
        return await self._insert_sqlite(connection, accepted, now)

    async def _insert_sqlite(
        self, connection: AsyncConnection, accepted: list[Accepted], now: datetime
    ) -> set[tuple[str, str]]:
        """No RETURNING on SQLite: every row it returns comes back through aiosqlite's thread, which
        must take the GIL back from the loop each time (up to a switch interval, 5 ms, when the
        loop is busy parsing the next batch): 1.1–1.6 s a batch of 500 against 19–23 ms for the same
        INSERT without it, measured with a busy thread beside it. A batch of new events, the common
        case, is one INSERT. One holding a repeat fails on its key as a whole: SQLite undoes that
        statement and keeps the transaction and its write lock, so the keys already held are read
        and the rest inserted with nobody writing in between."""
        try:
            await self._insert_rows_sqlite(connection, accepted, now)
            return {a.event.key for a in accepted}
        except IntegrityError:
            pass
        held = {(row[0], row[1]) for row in await _stored_under_sqlite(connection, accepted, "")}
        fresh = [a for a in accepted if (a.row.id_ms, a.row.dedup_key) not in held]
        if fresh:
            await self._insert_rows_sqlite(connection, fresh, now)
        return {a.event.key for a in fresh}

    @staticmethod
    async def _insert_rows_sqlite(connection: AsyncConnection, rows: list[Accepted], now: datetime) -> None:
        received = sqlite_time(now)
        params: list[Any] = []
        for a in rows:
            params += (
                a.row.id_ms,
                a.row.dedup_key,
                a.event.event_id,
                a.camera.id,
                a.facility.id,
                a.event.type,
                a.row.occurred_at,
                received,
                a.row.payload,
            )
        values = ",".join(["(?,?,?,?,?,?,?,?,?)"] * len(rows))
        await connection.exec_driver_sql(
            f"INSERT INTO cctv_event ({EVENT_COLUMNS}) VALUES {values}", tuple(params)
        )

    async def _collisions(self, session: AsyncSession, unstored: list[Accepted]) -> list[Accepted]:
        """Of the events whose key was already taken, those whose key holds another event (a 64-bit
        hash collision, about one in 10^10 at a billion stored): refused by name, not counted as
        repeats. A true repeat finds its own id and facility under its key."""
        if self._sqlite:
            found = await _stored_under_sqlite(
                await session.connection(), unstored, ", e.event_id, e.facility_id"
            )
        else:
            table = CctvEvent.__table__
            keys = [(a.row.id_ms, a.row.dedup_key) for a in unstored]
            found = await session.execute(
                select(table.c.id_ms, table.c.dedup_key, table.c.event_id, table.c.facility_id).where(
                    tuple_(table.c.id_ms, table.c.dedup_key).in_(keys)
                )
            )
        holders = {(row[0], row[1]): (row[2], row[3]) for row in found}
        return [a for a in unstored if holders.get((a.row.id_ms, a.row.dedup_key)) != a.event.key]

    async def _raise_alerts(self, session: AsyncSession, stored: list[Accepted], now: datetime) -> int:
        """Set-based: one query finds the active alerts the batch's alerting events fold into, one
        executemany raises their counts, one each inserts the new alerts, their first transition and
        their `alert.raised` events. Events of one type on one camera within a batch are one alert."""
        severities = self.settings.severities
        alerting = [a for a in stored if severities.get(a.event.type, "info") in ALERTING_SEVERITIES]
        if not alerting:
            return 0
        groups: dict[tuple[str, str], list[Accepted]] = {}
        for item in sorted(alerting, key=lambda a: (a.camera.id, a.event.type, a.event.occurred_at)):
            groups.setdefault((item.camera.id, item.event.type), []).append(item)
        camera_ids = sorted({camera_id for camera_id, _ in groups})
        if session.bind.dialect.name == "postgresql":
            # One batch at a time per camera decides "new alert or fold", in camera order (no deadlock).
            await session.execute(
                select(Camera.id).where(Camera.id.in_(camera_ids)).order_by(Camera.id).with_for_update()
            )
        window = timedelta(seconds=self.settings.fold_window_seconds)
        alert = Alert.__table__
        found = await session.execute(
            select(alert.c.id, alert.c.camera_id, alert.c.type, alert.c.last_at)
            .where(
                alert.c.camera_id.in_(camera_ids),
                alert.c.type.in_({kind for _, kind in groups}),
                alert.c.status.in_(ACTIVE_STATUSES),
                alert.c.last_at >= min(a.event.occurred_at for a in alerting) - window,
            )
            .order_by(alert.c.last_at)
        )
        active = {(row.camera_id, row.type): (row.id, as_utc(row.last_at)) for row in found}  # latest wins
        folds: list[dict[str, Any]] = []
        created: list[dict[str, Any]] = []
        for (camera_id, kind), items in groups.items():
            first, last = items[0].event.occurred_at, items[-1].event.occurred_at
            hit = active.get((camera_id, kind))
            if hit is not None and hit[1] >= first - window:
                folds.append({"alert_id": hit[0], "more": len(items), "seen": max(last, hit[1]), "now": now})
                continue
            facility = items[0].facility
            created.append(
                {
                    "id": new_id(),
                    "facility_id": facility.id,
                    "district_code": facility.district_code,
                    "camera_id": camera_id,
                    "type": kind,
                    "severity": severities[kind],
                    "status": "open",
                    "source": "cctv",
                    "source_ref": None,
                    "count": len(items),
                    "first_at": first,
                    "last_at": last,
                    "raised_at": now,
                    "details": {"event_id": items[0].event.event_id, "payload": items[0].event.payload},
                    "incident_id": None,
                    "version": 1,
                    "updated_at": now,
                }
            )
        if folds:
            await session.execute(
                update(alert)
                .where(alert.c.id == bindparam("alert_id"))
                .values(
                    count=alert.c.count + bindparam("more"),
                    last_at=bindparam("seen"),
                    updated_at=bindparam("now"),
                ),
                folds,
            )
        if created:
            await session.execute(insert(alert), created)
            await session.execute(
                insert(AlertTransition.__table__),
                [
                    {
                        "id": new_id(),
                        "alert_id": row["id"],
                        "from_status": None,
                        "to_status": "open",
                        "actor": "cctv",
                        "note": row["type"],
                        "at": now,
                    }
                    for row in created
                ],
            )
            await emit_many(
                session,
                [
                    AlertRaised(
                        alert_id=row["id"],
                        facility_id=row["facility_id"],
                        district_code=row["district_code"],
                        camera_id=row["camera_id"],
                        type=row["type"],
                        severity=row["severity"],
                        status="open",
                        count=row["count"],
                        source="cctv",
                        raised_at=now,
                    )
                    for row in created
                ],
            )
        return len(created)

    # ---- presence ------------------------------------------------------------------------------

    def _note_presence(self, stored: Any) -> None:
        for item in stored:
            seen = self.presence.get(item.camera.id)
            if seen is None or item.event.occurred_at > seen[0]:
                self.presence[item.camera.id] = (item.event.occurred_at, item.event.type)

    def last_seen(self, camera_id: str) -> tuple[datetime, str] | None:
        """What this process heard and has not written yet."""
        return self.presence.get(camera_id)

    async def flush_presence(self) -> int:
        if not self.presence:
            return 0
        pending, self.presence = self.presence, {}
        rows = [
            {"camera": camera_id, "seen": seen, "kind": kind}
            for camera_id, (seen, kind) in sorted(pending.items())
        ]
        statement = (
            update(Camera.__table__)
            .where(
                Camera.__table__.c.id == bindparam("camera"),
                or_(
                    Camera.__table__.c.last_seen_at.is_(None),
                    Camera.__table__.c.last_seen_at < bindparam("seen"),
                ),
            )
            .values(last_seen_at=bindparam("seen"), last_event_type=bindparam("kind"))
        )
        try:
            async with writer_turn(self.maker), session_scope(self.maker) as session:
                await session.execute(statement, rows)
        except Exception:
            for camera_id, seen in pending.items():  # keep them for the next try
                current = self.presence.get(camera_id)
                if current is None or current[0] < seen[0]:
                    self.presence[camera_id] = seen
            raise
        return len(rows)

    def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_forever(), name="presence-flush")

    async def stop(self) -> None:
        await stop_task("presence flush", self._flusher, seconds=5)
        await settle("presence flush", self.flush_presence(), seconds=5)

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.presence_flush_seconds)
            try:
                await self.flush_presence()
            except Exception as exc:  # a database hiccup: the next round retries
                raise_if_cancelling()
                log.warning("presence_flush_failed", error=f"{type(exc).__name__}: {exc}"[:300])


async def _stored_under_sqlite(connection: AsyncConnection, events: list[Accepted], more: str) -> Any:
    """The stored rows (id_ms, dedup_key, then `more` of the row `e`) under the events' keys, found
    key by key: SQLite's planner scans the whole index for `(id_ms, dedup_key) IN (VALUES …)`, and
    the CROSS JOIN makes the listed keys the outer loop, each one an index search."""
    keys = [part for a in events for part in (a.row.id_ms, a.row.dedup_key)]
    pairs = ",".join(["(?,?)"] * len(events))
    return await connection.exec_driver_sql(
        f"SELECT e.id_ms, e.dedup_key{more} FROM (VALUES {pairs}) AS v CROSS JOIN cctv_event AS e "
        "ON e.id_ms = v.column1 AND e.dedup_key = v.column2",
        tuple(keys),
    )


def _reject(index: int, event: CctvEventIn, field: str, message: str) -> RejectedEvent:
    return RejectedEvent(
        index=index, event_id=event.event_id, errors=[FieldError(field=field, message=message)]
    )
