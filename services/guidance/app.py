"""guidance: stations, families, home visits, sessions and resources for every child's age."""

from __future__ import annotations

from fastapi import FastAPI

from services.guidance.config import GuidanceSettings
from services.guidance.models import metadata
from services.guidance.router import ROUTERS
from services.guidance.service.common import PHONE, Guidance
from shared.pii_keys import SealedColumn, refuse_lost_keys
from shared.service import create_service_app

# Every encrypted field, for the start-up key check and `cradle keys rotate`. (Link codes sealed in
# stored idempotent replies live 24 hours; `cradle keys retire` waits for them.)
SEALED_COLUMNS = (SealedColumn("guardian", "phone_key_id", "phone_encrypted", PHONE),)


def create_app(settings: GuidanceSettings | None = None) -> FastAPI:
    settings = settings or GuidanceSettings()
    app = create_service_app(
        settings=settings,
        title="Cradle guidance",
        metadata=metadata,
        routers=ROUTERS,
    )
    app.state.guidance = Guidance.from_settings(settings)
    refuse_lost_keys(
        app,
        service="guidance",
        columns=SEALED_COLUMNS,
        database_url=settings.database_url,
        configured=settings.pii_keys,
    )
    return app
