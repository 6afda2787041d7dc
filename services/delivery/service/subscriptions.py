"""Subscriptions: a client's webhooks, each with its own signing secret. A subscription belongs to
the client that made it; any other caller is told it does not exist."""

from __future__ import annotations

import base64
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.delivery.errors import (
    NotAnEventReader,
    SubscriptionNotFound,
    TooManySubscriptions,
    UnsafeTarget,
)
from services.delivery.models import (
    PENDING,
    Delivery,
    DeliveryAttempt,
    DeliveryLease,
    EventRecord,
    Subscription,
)
from services.delivery.schemas import SubscriptionCreate, SubscriptionUpdate
from services.delivery.service.audience import may_see, places_by_event, reads_events, type_matcher
from services.delivery.service.log import DELIVERIES_DIRTY, SUBSCRIPTIONS_HELD
from services.delivery.service.targets import TargetPolicy, resolve
from shared.clock import utcnow
from shared.errors import invalid
from shared.identity import Identity
from shared.pagination import PageParams

DELIVERIES = Delivery.__table__
LEASES = DeliveryLease.__table__
ATTEMPTS = DeliveryAttempt.__table__

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def require_reader(caller: Identity) -> None:
    if not reads_events(caller):
        raise NotAnEventReader(
            "Events are delivered to bureau, district and operator clients: what each may read "
            "through the API."
        )


async def check_url(url: str, policy: TargetPolicy) -> None:
    try:
        await resolve(url, policy)
    except UnsafeTarget as exc:
        raise invalid("url", str(exc.detail)) from None


def snapshot(caller: Identity) -> dict[str, object]:
    """What the subscriber may read, kept with the subscription (refreshed by every change to it)."""
    return caller.model_dump(
        mode="json", include={"client_id", "kind", "bureau", "district_code", "facility_ids", "scopes"}
    )


async def create(
    *, session: AsyncSession, caller: Identity, data: SubscriptionCreate, policy: TargetPolicy, limit: int
) -> Subscription:
    require_reader(caller)
    await check_url(data.url, policy)
    owned = (
        await session.execute(
            select(func.count()).select_from(Subscription).where(Subscription.client_id == caller.client_id)
        )
    ).scalar_one()
    if owned >= limit:
        raise TooManySubscriptions(f"A client may have {limit} subscriptions; delete one first.")
    now = utcnow()
    subscription = Subscription(
        id=str(uuid.uuid4()),
        client_id=caller.client_id,
        identity=snapshot(caller),
        url=data.url,
        event_types=list(dict.fromkeys(data.event_types)),
        description=data.description,
        secret=new_secret(),
        created_at=now,
        updated_at=now,
    )
    session.add(subscription)
    await session.flush()
    return subscription


async def get_own(
    *, session: AsyncSession, caller: Identity, subscription_id: str, for_update: bool = False
) -> Subscription:
    subscription = await session.get(Subscription, subscription_id, with_for_update=for_update or None)
    if subscription is None or subscription.client_id != caller.client_id:
        raise SubscriptionNotFound(f"No subscription {subscription_id} of yours.")
    return subscription


async def list_own(*, session: AsyncSession, caller: Identity, page: PageParams) -> list[Subscription]:
    query = select(Subscription).where(Subscription.client_id == caller.client_id)
    if page.after:
        query = query.where(Subscription.id > str(page.after[0]))
    rows = await session.execute(query.order_by(Subscription.id).limit(page.limit + 1))
    return list(rows.scalars())


async def change(
    *,
    session: AsyncSession,
    caller: Identity,
    subscription: Subscription,
    data: SubscriptionUpdate,
    policy: TargetPolicy,
) -> Subscription:
    changes = data.model_dump(exclude_unset=True)  # nulls only where clearable (PartialUpdate)
    if "url" in changes:
        await check_url(changes["url"], policy)
        subscription.url = changes["url"]
    if "event_types" in changes:
        subscription.event_types = list(dict.fromkeys(changes["event_types"]))
    if "description" in changes:
        subscription.description = changes["description"]
    if changes.get("enabled") is True and not subscription.enabled:
        subscription.enabled = True
        subscription.disabled_reason = None
        subscription.disabled_at = None
        subscription.failing_since = None
        # What waited while it was off is owed now, not after the backoff it had reached.
        await session.execute(
            update(Delivery)
            .where(Delivery.subscription_id == subscription.id, Delivery.status == PENDING)
            .values(next_attempt_at=utcnow())
        )
        await session.execute(LEASES.delete().where(LEASES.c.subscription_id == subscription.id))
        session.info[DELIVERIES_DIRTY] = True
    elif changes.get("enabled") is False and subscription.enabled:
        subscription.enabled = False
        subscription.disabled_reason = "disabled by its owner"
        subscription.disabled_at = utcnow()
    subscription.identity = snapshot(caller)
    subscription.updated_at = utcnow()
    subscription.version += 1
    await session.flush()
    return subscription


