"""workforce's HTTP layer: parse, authorize, call the service, return. One module per entity."""

from services.workforce.router.background_checks import router as background_checks_router
from services.workforce.router.ban_checks import router as ban_checks_router
from services.workforce.router.bans import router as bans_router
from services.workforce.router.compliance import router as compliance_router
from services.workforce.router.employments import router as employments_router
from services.workforce.router.imports import router as imports_router
from services.workforce.router.practitioners import router as practitioners_router

ROUTERS = [
    practitioners_router,
    background_checks_router,
    employments_router,
    bans_router,
    ban_checks_router,
    compliance_router,
    imports_router,
]

__all__ = ["ROUTERS"]
