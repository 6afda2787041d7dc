from __future__ import annotations

from typing import Any

from shared.errors import Conflict, CradleError, NotFound


class PlaceNotFound(NotFound):
    title = "Place not found"


class FamilyNotFound(NotFound):
    title = "Family not found"


class SessionNotFound(NotFound):
    title = "Session not found"


class VisitNotFound(NotFound):
    title = "Home visit not found"


class BookingNotFound(NotFound):
    title = "Booking not found"


class ResourceNotFound(NotFound):
    title = "Resource not found"


class LinkCodeNotFound(NotFound):
    title = "No such link code"
    type = "/problems/link-code"


class AlreadyLinked(Conflict):
    title = "Already linked to a family"
    type = "/problems/already-linked"


class SessionFull(Conflict):
    title = "Session full"
    type = "/problems/session-full"


class SessionClosed(Conflict):
    title = "Session not open for booking"
    type = "/problems/session-closed"


class AlreadyBooked(Conflict):
    title = "Already booked"
    type = "/problems/already-booked"


class TooManyLinkAttempts(CradleError):
    status, title, type = 429, "Too many wrong link codes", "/problems/link-attempts"

    def __init__(self, detail: str | None = None, *, retry_after: int, **kwargs: Any) -> None:
        kwargs.setdefault("headers", {"Retry-After": str(retry_after)})
        super().__init__(detail, **kwargs)
