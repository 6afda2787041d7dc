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
