"""The producer's end: the outbox writes only events whose payload keeps their type's contract."""

from __future__ import annotations

from typing import ClassVar

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from services.monitoring.events import IncidentConfirmed
from services.registry.models import outbox
from shared.contracts import UnknownEventType
from shared.db import make_engine
from shared.events.envelope import DomainEvent
from shared.events.outbox import OutboxWriter, emit, outbox_session_info
from shared.events.streams import Namespace
from tests.support import DatabaseFactory


class Uncontracted(DomainEvent):
    event_type: ClassVar[str] = "cradle.registry.facility.teleported"
    facility_id: str


def confirmed(**overrides: object) -> IncidentConfirmed:
    values: dict[str, object] = {
        "incident_id": "5d1c3c1e-7a43-4f4e-9d59-1b6f0e0a2b11",
        "facility_id": "0b8f1f7e-1c1d-4a55-8a8e-3e0d6b6f3a22",
        "district_code": "310104",
        "category": "abuse",
        "decision_ref": "徐教监〔2026〕12号",
        "decided_at": "2026-11-21T10:00:00+08:00",
        "abuser_practitioner_ids": ["6c2e0c55-3b5e-4f9a-9f1e-2d7c4b1a0e33"],
        "responsible_manager_ids": [],
    }
    return IncidentConfirmed(**(values | overrides))


async def test_an_unknown_type_or_a_payload_breaking_its_contract_is_never_written(
    databases: DatabaseFactory,
) -> None:
    engine = make_engine(await databases.fresh("registry"))
    info = outbox_session_info(OutboxWriter(outbox, Namespace("cradle"), "/cradle/registry"))
    maker = async_sessionmaker(engine, expire_on_commit=False, info=info)
    try:
        with pytest.raises(UnknownEventType, match="teleported"):
            async with maker() as session, session.begin():
                await emit(session, Uncontracted(facility_id="x"))
        # Built without validation, or changed after: the outbox checks the payload as it will be read.
        too_long = confirmed()
        too_long.decision_ref = "号" * 101
        with pytest.raises(ValidationError, match="decision_ref"):
            async with maker() as session, session.begin():
                await emit(session, too_long)
        shouted = IncidentConfirmed.model_construct(
            **(confirmed().model_dump() | {"abuser_practitioner_ids": ["X"]})
        )
        with pytest.raises(ValidationError, match="abuser_practitioner_ids"):
            async with maker() as session, session.begin():
                await emit(session, shouted)
        async with maker() as session, session.begin():
            await emit(session, confirmed())
        async with maker() as session:
            assert (await session.execute(select(func.count()).select_from(outbox))).scalar_one() == 1
    finally:
        await engine.dispose()
