"""registry's HTTP layer: parse, authorize, call the service, return. The facilities' routes (with
their applications, quality and coverage), health records and figures, the quality framework, the
public disclosure, the import of licensed facilities, and the search fast path that answers a plain
search before FastAPI's routing."""

from services.registry.router.facilities import router
from services.registry.router.fees import router as fees_router
from services.registry.router.health import router as health_router
from services.registry.router.imports import router as imports_router
from services.registry.router.public import public_router
from services.registry.router.quality import router as quality_router
from services.registry.router.subsidies import router as subsidies_router

ROUTERS = [
    router,
    public_router,
    imports_router,
    health_router,
    quality_router,
    fees_router,
    subsidies_router,
]

__all__ = [
    "ROUTERS",
    "health_router",
    "quality_router",
    "fees_router",
    "imports_router",
    "public_router",
    "router",
    "subsidies_router",
]
