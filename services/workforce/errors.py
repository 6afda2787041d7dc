from shared.errors import Conflict, NotFound


class PractitionerNotFound(NotFound):
    title = "Practitioner not found"


class FacilityNotFound(NotFound):
    title = "Facility not found"


class EmploymentNotFound(NotFound):
    title = "Employment not found"


class BanNotFound(NotFound):
    title = "Ban not found"


class BackgroundCheckNotFound(NotFound):
    title = "Background check not found"


class NotificationNotFound(NotFound):
    title = "Ban notification not found"


class BannedPerson(Conflict):
    title, type = "Person is banned from childcare", "/problems/banned-person"


class BackgroundCheckFlagged(Conflict):
    title, type = "Background check flagged", "/problems/background-check-flagged"


class FacilityNotApproved(Conflict):
    title, type = "Facility not approved", "/problems/facility-not-approved"


class AlreadyEmployed(Conflict):
    title, type = "Already employed", "/problems/already-employed"


class EmploymentEnded(Conflict):
    title, type = "Employment already ended", "/problems/employment-ended"


class BanExists(Conflict):
    title, type = "Ban already issued", "/problems/ban-exists"


class BanAlreadyRescinded(Conflict):
    title, type = "Ban already rescinded", "/problems/ban-rescinded"


class BackgroundCheckState(Conflict):
    title, type = "Background check is not in that state", "/problems/background-check-state"


class HealthCertificateMissing(Conflict):
    title, type = "Health certificate missing", "/problems/health-certificate-missing"


class EmploymentNotSuspended(Conflict):
    title, type = "Employment is not suspended", "/problems/employment-not-suspended"
