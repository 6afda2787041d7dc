"""Load-and-authorize dependencies: callers of the feed and the webhooks, a subscription of the
caller's own (anyone else's is a 404)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from services.delivery.config import DeliverySettings
from services.delivery.models import Subscription
from services.delivery.service import subscriptions
from services.delivery.service.audience import PARENT_SCOPE
from services.delivery.service.targets import TargetPolicy
from shared.errors import Forbidden
from shared.i18n import tr
from shared.identity import AuthenticatedDep, ClientKind, Identity, scope_guard
from shared.service import SessionDep

FEED_SCOPE = "events:read"
SUBSCRIBE_SCOPE = "events:subscribe"
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
IdPath = Annotated[str, Path(pattern=UUID_PATTERN, description="a UUID")]


async def feed_reader(caller: AuthenticatedDep) -> Identity:
    """`events:read`, or a parent's account (`parent`): it reads its own family's events."""
    scope = PARENT_SCOPE if caller.kind == ClientKind.parent else FEED_SCOPE
    if not caller.has_scope(scope):
        raise Forbidden(tr("This needs the `{scope}` scope.", scope=scope))
    subscriptions.require_reader(caller)
    return caller


async def subscriber(caller: Annotated[Identity, scope_guard(SUBSCRIBE_SCOPE)]) -> Identity:
    subscriptions.require_reader(caller)
    return caller


FeedReader = Annotated[Identity, Depends(feed_reader)]
Subscriber = Annotated[Identity, Depends(subscriber)]


async def settings(request: Request) -> DeliverySettings:
    return request.app.state.settings


SettingsDep = Annotated[DeliverySettings, Depends(settings)]


async def target_policy(request: Request) -> TargetPolicy:
    return request.app.state.target_policy


PolicyDep = Annotated[TargetPolicy, Depends(target_policy)]


async def own_subscription(session: SessionDep, caller: Subscriber, subscription_id: IdPath) -> Subscription:
    return await subscriptions.get_own(
        session=session, caller=caller, subscription_id=subscription_id.lower()
    )


OwnSubscription = Annotated[Subscription, Depends(own_subscription)]
