"""Online resources (T17, T24): publishing with 精准推送 to the families in need whose children are
in the age range (one INSERT … SELECT, however many families; the families' parents are told by
`resource.pushed` events, a thousand families each), and each family's feed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Integer,
    String,
    and_,
    case,
    cast,
    exists,
    false,
    insert,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.guidance.errors import ResourceNotFound
from services.guidance.events import ResourcePublished, ResourcePushed
from services.guidance.models import Child, Family, Resource, ResourcePush
from services.guidance.schemas import Audience, FeedItem, ResourceCreate, ResourceKind, ResourceRead
from services.guidance.service.common import add_months, age_in_months
from services.guidance.service.sessions import require_writer
from services.guidance.service.tallies import count_push
from shared.clock import as_utc, new_id, shanghai_today, utcnow
from shared.contracts.guidance import PUSHED_FAMILIES_PER_EVENT
from shared.errors import invalid
from shared.events.outbox import emit, emit_many
from shared.i18n import tr
from shared.identity import Identity
from shared.pagination import PageParams, encode_cursor

# Topics that speak to a family's situation; a resource carrying one ranks higher in its feed.
FOCUS_TOPICS = {
    "newborn": ("newborn_care", "breastfeeding"),
    "in_need": ("family_support",),
    "grandparent_carers": ("grandparenting",),
}
# A resource for a span of at most this many months is specific to the child's age, not generic.
SPECIFIC_SPAN_MONTHS = 12


@dataclass(frozen=True)
class ResourceFilters:
    kind: ResourceKind | None = None
    audience: Audience | None = None
    topic: str | None = None
    age_months: int | None = None


def to_read(r: Resource) -> ResourceRead:
    return ResourceRead(
        id=r.id,
        kind=r.kind,
        title=r.title,
        summary=r.summary,
        url=r.url,
        age_from_months=r.age_from_months,
        age_to_months=r.age_to_months,
        topics=r.topics,
        audience=r.audience,
        published_at=as_utc(r.published_at),
        pushed_families=r.pushed_families,
        version=r.version,
    )


def _has_topic(topic: str) -> ColumnElement[bool]:
    # Topics are a short JSON list of fixed words; matching its text works the same on both databases.
    return cast(Resource.topics, String).like(f'%"{topic}"%')


def born_between(age_from: int, age_to: int, today: date) -> tuple[date, date]:
    """(born after, born on or before): the birth dates of children aged age_from–age_to months."""
    return add_months(today, -(age_to + 1)), add_months(today, -age_from)


async def publish(*, session: AsyncSession, caller: Identity, data: ResourceCreate) -> Resource:
    require_writer(caller)
    now = utcnow()
    resource = Resource(
        id=new_id(),
        kind=data.kind.value,
        title=data.title,
        summary=data.summary,
        url=data.url,
        age_from_months=data.age_from_months,
        age_to_months=data.age_to_months,
        topics=list(data.topics),
        audience=data.audience.value,
        published_at=now,
        published_by=caller.client_id,
    )
    session.add(resource)
    await session.flush()
    resource.pushed_families = await push(session=session, resource=resource, now=now)
    await session.flush()
    await emit(
        session,
        ResourcePublished(
            resource_id=resource.id,
            title=resource.title,
            kind=resource.kind,
            age_from_months=resource.age_from_months,
            age_to_months=resource.age_to_months,
            audience=resource.audience,
            topics=resource.topics,
            pushed_families=resource.pushed_families,
            published_at=now,
        ),
    )
    pushed = (
        await session.execute(
            select(ResourcePush.family_id)
            .where(ResourcePush.resource_id == resource.id)
            .order_by(ResourcePush.family_id)
        )
    ).scalars()
    await emit_many(session, pushed_events(resource, list(pushed), now))
    return resource


def pushed_events(resource: Resource, family_ids: list[str], now: datetime) -> list[ResourcePushed]:
    """The push told to the families' parents: one event per PUSHED_FAMILIES_PER_EVENT families."""
    return [
        ResourcePushed(
            resource_id=resource.id,
            title=resource.title,
            kind=resource.kind,
            family_ids=chunk,
            families=len(chunk),
            pushed_at=now,
        )
        for chunk in (
            family_ids[start : start + PUSHED_FAMILIES_PER_EVENT]
            for start in range(0, len(family_ids), PUSHED_FAMILIES_PER_EVENT)
        )
    ]


