from __future__ import annotations

from shared.errors import Conflict, CradleError, Forbidden, NotFound


class SubscriptionNotFound(NotFound):
    title = "Subscription not found"


class NotAnEventReader(Forbidden):
    title = "Not an event reader"


class TooManySubscriptions(Conflict):
    title = "Too many subscriptions"


class UnsafeTarget(CradleError):
    """A webhook URL that may not be called (scheme, or an address that is not public). Raised at
    subscribe time as a 422 on `url`, and at send time as a failed attempt naming why."""

    status, title, type = 422, "Invalid input", "/problems/invalid-input"
