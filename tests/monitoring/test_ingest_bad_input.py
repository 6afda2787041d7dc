"""CCTV ingest under hostile or colliding input: an event id is unique within its facility only
(another facility's same id is another event, on HTTP and on NATS, across batches and restarts), a
body nested hundreds deep is a 422 that leaves the service serving, and nothing of the caller's
credentials reaches the log."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import nats
import pytest
from sqlalchemy import insert, select

from services.monitoring.models import Alert, CctvEvent
from services.monitoring.service.ingest import Ingest, dedup_key, id_ms
from shared.events.streams import Namespace
from shared.identity import ClientKind, Identity
from tests.monitoring.conftest import MonitoringStack, cctv_event
from tests.support import eventually


async def abuse_alerts(mon: MonitoringStack) -> dict[str, int]:
    async with mon.monitoring.state.sessionmaker() as session:
        rows = (await session.execute(select(Alert).where(Alert.type == "abuse_suspected"))).scalars()
        return {alert.facility_id: alert.count for alert in rows}


async def stored_ids(mon: MonitoringStack) -> list[tuple[str, str]]:
    async with mon.monitoring.state.sessionmaker() as session:
        rows = await session.execute(select(CctvEvent.event_id, CctvEvent.facility_id))
        return sorted((row.event_id, row.facility_id) for row in rows)


async def test_the_same_event_id_at_two_facilities_is_two_events(mon: MonitoringStack) -> None:
    first = await mon.approved_facility()
    second = await mon.approved_facility("other_operator")
    camera = await mon.camera(first["id"])
    other_camera = await mon.camera(second["id"], who="other_operator")

    mine = cctv_event(camera, type="abuse_suspected", event_id="evt-0001")
    theirs = cctv_event(other_camera, type="abuse_suspected", event_id="evt-0001")
    reply = (await mon.send([mine])).json()
    assert (reply["accepted"], reply["duplicates"]) == (1, 0)
    # The other facility's video system happens to number its events alike: still a new event.
    reply = (await mon.send([theirs], who="other_operator")).json()
    assert (reply["accepted"], reply["duplicates"], reply["alerts_raised"]) == (1, 0, 1)
    assert await abuse_alerts(mon) == {first["id"]: 1, second["id"]: 1}

    # A city platform sending both in one batch, again, and a repeat within the batch: duplicates.
    reply = (await mon.send([mine, theirs, mine], who="video_platform")).json()
    assert (reply["accepted"], reply["duplicates"], reply["rejected"]) == (0, 3, [])

    # After a restart (a new ingest, nothing in memory) the database still knows them.
    fresh = Ingest(settings=mon.monitoring.state.settings, maker=mon.monitoring.state.sessionmaker)
    platform = Identity(
        client_id="platform", kind=ClientKind.bureau, bureau="EDU", scopes=["monitoring:ingest"]
    )
    again = await fresh.accept([theirs, mine], platform)
    assert (again.accepted, again.duplicates) == (0, 2)
    assert await stored_ids(mon) == sorted([("evt-0001", first["id"]), ("evt-0001", second["id"])])
    assert await abuse_alerts(mon) == {first["id"]: 1, second["id"]: 1}


@pytest.mark.parametrize("event_id", ["evt-new", "017f22e2-79b0-7cc3-98c4-dc0c0c07398f"])
async def test_an_event_whose_key_holds_another_event_is_refused_not_dropped(
    event_id: str, mon: MonitoringStack
) -> None:
    """The table is keyed by the id's milliseconds (0 unless it is time-ordered) and 64 bits of a
    hash of (facility, event id): a stored event that happens to have the same key is not this
    event, so this one is refused by name, never counted as a repeat and silently lost. (A collision
    is too rare to meet by chance: the stored row is made.)"""
    facility = await mon.approved_facility()
    camera = await mon.camera(facility["id"])
    event = cctv_event(camera, event_id=event_id)
    async with mon.monitoring.state.sessionmaker() as session, session.begin():
        await session.execute(
            insert(CctvEvent.__table__).values(
                id_ms=id_ms(event_id),
                dedup_key=dedup_key(facility["id"], event_id),
                event_id="evt-stored-long-ago",
                camera_id=camera["id"],
                facility_id=facility["id"],
                type="heartbeat",
                occurred_at=datetime.now(UTC),
                received_at=datetime.now(UTC),
                payload={},
            )
        )
    reply = (await mon.send([event, cctv_event(camera)])).json()
    assert (reply["accepted"], reply["duplicates"]) == (1, 0)
    assert [(r["index"], r["event_id"], r["errors"][0]["field"]) for r in reply["rejected"]] == [
        (0, event_id, "event_id")
    ]
    assert (event_id, facility["id"]) not in await stored_ids(mon)


async def test_devices_on_nats_with_the_same_event_id_are_both_stored(mon: MonitoringStack) -> None:
    first = await mon.approved_facility()
    second = await mon.approved_facility("other_operator")
    cameras = {
        first["id"]: await mon.camera(first["id"]),
        second["id"]: await mon.camera(second["id"], who="other_operator"),
    }
    ns = Namespace(mon.namespace)
    nc = await nats.connect(mon.monitoring.state.settings.nats_url)
    try:
        js = nc.jetstream()
        for facility_id, camera in cameras.items():
            event = cctv_event(camera, type="abuse_suspected", event_id="nvr-42")
            # The message id names the facility: the stream's duplicate window is city-wide.
            await js.publish(
                ns.ingest_subject(facility_id),
                json.dumps(event).encode(),
                headers={"Nats-Msg-Id": f"{facility_id}:nvr-42"},
            )
        # A device that re-sends after its own restart (a new message id): a duplicate in the table.
        event = cctv_event(cameras[first["id"]], type="abuse_suspected", event_id="nvr-42")
        await js.publish(ns.ingest_subject(first["id"]), json.dumps([event]).encode())
        # A message nested far too deep is terminated, not redelivered for ever.
        await js.publish(ns.ingest_subject(first["id"]), b"[" * 300 + b"]" * 300)
    finally:
        await nc.close()

    consumer = mon.monitoring.state.ingest_consumer
    await eventually(lambda: consumer.stored == 2 and consumer.rejected == 1)
    assert await stored_ids(mon) == sorted([("nvr-42", first["id"]), ("nvr-42", second["id"])])
    assert await abuse_alerts(mon) == {first["id"]: 1, second["id"]: 1}


def nested(depth: int) -> Any:
    value: Any = {"leaf": True}
    for _ in range(depth):
        value = {"a": value}
    return value


async def test_a_deeply_nested_batch_is_a_422_and_the_service_keeps_serving(
    mon: MonitoringStack, capsys: pytest.CaptureFixture[str]
) -> None:
    facility = await mon.approved_facility()
    camera = await mon.camera(facility["id"])
    headers = await mon.headers("operator")
    capsys.readouterr()
    hostile = [cctv_event(camera, payload=nested(300))]
    for _ in range(20):
        response = await mon.client.post(
            "/v1/cctv-events",
            content=json.dumps(hostile).encode(),
            headers={**headers, "content-type": "application/json"},
        )
        assert response.status_code == 422, response.text
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["max_depth"] == 32 and "32" in problem["detail"]

    # Deep enough to pass the body's limit, too deep for a device payload: refused event by event.
    reply = await mon.send([cctv_event(camera, payload=nested(20)), cctv_event(camera)])
    assert reply.status_code == 200, reply.text
    assert reply.json()["accepted"] == 1 and reply.json()["rejected"][0]["index"] == 0

    # Still serving, and nothing of the caller's token in what was logged.
    assert (await mon.send([cctv_event(camera)])).json()["accepted"] == 1
    logged = capsys.readouterr()
    token = headers["Authorization"].removeprefix("Bearer ")
    assert token not in logged.err + logged.out
    assert "Traceback" not in logged.err


HOSTILE: list[tuple[str, Any]] = [
    ("occurred_at", "0001-01-01T00:00:00+14:00"),
    ("occurred_at", "9999-12-31T23:59:59-12:00"),
    ("occurred_at", 0),
    ("occurred_at", "2026-11-28T09:30:00"),  # naive
    ("external_id", "cam\u0000era"),
    ("payload", {"note": "a\u0000b"}),
    ("payload", nested(20)),  # within the body's limit, deeper than a payload may be
]


async def test_hostile_values_are_refused_event_by_event(mon: MonitoringStack) -> None:
    facility = await mon.approved_facility()
    camera = await mon.camera(facility["id"])
    headers = {**await mon.headers("operator"), "content-type": "application/json"}
    for field, value in HOSTILE:
        event = cctv_event(camera, **{field: value})
        if field == "external_id":
            event.pop("camera_id")
        body = json.dumps([event, cctv_event(camera)]).encode()
        response = await mon.client.post("/v1/cctv-events", content=body, headers=headers)
        assert response.status_code == 200, (field, value, response.text)
        reply = response.json()
        assert reply["accepted"] == 1 and [r["index"] for r in reply["rejected"]] == [0], (
            field,
            value,
            reply,
        )
