"""The casework's error types (rendered by the one problem+json handler)."""

from shared.errors import Conflict, NotFound


class IncidentNotFound(NotFound):
    title = "Incident not found"


class InspectionNotFound(NotFound):
    title = "Inspection not found"


class PlanNotFound(NotFound):
    title = "Inspection plan not found"


class InspectorNotFound(NotFound):
    title = "Inspector not found"


class AlreadyDecided(Conflict):
    title = "Already decided"
    type = "/problems/already-decided"


class NotEnoughInspectors(Conflict):
    title = "Not enough inspectors"
    type = "/problems/not-enough-inspectors"


class NothingToDraw(Conflict):
    title = "Nothing to draw"
    type = "/problems/nothing-to-draw"
