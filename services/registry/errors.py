from shared.errors import Conflict, Forbidden, NotFound


class FacilityNotFound(NotFound):
    title = "Facility not found"


class ApplicationClosed(Conflict):
    title = "Application already decided"
    type = "/problems/application-closed"


class NotYourDepartment(Forbidden):
    title = "Not your department"
    type = "/problems/not-your-department"


class StatusChangeNotAllowed(Conflict):
    title = "Status change not allowed"
    type = "/problems/status-change"


class ChangeRequestNotFound(NotFound):
    title = "Change request not found"


class ChangeRequestClosed(Conflict):
    title = "Change request already decided"
    type = "/problems/change-request-closed"


class NotLicensed(Conflict):
    title = "Not a licensed facility"
    type = "/problems/not-licensed"
