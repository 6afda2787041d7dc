"""The casework's HTTP layer: incidents, inspectors and plans, inspections, risk and figures."""

from fastapi import APIRouter

from services.monitoring.casework.routes import incidents, inspections, risk

router = APIRouter(prefix="/v1")
router.include_router(incidents.router)
router.include_router(inspections.router)
router.include_router(risk.router)
