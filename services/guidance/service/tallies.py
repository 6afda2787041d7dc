"""Each family's yearly tallies (`family_year`), written in the transaction that records what they
count: attendance marked or corrected, resources pushed, a family's `in_need` changed. Every write
is an atomic upsert (`ON CONFLICT … DO UPDATE SET n = n + excluded.n`, or `pushed = true`, which
is the same whoever sets it first), never a read-modify-write, so concurrent writers on PostgreSQL
add up; rows are written in family order, so two writers lock shared rows in the same order."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, cast, exists, extract, false, func, literal, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from services.guidance.models import Family, FamilyYear, ResourcePush

COLUMNS = ["family_id", "year", "district_code", "registered_on", "in_need", "sessions_attended", "pushed"]
KEY = ["family_id", "year"]


class utc_year(FunctionElement[int]):  # lower case: used like an SQL function
    """The UTC calendar year of a stored moment, as the figures' `[Jan 1, Jan 1)` UTC ranges see it."""

    type = Integer()
    inherit_cache = True


@compiles(utc_year)
def _utc_year(element: utc_year, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps UTC text: CAST(STRFTIME('%Y', …) AS INTEGER).
    (moment,) = element.clauses
    return compiler.process(extract("year", moment), **kw)


@compiles(utc_year, "postgresql")
def _utc_year_pg(element: utc_year, compiler: SQLCompiler, **kw: Any) -> str:
    # A timestamptz's year depends on the session's time zone unless it is asked in UTC.
    (moment,) = element.clauses
    return compiler.process(cast(extract("year", func.timezone("UTC", moment)), Integer), **kw)


def _insert(bind: AsyncSession | AsyncConnection) -> Any:
    """INSERT INTO family_year in the bind's dialect (each has its own ON CONFLICT)."""
    dialect = bind.get_bind().dialect.name if isinstance(bind, AsyncSession) else bind.dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(FamilyYear)


def _adding_sessions(statement: Any) -> Any:
    # An existing row keeps its copied family columns; only the count moves.
    return statement.on_conflict_do_update(
        index_elements=KEY,
        set_={"sessions_attended": FamilyYear.sessions_attended + statement.excluded.sessions_attended},
    )


def _family_columns() -> tuple[ColumnElement[Any], ...]:
    return (Family.district_code, Family.registered_on, Family.in_need)


async def count_attendance(
    *, session: AsyncSession, marked: Iterable[tuple[str, int]], attended: bool
) -> None:
    """`marked`: the (family, year) of each booking whose mark just changed to `attended` (a
    booking is one family at one session, so each pair counts once)."""
    by_year: dict[int, set[str]] = defaultdict(set)
    for family_id, year in marked:
        by_year[year].add(family_id)
    for year, family_ids in sorted(by_year.items()):
        # FOR SHARE: a concurrent edit of `in_need` (which locks the family) is waited for and seen.
        source = (
            select(
                Family.id,
                literal(year, Integer),
                *_family_columns(),
                literal(1 if attended else -1, Integer),
                false(),
            )
            .where(Family.id.in_(sorted(family_ids)))
            .order_by(Family.id)
            .with_for_update(read=True, of=Family)
        )
        await session.execute(_adding_sessions(_insert(session).from_select(COLUMNS, source)))


async def count_push(*, session: AsyncSession, resource_id: str) -> None:
    """After the resource's pushes are written: each family it reached is `pushed` in that year.
    Families already marked are skipped before their rows are read (most are: a family is pushed
    many resources a year); one marked by a concurrent push meets the ON CONFLICT instead."""
    year = utc_year(ResourcePush.pushed_at)
    already = exists().where(
        FamilyYear.family_id == ResourcePush.family_id, FamilyYear.year == year, FamilyYear.pushed.is_(True)
    )
    source = (
        select(ResourcePush.family_id, year, *_family_columns(), literal(0, Integer), literal(True))
        .join(Family, Family.id == ResourcePush.family_id)
        .where(ResourcePush.resource_id == resource_id, ~already)
        .order_by(ResourcePush.family_id)
        .with_for_update(read=True, of=Family)
    )
    statement = _insert(session).from_select(COLUMNS, source)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=KEY, set_={"pushed": True}, where=FamilyYear.pushed.is_(False)
        )
    )


async def set_in_need(*, session: AsyncSession, family_id: str, in_need: bool) -> None:
    """The family's new `in_need` on its tallies (the caller holds the family's row lock)."""
    await session.execute(
        update(FamilyYear)
        .where(FamilyYear.family_id == family_id, FamilyYear.in_need.is_not(in_need))
        .values(in_need=in_need)
        .execution_options(synchronize_session=False)
    )


async def add_attendance(*, connection: AsyncConnection, rows: Sequence[Mapping[str, object]]) -> None:
    """Bulk loading (the demo seeder): rows of `family_year` (pushed false), their sessions added to
    any already there, in family order."""
    if rows:
        ordered = sorted(rows, key=lambda r: (str(r["family_id"]), str(r["year"])))
        await connection.execute(_adding_sessions(_insert(connection)), ordered)
