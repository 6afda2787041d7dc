"""`cradle seed-demo`: a plausible city, one module per service (named in cradle/services.py), each
writing its service's database through that service's own models and public functions.

The registry seeds first; its facility events, as it writes them to its outbox, are handed to the
workforce's and monitoring's seeders, which build their projections from them exactly as their
consumers would (same facts, version and event time), so the real events, when the outbox relay
sends them, change nothing. No service reads another's database.

`cradle up` may be running meanwhile, its consumers filling the same projections from the same
events, and the same seed may be run twice: a projection row is written by `upsert_newer`, which
keeps whichever of the two rows is newer by (version, event time), as the consumers do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, ProgressColumn, Task, TaskID
from rich.text import Text
from sqlalchemy import ColumnElement, Table, and_, func, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from cradle.layout import Keys, database_url
from shared.db import make_engine
from shared.events.envelope import CloudEvent


class RateColumn(ProgressColumn):
    """Rows a second over the whole step so far."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time or task.elapsed
        counts = task.fields.get("counts", True)
        rate = task.completed / elapsed if counts and elapsed and task.completed else None
        return Text(f"{rate:>9,.0f}/s" if rate else " " * 11, style="progress.data.speed")


class Steps:
    """A progress bar per step of the seeding, added when the step first reports."""

    def __init__(self, bar: Progress) -> None:
        self.bar = bar
        self.tasks: dict[str, TaskID] = {}
        self.rows: dict[str, int] = {}

    def report(self, step: str, done: int, total: int | None) -> None:
        """`total` None: a step that only says it is running."""
        if step not in self.tasks:
            self.tasks[step] = self.bar.add_task(step, total=total, counts=total is not None)
        self.bar.update(self.tasks[step], completed=done, total=total)
        self.rows[step] = done

    def counter(self, step: str, total: int) -> Callable[[int], None]:
        """For seeders that report each batch's size rather than how far they are."""
        self.report(step, 0, total)
        return lambda n: self.report(step, self.rows[step] + n, total)


@dataclass
class SeedRun:
    """What every service's seeding step gets, and what they leave for the ones after them."""

    base: Path  # the data directory
    keys: Keys
    seed: int
    namespace: str
    steps: Steps
    console: Console
    facility_events: list[CloudEvent] = field(default_factory=list)  # the registry's, for the projections
    laps: list[tuple[str, float]] = field(default_factory=list)  # (step, seconds); parts indented

    @asynccontextmanager
    async def engine(self, name: str) -> AsyncIterator[AsyncEngine]:
        engine = make_engine(database_url(name, self.base))
        try:
            yield engine
        finally:
            await engine.dispose()


async def upsert_newer(
    connection: AsyncConnection,
    table: Table,
    rows: list[dict[str, object]],
    *,
    key: str,
    facts: tuple[str, ...],
) -> None:
    """Insert projection `rows`; where the row is already there (the consumer's, or an earlier
    seeding's), overwrite only its `facts` columns, and only when this row is newer by (version,
    source_event_at) — the order the consumers keep — so a seeded row never replaces a newer one
    and what the consumer alone writes (e.g. monitoring's staffing verdict) stays."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(table)
    new, old = statement.excluded, table.c
    newer: ColumnElement[bool] = or_(
        new.version > func.coalesce(old.version, 0),
        and_(new.version == func.coalesce(old.version, 0), new.source_event_at > old.source_event_at),
    )
    await connection.execute(
        statement.on_conflict_do_update(
            index_elements=[old[key]],
            set_={column: new[column] for column in facts},
            where=newer,
        ),
        rows,
    )


async def insert_missing(connection: AsyncConnection, table: Table, rows: list[dict[str, object]]) -> None:
    """Insert `rows`, skipping any whose key (or another unique column) is already there: the same
    seed draws the same ids, so a second run adds nothing."""
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    await connection.execute(dialect.insert(table).on_conflict_do_nothing(), rows)
