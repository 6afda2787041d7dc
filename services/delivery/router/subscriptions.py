"""`/v1/subscriptions`: a client's webhooks, their attempts, replays and secret rotation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from services.delivery.deps import OwnSubscription, PolicyDep, SettingsDep, Subscriber
from services.delivery.models import Subscription
from services.delivery.schemas import (
    DeliveryAttemptRead,
    ReplayRead,
    SubscriptionCreate,
    SubscriptionRead,
    SubscriptionUpdate,
    SubscriptionWithSecret,
)
from services.delivery.service import subscriptions
from shared.errors import invalid
from shared.pagination import Page, PageParams, make_page, page_params
from shared.service import SessionDep

router = APIRouter(prefix="/v1/subscriptions", tags=["subscriptions"])
Paging = Annotated[PageParams, Depends(page_params)]


def _read(subscription: Subscription) -> SubscriptionRead:
    return SubscriptionRead.model_validate(subscription, from_attributes=True)


def _with_secret(subscription: Subscription) -> SubscriptionWithSecret:
    return SubscriptionWithSecret.model_validate(subscription, from_attributes=True)


@router.post("", status_code=201, response_model=SubscriptionWithSecret)
async def create_subscription(
    body: SubscriptionCreate,
    session: SessionDep,
    caller: Subscriber,
    policy: PolicyDep,
    settings: SettingsDep,
) -> SubscriptionWithSecret:
    """Subscribe a URL to event types (globs on `cradle.<service>.<entity>.<verb>`). The reply holds
    the signing secret (`whsec_…`), shown this once."""
    subscription = await subscriptions.create(
        session=session, caller=caller, data=body, policy=policy, limit=settings.max_subscriptions_per_client
    )
    return _with_secret(subscription)


@router.get("", response_model=Page[SubscriptionRead])
async def list_subscriptions(session: SessionDep, caller: Subscriber, page: Paging) -> Page[SubscriptionRead]:
    rows = await subscriptions.list_own(session=session, caller=caller, page=page)
    result = make_page(rows, limit=page.limit, position_of=lambda s: [s.id])
    return Page[SubscriptionRead](items=[_read(s) for s in result.items], next_cursor=result.next_cursor)


@router.get("/{subscription_id}", response_model=SubscriptionRead)
async def get_subscription(subscription: OwnSubscription) -> SubscriptionRead:
    return _read(subscription)


@router.patch("/{subscription_id}", response_model=SubscriptionRead)
async def change_subscription(
    body: SubscriptionUpdate,
    session: SessionDep,
    caller: Subscriber,
    subscription: OwnSubscription,
    policy: PolicyDep,
) -> SubscriptionRead:
    changed = await subscriptions.change(
        session=session, caller=caller, subscription=subscription, data=body, policy=policy
    )
    return _read(changed)


@router.delete("/{subscription_id}", status_code=204, response_class=Response)
async def delete_subscription(session: SessionDep, subscription: OwnSubscription) -> Response:
    await subscriptions.delete(session=session, subscription=subscription)
    return Response(status_code=204)


@router.post("/{subscription_id}/rotate-secret", response_model=SubscriptionWithSecret)
async def rotate_secret(
    session: SessionDep, subscription: OwnSubscription, settings: SettingsDep
) -> SubscriptionWithSecret:
    """A new secret, shown once. The old one keeps signing beside it (two `v1,` signatures) for the
    grace period (`DELIVERY_SECRET_GRACE_SECONDS`, a day by default)."""
    rotated = await subscriptions.rotate_secret(
        session=session, subscription=subscription, grace=timedelta(seconds=settings.secret_grace_seconds)
    )
    return _with_secret(rotated)


@router.get("/{subscription_id}/deliveries", response_model=Page[DeliveryAttemptRead])
async def list_attempts(
    session: SessionDep, subscription: OwnSubscription, page: Paging
) -> Page[DeliveryAttemptRead]:
    """Every attempt to deliver, newest first: the receiver's status, the latency and the first KiB
    of its reply, or why no answer came."""
    rows = await subscriptions.attempts(session=session, subscription=subscription, page=page)
    result = make_page(rows, limit=page.limit, position_of=lambda a: [a.id])
    return Page[DeliveryAttemptRead](
        items=[DeliveryAttemptRead.model_validate(a, from_attributes=True) for a in result.items],
        next_cursor=result.next_cursor,
    )


@router.post("/{subscription_id}/replay", status_code=202, response_model=ReplayRead)
async def replay(
    session: SessionDep,
    caller: Subscriber,
    subscription: OwnSubscription,
    settings: SettingsDep,
    since: Annotated[datetime, Query(description="Re-send the events from this time on (with its offset)")],
) -> ReplayRead:
    if since.tzinfo is None:
        raise invalid("since", "give the time with its offset, e.g. 2026-12-05T00:00:00+08:00")
    count = await subscriptions.replay(
        session=session,
        caller=caller,
        subscription=subscription,
        since=since.astimezone(UTC),
        max_events=settings.replay_max_events,
    )
    return ReplayRead(replayed=count, since=since)
