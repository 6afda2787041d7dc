"""What delivery sends never carries a resident ID or a mobile number in clear, even when a
producer's free text quotes one (a review note, a reason, a facility's name): those digits are
masked, and the event is still delivered and still meets its producer's contract."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from services.delivery.service.log import as_sent, without_personal_data
from shared.contracts import EVENT_MODELS, payload_of
from shared.events.envelope import CloudEvent
from tests.contracts.strategies import payloads

FACILITY = "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_id_and_mobile_numbers_are_masked_wherever_they_are_and_nothing_else_changes() -> None:
    data = {
        "facility_id": FACILITY,
        "district_code": "310104",
        "town_code": "310104003",
        "note": "家长电话13812345678，身份证11010519491231002x。",
        "reasons": ["ok", "310104199001011234"],
        "places": [{"count": 13812345678, "licence": "A13812345678", "twelve": "138123456789"}],
    }
    masked, paths = without_personal_data(data)
    assert masked["note"] == "家长电话***********，身份证******************。"
    assert masked["reasons"] == ["ok", "*" * 18]
    assert paths == ["data.note", "data.reasons[1]"]
    # Ids, codes, numbers and digits that are part of a longer token are not personal data.
    assert {key: masked[key] for key in ("facility_id", "district_code", "town_code", "places")} == {
        key: data[key] for key in ("facility_id", "district_code", "town_code", "places")
    }
    assert data["note"].startswith("家长电话138")  # the producer's event is left as it was


def test_an_event_without_personal_data_is_sent_as_it_came() -> None:
    event = CloudEvent(
        source="/cradle/registry", type="cradle.registry.facility.updated", data={"name": "托育点"}
    )
    assert as_sent(event) is event


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_a_masked_event_still_meets_its_producers_contract(event_type: str) -> None:
    model = EVENT_MODELS[event_type]

    @settings(max_examples=15, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=payloads(model))
    def check(data: dict[str, Any]) -> None:
        event = as_sent(CloudEvent(source=f"/cradle/{event_type.split('.')[1]}", type=event_type, data=data))
        masked, paths = without_personal_data(event.data)
        assert not paths, paths
        payload_of(event, model)

    check()
