from shared.errors import CradleError, NotFound, Unauthorized


class InvalidClient(Unauthorized):
    title = "Invalid client"
    type = "/problems/invalid-client"


class ClientNotFound(NotFound):
    title = "Client not found"


class UpstreamTimeout(CradleError):
    status, title, type = 504, "Upstream timeout", "/problems/upstream-timeout"


class PayloadTooLarge(CradleError):
    status, title, type = 413, "Payload too large", "/problems/too-large"