async def delete(*, session: AsyncSession, subscription: Subscription) -> None:
    """The subscription and every row of it. Its tables have no foreign keys (models.py's
    `Delivery`), so the subscription's row is locked first: whoever adds rows for it (the consumers
    owing deliveries, the sender recording attempts, a replay) holds it `FOR KEY SHARE` while it
    does, and either finishes first, its rows then deleted here, or waits and finds it gone."""
    await session.execute(select(Subscription.id).where(Subscription.id == subscription.id).with_for_update())
    attempted = select(ATTEMPTS.c.delivery_id).where(ATTEMPTS.c.subscription_id == subscription.id)
    # Every delivered delivery has an attempt of its subscription; the rest are pending.
    await session.execute(DELIVERIES.delete().where(DELIVERIES.c.id.in_(attempted)))
    await session.execute(
        DELIVERIES.delete().where(
            DELIVERIES.c.subscription_id == subscription.id, DELIVERIES.c.status == PENDING
        )
    )
    await session.execute(LEASES.delete().where(LEASES.c.subscription_id == subscription.id))
    await session.execute(ATTEMPTS.delete().where(ATTEMPTS.c.subscription_id == subscription.id))
    await session.delete(subscription)
    await session.flush()


async def hold(*, session: AsyncSession, subscription: Subscription) -> None:
    """Keep the subscription from being deleted until this transaction ends (its rows are added
    now), or raise if it was deleted meanwhile."""
    held = await session.execute(SUBSCRIPTIONS_HELD, {"subscription_ids": [subscription.id]})
    if held.scalar_one_or_none() is None:
        raise SubscriptionNotFound(f"No subscription {subscription.id}.")


async def rotate_secret(
    *, session: AsyncSession, subscription: Subscription, grace: timedelta
) -> Subscription:
    """A new secret signs from now on; the old one signs beside it until the grace period ends, so a
    receiver can switch without missing a delivery."""
    now = utcnow()
    subscription.previous_secret = subscription.secret if grace.total_seconds() > 0 else None
    subscription.previous_secret_until = now + grace if grace.total_seconds() > 0 else None
    subscription.secret = new_secret()
    subscription.updated_at = now
    subscription.version += 1
    await session.flush()
    return subscription


async def attempts(
    *, session: AsyncSession, subscription: Subscription, page: PageParams
) -> list[DeliveryAttempt]:
    """Newest first."""
    query = select(DeliveryAttempt).where(DeliveryAttempt.subscription_id == subscription.id)
    if page.after:
        try:
            before = int(page.after[0])
        except (TypeError, ValueError):
            raise invalid("cursor", "is not a cursor this API returned") from None
        query = query.where(DeliveryAttempt.id < before)
    rows = await session.execute(query.order_by(DeliveryAttempt.id.desc()).limit(page.limit + 1))
    return list(rows.scalars())


async def replay(
    *, session: AsyncSession, caller: Identity, subscription: Subscription, since: datetime, max_events: int
) -> int:
    """Owe again every event since `since` that the subscription asks for and may see (as its owner
    may now), in their order. Each goes out again with its own `webhook-id` (the event's id), so a
    receiver that already has it can tell."""
    require_reader(caller)
    await hold(session=session, subscription=subscription)
    subscription.identity = snapshot(caller)
    reader = Identity.model_validate(subscription.identity)
    matcher = type_matcher(subscription.event_types)
    now = utcnow()
    owed = 0
    after = 0
    while owed < max_events:
        records = list(
            (
                await session.execute(
                    select(
                        EventRecord.seq,
                        EventRecord.type,
                        EventRecord.scope,
                        EventRecord.subject,
                        EventRecord.event_id,
                    )
                    .where(EventRecord.time >= since, EventRecord.seq > after)
                    .order_by(EventRecord.seq)
                    .limit(500)
                )
            ).all()
        )
        if not records:
            break
        after = records[-1].seq
        places = await places_by_event(session, [r.seq for r in records])
        rows = [
            {
                "subscription_id": subscription.id,
                "event_seq": r.seq,
                "order_key": (r.subject or r.event_id)[:64],
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
            for r in records
            if matcher.match(r.type) and may_see(reader, scope=r.scope, places=places.get(r.seq, []))
        ][: max_events - owed]
        if rows:
            await session.execute(Delivery.__table__.insert(), rows)
            owed += len(rows)
    if owed:
        session.info[DELIVERIES_DIRTY] = True
    return owed
