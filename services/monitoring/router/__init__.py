"""monitoring's HTTP layer: parse, authorize, call the service, return. One module per entity: the
watch (cameras, CCTV events, alerts), the casework (incidents, inspections, risk and figures) and
complaints."""

from services.monitoring.router.alerts import router as alerts_router
from services.monitoring.router.cameras import router as cameras_router
from services.monitoring.router.cctv_events import router as cctv_events_router
from services.monitoring.router.complaints import router as complaints_router
from services.monitoring.router.incidents import router as incidents_router
from services.monitoring.router.inspections import router as inspections_router
from services.monitoring.router.risk import router as risk_router

ROUTERS = [
    cameras_router,
    cctv_events_router,
    alerts_router,
    incidents_router,
    inspections_router,
    risk_router,
    complaints_router,
]

__all__ = ["ROUTERS"]
