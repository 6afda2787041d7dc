from typing import Any

from shared.errors import CradleError, Forbidden, NotFound, ServiceUnavailable, Unauthorized


class InvalidClient(Unauthorized):
    title = "Invalid client"
    type = "/problems/invalid-client"


class UnauthorizedClient(Forbidden):
    """The client proved who it is but may not get a token (it is disabled)."""

    title = "Unauthorized client"


class ScopeNotGranted(Forbidden):
    """A token was asked for a scope the client does not hold."""

    title = "Scope not granted"


class ClientNotFound(NotFound):
    title = "Client not found"


class MissingScope(Forbidden):
    title = "Missing scope"


class UpstreamUnavailable(ServiceUnavailable):
    """A service is down, refused the connection or did not answer in time."""

    def __init__(self, detail: str, *, retry_after: int, service: str, reason: str, **kwargs: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **kwargs)
        self.service = service
        self.reason = reason


class UpstreamBadReply(UpstreamUnavailable):
    """A service answered something that is not HTTP/1.1 the gateway can pass on."""

    status, title, type = 502, "Bad gateway", "/problems/bad-gateway"


class PayloadTooLarge(CradleError):
    status, title, type = 413, "Payload too large", "/problems/too-large"


class TooManyRequests(CradleError):
    status, title, type = 429, "Too many requests", "/problems/rate-limited"


class MethodNotAllowed(CradleError):
    status, title, type = 405, "Method not allowed", "/problems/method-not-allowed"


class ClientDisconnected(Exception):
    """The caller went away while sending its body: nobody is left to answer."""


class ReplyCut(Exception):
    """The service failed after its reply had started: the caller's reply is cut short."""

    def __init__(self, service: str, status: int) -> None:
        super().__init__(f"{service} failed mid-reply")
        self.service = service
        self.status = status
