from shared.errors import NotFound


class FacilityNotFound(NotFound):
    title = "Facility not found"
