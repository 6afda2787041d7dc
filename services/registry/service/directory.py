"""The facility directory: every facility held in memory by each registry replica, so searches are
answered without the database, ORM objects or pydantic.

Each facility is kept as the few fields the filters read plus its JSON, serialized once per change
(public and summary shapes, up to the trailing `"distance_m":`, which a search appends). Indexes:
all facilities by id, by status, district and town (each sorted by id, for cursor pages), and a grid
of 0.02° cells for `near`.

Staying current, on any number of replicas: a database trigger stamps every facility insert and
update with the next value of the one-row `directory_revision` counter (migration registry_0003),
whose lock orders the revisions by commit. A replica holds the revision it has read up to and loads
only the facilities stamped past it:
- after a commit of its own that wrote anything, before its next search (so a caller reads its own
  writes on the replica that took them), and
- before an authenticated caller's search, for every write committed before it arrived, on any
  replica: an operator's script that creates through one replica and lists through another reads
  its writes. One single-row read of the revision, shared by the searches that arrive while it
  runs (a search waits at most for one read begun after it arrived), and
- every `REGISTRY_DIRECTORY_POLL_SECONDS` (one single-row read when nothing changed), for the
  anonymous public search (at most that old), event handlers, and anything written straight to the
  database.
Facilities are never deleted, so the directory only adds and replaces.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import ORMExecuteState, Session

from services.registry.models import DirectoryRevision, Facility
from services.registry.schemas import AGE_CLASSES, FacilitySummary, PublicFacility
from services.registry.service.search import EARTH_RADIUS_M, FacilityFilters, public_filters
from shared.bounded import raise_if_cancelling
from shared.errors import invalid
from shared.identity import ClientKind, Identity
from shared.pagination import PageParams, encode_cursor

log = structlog.get_logger("cradle.registry.directory")

# In a session's `info` (the registry's sessionmaker puts it there): called after a commit that wrote.
ON_DIRECTORY_WRITE = "cradle_on_directory_write"
_WROTE = "cradle_directory_wrote"

CELL_DEGREES = 0.02  # ≈ 2.2 km north–south: a 1–3 km search reads a handful of cells
_DISTANCE_TAIL = b"null}"  # what a serialized item ends with before its distance goes in


@dataclass(slots=True)
class Entry:
    """One facility: what the filters and visibility read, and its two serialized shapes."""

    id: str
    status: str
    district_code: str
    town_code: str
    kind: str
    inclusive: bool
    grade: str | None
    demonstration: bool
    service_modes: frozenset[str]
    free: dict[str, int]  # age class → capacity minus enrolment (may be ≤ 0)
    owner_client_id: str | None
    lat: float
    lon: float
    lat_radians: float  # math.radians(lat) and its cosine, for the haversine of every near search
    cos_lat: float
    public_head: bytes  # `{…,"distance_m":` of PublicFacility
    summary_head: bytes  # the same of FacilitySummary


@dataclass(slots=True)
class Index:
    ids: list[str]
    entries: list[Entry]


def _to_entry(row: Any) -> Entry:
    """A facility row (Core) → its entry. Pydantic runs here, once per change, so the bytes are
    exactly what the response models would have produced."""
    fields = dict(row._mapping)
    fields["capacity"] = {a: fields[f"capacity_{a}"] for a in AGE_CLASSES}
    free = {a: fields[f"capacity_{a}"] - fields[f"enrolled_{a}"] for a in AGE_CLASSES}
    fields["free_places"] = {a: max(0, n) for a, n in free.items()}
    public = PublicFacility.model_validate(fields).model_dump_json().encode()
    summary = FacilitySummary.model_validate(fields).model_dump_json().encode()
    assert public.endswith(_DISTANCE_TAIL) and summary.endswith(_DISTANCE_TAIL)
    return Entry(
        id=row.id,
        status=row.status,
        district_code=row.district_code,
        town_code=row.town_code,
        kind=row.kind,
        inclusive=bool(row.inclusive),
        grade=row.grade,
        demonstration=bool(row.is_demonstration),
        service_modes=frozenset(row.service_modes),
        free=free,
        owner_client_id=row.owner_client_id,
        lat=row.lat,
        lon=row.lon,
        lat_radians=math.radians(row.lat),
        cos_lat=math.cos(math.radians(row.lat)),
        public_head=public[: -len(_DISTANCE_TAIL)],
        summary_head=summary[: -len(_DISTANCE_TAIL)],
    )


def _cell(lat: float, lon: float) -> tuple[int, int]:
    return math.floor(lat / CELL_DEGREES), math.floor(lon / CELL_DEGREES)


def _index(entries: Iterable[Entry]) -> Index:
    ordered = sorted(entries, key=lambda e: e.id)
    return Index(ids=[e.id for e in ordered], entries=ordered)


class FacilityDirectory:
    def __init__(self, *, poll_seconds: float) -> None:
        self.poll_seconds = poll_seconds
        self.revision = -1  # nothing loaded yet
        self._maker: async_sessionmaker[AsyncSession] | None = None
        self._entries: dict[str, Entry] = {}
        # Generations: each commit here that wrote asks for one; a load serves
        # every generation asked for before it began, never one asked for while it ran.
        self._asked = 1
        self._served = 0
        # Reads of the revision begun and finished (under the lock, so in order): a search that
        # arrived after read n began needs read n + 1 or later.
        self._reads_begun = 0
        self._reads_done = 0
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._all = Index([], [])
        self._by_status: dict[str, Index] = {}
        self._by_district: dict[str, Index] = {}
        self._by_town: dict[str, Index] = {}
        # The grid of every facility (key None) and one per status: a public search reads only
        # the approved facilities' cells.
        self._grids: dict[str | None, dict[tuple[int, int], list[Entry]]] = {}

    # ------------------------------------------------------------------------------ keeping current

    def mark_stale(self) -> None:
        self._asked += 1

    @property
    def stale(self) -> bool:
        return self._served < self._asked

    def start(self, maker: async_sessionmaker[AsyncSession]) -> None:
        self._maker = maker
        self._task = asyncio.create_task(self._poll_forever(), name="registry-directory")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _poll_forever(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            try:
                await self._poll()
            except Exception as exc:  # the database away: the next poll or search tries again
                raise_if_cancelling()
                log.warning("directory_refresh_failed", error=str(exc)[:200])

    async def current(self) -> None:
        """Load what changed since the revision held, if anything may have."""
        wanted = self._asked
        if self._served >= wanted:
            return
        async with self._lock:
            if self._served >= wanted:
                return
            serving = self._asked  # asked before this load reads anything: it will see them
            await self._load_changes()
            self._served = max(self._served, serving)

    async def committed(self) -> None:
        """Everything committed before this call, on any replica: a read of the revision begun
        after it, its own or one a concurrent search began."""
        arrived_after = self._reads_begun
        async with self._lock:
            if self._reads_done > arrived_after:
                return
            serving = self._asked
            await self._load_changes()
            self._served = max(self._served, serving)

    async def _poll(self) -> None:
        """Other replicas' writes: loaded in the background, searches answering meanwhile from what
        is held (at most a poll interval old, as it would be had the poll come a moment later)."""
        async with self._lock:
            serving = self._asked
            await self._load_changes()
            self._served = max(self._served, serving)

    async def _load_changes(self) -> None:
        """Under the lock: the changes up to the revision read now."""
        assert self._maker is not None, "the directory starts with the app"
        self._reads_begun += 1
        begun = self._reads_begun
        await self._load_changes_now()
        self._reads_done = begun

    async def _load_changes_now(self) -> None:
        assert self._maker is not None
        async with self._maker() as session:
            # The revision first: every change up to it has committed (the counter's lock), so the
            # rows read next hold at least those.
            revision = (await session.execute(select(DirectoryRevision.revision))).scalar_one()
            if revision == self.revision:
                return
            table = Facility.__table__
            rows = (await session.execute(select(table).where(table.c.change_revision > self.revision))).all()
        if rows:
            for row in rows:
                self._entries[row.id] = _to_entry(row)
            self._rebuild()
        log.info("directory_loaded", revision=revision, changed=len(rows), facilities=len(self._entries))
        self.revision = revision

    def _rebuild(self) -> None:
        entries = list(self._entries.values())
        self._all = _index(entries)
        groups: dict[str, dict[str, list[Entry]]] = {"status": {}, "district": {}, "town": {}}
        grids: dict[str | None, dict[tuple[int, int], list[Entry]]] = defaultdict(lambda: defaultdict(list))
        for e in entries:
            groups["status"].setdefault(e.status, []).append(e)
            groups["district"].setdefault(e.district_code, []).append(e)
            groups["town"].setdefault(e.town_code, []).append(e)
            cell = _cell(e.lat, e.lon)
            grids[None][cell].append(e)
            grids[e.status][cell].append(e)
        self._by_status = {k: _index(v) for k, v in groups["status"].items()}
        self._by_district = {k: _index(v) for k, v in groups["district"].items()}
        self._by_town = {k: _index(v) for k, v in groups["town"].items()}
        self._grids = {status: dict(grid) for status, grid in grids.items()}

    # ----------------------------------------------------------------------------------- searching

    async def search(
        self, *, caller: Identity | None, filters: FacilityFilters, page: PageParams, public: bool
    ) -> bytes:
        """A page as `{"items": [...], "next_cursor": …}` JSON, the same facilities in the same order
        as services/registry/service/search.py's SQL would give (its tests hold both). An
        authenticated caller reads every write committed before it asked, on any replica."""
        if caller is not None and not public:
            await self.committed()
        else:
            await self.current()
        if public:
            caller, filters = None, public_filters(filters)
        match = _matcher(caller, filters)
        if filters.near is None:
            items, cursor = self._by_id(match, filters, caller, page)
        else:
            items, cursor = self._nearest(match, filters, page)
        head = (lambda e: e.public_head) if public else (lambda e: e.summary_head)
        body = b",".join(
            head(e) + (_DISTANCE_TAIL if d is None else orjson.dumps(d) + b"}") for e, d in items
        )
        return b'{"items":[' + body + b'],"next_cursor":' + orjson.dumps(cursor) + b"}"

    def _candidates(self, filters: FacilityFilters, caller: Identity | None) -> Index:
        """The smallest index the filters (or the caller's district) allow."""
        options = [self._all]
        if filters.town_code:
            options.append(self._by_town.get(filters.town_code, Index([], [])))
        district = filters.district_code
        if district is None and caller is not None and caller.kind == ClientKind.district:
            district = caller.district_code
        if district:
            options.append(self._by_district.get(district, Index([], [])))
        status = filters.status.value if filters.status else (None if caller else "approved")
        if status:
            options.append(self._by_status.get(status, Index([], [])))
        return min(options, key=lambda index: len(index.ids))

    def _by_id(
        self, match: Any, filters: FacilityFilters, caller: Identity | None, page: PageParams
    ) -> tuple[list[tuple[Entry, float | None]], str | None]:
        index = self._candidates(filters, caller)
        start = bisect.bisect_right(index.ids, str(page.after[0])) if page.after else 0
        found: list[tuple[Entry, float | None]] = []
        for entry in index.entries[start:]:
            if match(entry):
                found.append((entry, None))
                if len(found) > page.limit:
                    break
        more = len(found) > page.limit
        found = found[: page.limit]
        return found, encode_cursor([found[-1][0].id]) if more and found else None

    def _nearest(
        self, match: Any, filters: FacilityFilters, page: PageParams
    ) -> tuple[list[tuple[Entry, float | None]], str | None]:
        n = filters.near
        assert n is not None
        # The same bounding box the SQL search applies, then the exact circle.
        dlat = math.degrees(n.radius_m / EARTH_RADIUS_M)
        dlon = dlat / max(math.cos(math.radians(n.lat)), 0.01)
        south, north, west, east = n.lat - dlat, n.lat + dlat, n.lon - dlon, n.lon + dlon
        (row_lo, col_lo), (row_hi, col_hi) = _cell(south, west), _cell(north, east)
        grid = self._grids.get(filters.status.value if filters.status else None, {})
        if (row_hi - row_lo + 1) * (col_hi - col_lo + 1) > len(grid):
            boxed: Iterable[Entry] = (e for cell in grid.values() for e in cell)
        else:
            boxed = (
                e
                for r in range(row_lo, row_hi + 1)
                for c in range(col_lo, col_hi + 1)
                for e in grid.get((r, c), ())
            )
        # search.distance_m inlined with each facility's radians and cosine computed once: the
        # same operations on the same values, so the same metres to the last bit.
        p1 = math.radians(n.lat)
        cos_p1 = math.cos(p1)
        sin, asin, sqrt, radians, radius = math.sin, math.asin, math.sqrt, math.radians, n.radius_m
        ranked = []
        for e in boxed:
            if south <= e.lat <= north and west <= e.lon <= east and match(e):
                dp, dl = e.lat_radians - p1, radians(e.lon - n.lon)
                a = sin(dp / 2) ** 2 + cos_p1 * e.cos_lat * sin(dl / 2) ** 2
                d = round(2 * EARTH_RADIUS_M * asin(sqrt(a)), 1)
                if d <= radius:
                    ranked.append((d, e.id, e))
        ranked.sort(key=lambda t: (t[0], t[1]))
        if page.after and len(page.after) == 2:
            try:
                last = (float(page.after[0]), str(page.after[1]))
            except (TypeError, ValueError):
                raise invalid("cursor", "is not a cursor this API returned") from None
            ranked = [t for t in ranked if (t[0], t[1]) > last]
        window = ranked[: page.limit]
        cursor = (
            encode_cursor([window[-1][0], window[-1][1]]) if len(ranked) > page.limit and window else None
        )
        return [(e, d) for d, _, e in window], cursor


def _matcher(caller: Identity | None, filters: FacilityFilters) -> Callable[[Entry], bool]:
    """One predicate for the caller's visibility and the filters (search.py's visible_to and
    filtered), a single function: it runs for every candidate."""
    district = filters.district_code
    town = filters.town_code
    kind = filters.kind.value if filters.kind else None
    inclusive = filters.inclusive
    grade = filters.grade.value if filters.grade else None
    demonstration = filters.demonstration
    status = filters.status.value if filters.status else None
    mode = filters.service_mode.value if filters.service_mode else None
    age = filters.free_places.value if filters.free_places else None
    owner: str | None = None
    own: frozenset[str] = frozenset()
    if caller is None:
        status = public_filters(filters).status.value  # type: ignore[union-attr]
    elif not caller.sees_whole_city():
        if caller.kind == ClientKind.district and caller.district_code:
            if district not in (None, caller.district_code):
                return lambda e: False
            district = caller.district_code
        elif caller.kind == ClientKind.operator:
            owner, own = caller.client_id, frozenset(caller.facility_ids or ())
        else:
            return lambda e: False

    def match(e: Entry) -> bool:
        return (
            (status is None or e.status == status)
            and (district is None or e.district_code == district)
            and (town is None or e.town_code == town)
            and (kind is None or e.kind == kind)
            and (inclusive is None or e.inclusive == inclusive)
            and (grade is None or e.grade == grade)
            and (demonstration is None or e.demonstration == demonstration)
            and (mode is None or mode in e.service_modes)
            and (age is None or e.free[age] > 0)
            and (owner is None or e.owner_client_id == owner or e.id in own)
        )

    return match


# ------------------------------------------------------------------------------------ local writes


@event.listens_for(Session, "after_flush")
def _note_flush(session: Session, _context: object) -> None:
    if ON_DIRECTORY_WRITE in session.info:
        session.info[_WROTE] = True


@event.listens_for(Session, "do_orm_execute")
def _note_statement(state: ORMExecuteState) -> None:
    if (state.is_insert or state.is_update or state.is_delete) and ON_DIRECTORY_WRITE in state.session.info:
        state.session.info[_WROTE] = True


@event.listens_for(Session, "after_commit")
def _directory_after_commit(session: Session) -> None:
    if session.info.pop(_WROTE, False):
        session.info[ON_DIRECTORY_WRITE]()


@event.listens_for(Session, "after_rollback")
def _directory_after_rollback(session: Session) -> None:
    session.info.pop(_WROTE, None)
