"""The stored event's key is read from its identity alone: the milliseconds a time-ordered id begins
with (UUIDv7, ULID; 0 for any other id), then 64 bits of a hash of (facility, event id). So a
re-sent event is a repeat whatever else it carries, and time-ordered ids append at the index's edge."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from services.monitoring.models import CctvEvent
from services.monitoring.service.ingest import id_ms
from tests.monitoring.conftest import MonitoringStack, cctv_event, ulid, uuid7

NOW_MS = 1_764_900_000_123  # 2025-12-05
# Written out, not drawn: a parallel run's workers must collect the same test ids.
A_UUID7 = "019aec3c-d17b-78e7-88b7-a723bc236e15"
A_ULID = "01KBP3SMBVB5C1Z4G753WSJ1AK"


@pytest.mark.parametrize(
    ("event_id", "expected"),
    [
        (A_UUID7, NOW_MS),
        (A_UUID7.upper(), NOW_MS),
        (A_ULID, NOW_MS),
        (A_ULID.lower(), NOW_MS),
        ("01ARYZ6S41TSV4RRFFQ69G5FAV", 1_469_918_176_385),  # ulid(1469918176385) in the specification
        ("017f22e2-79b0-7cc3-98c4-dc0c0c07398f", 1_645_557_742_000),  # RFC 9562's UUIDv7 example
        ("b7536835-c2d9-431d-bc85-4e6035da4175", 0),  # a uuid4: no time in it
        ("00a17bd4c0364204aaec219e69b1f302", 0),
        ("017f22e2-79b0-4cc3-98c4-dc0c0c07398f", 0),  # the version is 4, not 7
        ("017f22e2-79b0-7cc3-28c4-dc0c0c07398f", 0),  # not RFC 9562's variant
        ("81ARZ3NDEKTSV4RRFFQ69G5FAV", 0),  # past the ULID's 128 bits
        ("01ARZ3NDEKTSV4RRFFQ69G5FAU", 0),  # U is not Crockford's
        ("nvr02-20260302-000173", 0),
        ("事件-1", 0),
    ],
)
def test_the_milliseconds_are_read_from_time_ordered_ids_only(event_id: str, expected: int) -> None:
    assert id_ms(event_id) == expected


def test_the_id_makers_of_these_tests_put_the_time_first() -> None:
    assert (id_ms(uuid7(NOW_MS)), id_ms(ulid(NOW_MS))) == (NOW_MS, NOW_MS)


async def stored(mon: MonitoringStack, event_id: str) -> list[CctvEvent]:
    async with mon.monitoring.state.sessionmaker() as session:
        rows = await session.execute(select(CctvEvent).where(CctvEvent.event_id == event_id))
        return list(rows.scalars())


@pytest.mark.parametrize("make_id", [uuid7, ulid], ids=["uuid7", "ulid"])
async def test_a_time_ordered_event_sent_again_with_other_fields_is_a_repeat(
    make_id: object, mon: MonitoringStack
) -> None:
    facility = await mon.approved_facility()
    camera = await mon.camera(facility["id"])
    ms = int((datetime.now(UTC) - timedelta(minutes=5)).timestamp() * 1000)
    event = cctv_event(camera, event_id=make_id(ms))  # type: ignore[operator]
    first = (await mon.send([event])).json()
    assert (first["accepted"], first["duplicates"]) == (1, 0)
    # The same id from the same facility, its time and payload changed (a device's clock corrected):
    # the key comes from the id alone, so it is the stored event again.
    changed = event | {
        "type": "motion",
        "occurred_at": (datetime.now(UTC) - timedelta(days=2)).isoformat(),
        "payload": {"zone": "B"},
    }
    again = (await mon.send([changed])).json()
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 1, [])
    rows = await stored(mon, event["event_id"])
    assert [(row.id_ms, row.type) for row in rows] == [(ms, "heartbeat")]
    # Another facility's event with the same id is another event.
    other = await mon.approved_facility("other_operator")
    other_camera = await mon.camera(other["id"], who="other_operator")
    same_id = cctv_event(other_camera, event_id=event["event_id"])
    theirs = (await mon.send([same_id], who="other_operator")).json()
    assert (theirs["accepted"], theirs["duplicates"]) == (1, 0)
    assert sorted(row.facility_id for row in await stored(mon, event["event_id"])) == sorted(
        [facility["id"], other["id"]]
    )