async def push(*, session: AsyncSession, resource: Resource, now: datetime) -> int:
    """精准推送: record the push to every family in need with a child in the age range (grandparents'
    resources: the families where grandparents care), set-based in the database."""
    if resource.audience == Audience.facilities:
        return 0
    born_after, born_by = born_between(resource.age_from_months, resource.age_to_months, shanghai_today(now))
    child_fits = exists().where(
        Child.family_id == Family.id, Child.birth_date > born_after, Child.birth_date <= born_by
    )
    audience = Family.grandparent_carers.is_(True) if resource.audience == Audience.grandparents else true()
    targets = select(
        literal(resource.id, String(36)), Family.id, literal(now, DateTime(timezone=True))
    ).where(Family.in_need.is_(True), audience, child_fits)
    result = await session.execute(
        insert(ResourcePush).from_select(["resource_id", "family_id", "pushed_at"], targets)
    )
    await count_push(session=session, resource_id=resource.id)
    return max(int(result.rowcount or 0), 0)


async def get_resource(*, session: AsyncSession, resource_id: str) -> Resource:
    found = await session.get(Resource, resource_id)
    if found is None:
        raise ResourceNotFound(tr("No resource {resource_id}.", resource_id=resource_id))
    return found


async def list_resources(
    *, session: AsyncSession, filters: ResourceFilters, page: PageParams
) -> tuple[list[Resource], str | None]:
    """Newest first; the cursor is (published_at, id) of the last one returned."""
    query = select(Resource)
    if filters.kind:
        query = query.where(Resource.kind == filters.kind.value)
    if filters.audience:
        query = query.where(Resource.audience == filters.audience.value)
    if filters.topic:
        query = query.where(_has_topic(filters.topic))
    if filters.age_months is not None:
        query = query.where(
            Resource.age_from_months <= filters.age_months, Resource.age_to_months >= filters.age_months
        )
    if page.after and len(page.after) == 2:
        moment, last_id = _moment(page.after[0]), str(page.after[1])
        query = query.where(
            or_(Resource.published_at < moment, and_(Resource.published_at == moment, Resource.id < last_id))
        )
    query = query.order_by(Resource.published_at.desc(), Resource.id.desc()).limit(page.limit + 1)
    rows = list((await session.execute(query)).scalars())
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    cursor = (
        encode_cursor([as_utc(rows[-1].published_at).isoformat(), rows[-1].id]) if more and rows else None
    )
    return rows, cursor


def _moment(value: object) -> datetime:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        raise invalid("cursor", "is not a cursor this API returned") from None


async def feed(
    *, session: AsyncSession, family: Family, page: PageParams
) -> tuple[list[FeedItem], str | None]:
    """What fits each child's age today, most relevant first, then newest. Relevance, one point
    each: every child of the family the resource fits; a span of ≤ 12 months (specific to the age);
    a grandparents' resource for a family where grandparents care; a topic that speaks to the
    family's situation (FOCUS_TOPICS: newborn, in need, grandparent carers)."""
    today = shanghai_today()
    children = (
        await session.execute(select(Child.id, Child.birth_date).where(Child.family_id == family.id))
    ).all()
    ages = {child_id: age_in_months(birth, today) for child_id, birth in children}
    if not ages:
        return [], None
    fits = [and_(Resource.age_from_months <= a, Resource.age_to_months >= a) for a in ages.values()]
    audiences = [Audience.parents.value] + (
        [Audience.grandparents.value] if family.grandparent_carers else []
    )
    focus = [t for flag, topics in FOCUS_TOPICS.items() if getattr(family, flag) for t in topics]
    relevance = sum(
        (case((fit, 1), else_=0) for fit in fits),
        start=case((Resource.age_to_months - Resource.age_from_months < SPECIFIC_SPAN_MONTHS, 1), else_=0),
    )
    if family.grandparent_carers:
        relevance = relevance + case((Resource.audience == Audience.grandparents.value, 1), else_=0)
    if focus:
        relevance = relevance + case((or_(*(_has_topic(t) for t in focus)), 1), else_=0)
    relevance = cast(relevance, Integer).label("relevance")
    query = select(Resource, relevance).where(
        Resource.audience.in_(audiences), or_(*fits) if fits else false()
    )
    if page.after and len(page.after) == 3:
        try:
            last_rel = int(str(page.after[0]))
        except ValueError:
            raise invalid("cursor", "is not a cursor this API returned") from None
        moment, last_id = _moment(page.after[1]), str(page.after[2])
        rel = relevance.element
        query = query.where(
            or_(
                rel < last_rel,
                and_(rel == last_rel, Resource.published_at < moment),
                and_(rel == last_rel, Resource.published_at == moment, Resource.id < last_id),
            )
        )
    query = query.order_by(relevance.desc(), Resource.published_at.desc(), Resource.id.desc()).limit(
        page.limit + 1
    )
    rows = (await session.execute(query)).all()
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    items = [
        FeedItem(
            **to_read(r).model_dump(),
            relevance=int(score),
            for_child_ids=sorted(c for c, a in ages.items() if r.age_from_months <= a <= r.age_to_months),
        )
        for r, score in rows
    ]
    cursor = None
    if more and rows:
        last, score = rows[-1]
        cursor = encode_cursor([int(score), as_utc(last.published_at).isoformat(), last.id])
    return items, cursor
