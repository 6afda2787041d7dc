"""The admin client administers clients and acts for no bureau or district (separation of duties):
its `admin` scope stands only for oversight reads, so it opens no station, registers no family, records no
home visit, schedules no session (city-level ones are the bureaus'), publishes nothing, and reads
no family's personal data. Each refusal writes nothing; the bureau or district does the same."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.guidance.models import Family, GuidanceSession, HomeVisit, Place, Resource
from tests.guidance.conftest import ADMIN, XUHUI_TOWN, Guide, family_body

pytestmark = pytest.mark.asyncio(loop_scope="module")  # the guide stack is the module's


async def test_admin_writes_no_guidance_data(guide: Guide) -> None:
    admin = guide.sign(ADMIN)
    family = await guide.family()
    before = {
        model: await guide.count(model) for model in (Place, Family, HomeVisit, GuidanceSession, Resource)
    }
    station = {"name": "枫林街道家庭科学育儿指导站", "town_code": XUHUI_TOWN, "opened_on": "2024-03-01"}
    city_session = {
        "level": "city",
        "kind": "parenting_station_event",
        "title": "市级育儿加油站",
        "starts_at": (datetime.now(UTC) + timedelta(days=5)).isoformat(),
        "capacity": 100,
    }
    visit = {
        "family_id": family["id"],
        "visited_on": date.today().isoformat(),
        "visitor": "社区医生",
        "topics": ["newborn_visit"],
    }
    resource = {"kind": "article", "title": "新生儿护理", "age_from_months": 0, "age_to_months": 2}
    for path, body in (
        ("/v1/stations", station),
        ("/v1/families", family_body()),
        ("/v1/home-visits", visit),
        ("/v1/sessions", city_session),
        ("/v1/resources", resource),
    ):
        refused = await guide.direct.post(path, json=body, headers=admin)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    assert {model: await guide.count(model) for model in before} == before
    # The city-level session is a bureau's to schedule.
    scheduled = await guide.direct.post("/v1/sessions", json=city_session, headers=guide.bureau())
    assert scheduled.status_code == 201, scheduled.text


async def test_admin_reads_no_family(guide: Guide) -> None:
    admin = guide.sign(ADMIN)
    family = await guide.family()
    assert (await guide.direct.get(f"/v1/families/{family['id']}", headers=admin)).status_code == 404
    listed = await guide.direct.get("/v1/families", headers=admin)
    assert listed.status_code == 200 and listed.json()["items"] == []
    # A bureau of the city reads it (masked).
    assert (await guide.direct.get(f"/v1/families/{family['id']}", headers=guide.bureau())).status_code == 200
