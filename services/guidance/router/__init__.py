"""guidance's HTTP layer: parse, authorize, call the service, return. One module per sub-domain."""

from services.guidance.router.families import router as families_router
from services.guidance.router.figures import router as figures_router
from services.guidance.router.places import router as places_router
from services.guidance.router.resources import router as resources_router
from services.guidance.router.sessions import router as sessions_router

ROUTERS = [places_router, families_router, sessions_router, resources_router, figures_router]

__all__ = ["ROUTERS"]
