from shared.errors import Conflict, CradleError, NotFound


class FacilityNotFound(NotFound):
    title = "Facility not found"


class CameraNotFound(NotFound):
    title = "Camera not found"


class AlertNotFound(NotFound):
    title = "Alert not found"


class TransitionNotAllowed(Conflict):
    title = "State change not allowed"
    type = "/problems/state-change"


class BatchTooLarge(CradleError):
    status, title, type = 413, "Batch too large", "/problems/batch-too-large"


class StaleVersion(CradleError):
    status, title, type = 412, "Precondition failed", "/problems/stale-version"
