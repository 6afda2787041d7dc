"""Broken object-level authorization, as a matrix: one caller's token against every object of
another owner, with every method the API offers on it — operator against operator, district
against district, parent against another family.

Every request must be refused with 404 (or 403: a scope, or a rule that does not depend on the
object), answer exactly as it does for an object that does not exist (no existence oracle), and
leave the victim's objects as they were (read before and after by a city bureau, the clients by the
admin). Lists filtered on the victim's objects must not name them. The matrix must cover every
operation of the merged OpenAPI document that takes an object id, except the public ones listed in
PUBLIC_BY_DESIGN."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import jsonschema_rs
import pytest
import pytest_asyncio

from tests.conftest import Stack, start_stack
from tests.fuzz.world import EVERY_SCOPE, HUANGPU, XUHUI, World, ok, unlimited
from tests.support import DatabaseFactory

pytestmark = pytest.mark.asyncio(loop_scope="module")

# Attackers hold every scope they may be granted except the two that are city-wide by design
# (`workforce:ban` reads every ban, `audit:read` the whole audit log): what stops them must be the
# object check, not a missing scope.
ATTACKER_SCOPES = [s for s in EVERY_SCOPE if s not in ("workforce:ban", "audit:read")]
# Read by any caller of their service, by design: the public registry, and guidance's stations,
# places, sessions and resources (docs/API.md; services/guidance/service/sessions.py `get_session`).
PUBLIC_BY_DESIGN = {
    "GET /v1/public/facilities/{facility_id}",
    "GET /v1/public/facilities/{facility_id}/credit-record",
    "GET /v1/stations/{station_id}",
    "GET /v1/places/{place_id}",
    "GET /v1/sessions/{session_id}",
    "GET /v1/resources/{resource_id}",
    # FINANCE's subsidy rates: a published standard per district and year, not a district's record.
    "GET /v1/subsidy-rates/{year}",
    "GET /v1/subsidy-rates/{year}/{district_code}",
    # The quality framework's versions: one city-wide standard, read by every registry reader.
    "GET /v1/quality/frameworks/{version}",
    # Births per district and year: HEALTH's reference figures, read by every guidance reader and
    # written by HEALTH alone (a bureau rule, not an owner's object).
    "PUT /v1/guidance/births/{district_code}/{year}",
}
Body = Callable[["Sides"], Any]


@dataclass
class Sides:
    """The victim's objects (`theirs`) and the attacker's own (`mine`), by kind."""

    theirs: dict[str, str]
    mine: dict[str, str]


@dataclass(frozen=True)
class Attack:
    """One request of the matrix: `path` names the victim's objects as `{kind}`; `body` and `query`
    are built from both sides. `listing` requests may answer 200, without the victim's ids."""

    method: str
    path: str
    operation: str  # the OpenAPI operation it exercises ("METHOD /v1/...{param}")
    body: Body | None = None
    query: Callable[[Sides], dict[str, str]] | None = None
    listing: bool = False
    # False where the object is public anyway (a guidance session): a 403 there tells nothing.
    oracle: bool = True

    def url(self, ids: dict[str, str]) -> str:
        return self.path.format(**ids)


def today() -> str:
    return date.today().isoformat()


def a(method: str, path: str, operation: str | None = None, **kwargs: Any) -> Attack:
    """`path` uses the victim's object kinds ({facility}); the operation defaults to it with the
    OpenAPI parameter names ({facility} → {facility_id})."""
    if operation is None:
        operation = f"{method} {path}"
        for kind, name in PARAMETER_OF.items():
            operation = operation.replace("{" + kind + "}", "{" + name + "}")
    return Attack(method, path, operation, **kwargs)


PARAMETER_OF = {
    "facility": "facility_id",
    "change_request": "request_id",
    "practitioner": "practitioner_id",
    "background_check": "check_id",
    "employment": "employment_id",
    "ban": "ban_id",
    "camera": "camera_id",
    "alert": "alert_id",
    "incident": "incident_id",
    "complaint": "complaint_id",
    "inspection": "inspection_id",
    "inspector": "inspector_id",
    "plan": "plan_id",
    "family": "family_id",
    "home_visit": "visit_id",
    "session": "session_id",
    "booking": "booking_id",
    "client": "client_id",
    "subsidy_district": "district_code",
}

# A device credential of no one's: the facility check answers before the credential is looked up.
SOME_CREDENTIAL = str(uuid.uuid4())
FACILITY_ATTACKS = [
    a("GET", "/v1/facilities/{facility}"),
    a("GET", "/v1/facilities/{facility}/device-credentials"),
    a("POST", "/v1/facilities/{facility}/device-credentials", body=lambda s: {"label": "摄像头"}),
    a(
        "DELETE",
        "/v1/facilities/{facility}/device-credentials/" + SOME_CREDENTIAL,
        "DELETE /v1/facilities/{facility_id}/device-credentials/{credential_id}",
    ),
    a("PATCH", "/v1/facilities/{facility}", body=lambda s: {"name": "被改名的托育点"}),
    a("GET", "/v1/facilities/{facility}/versions"),
    a("GET", "/v1/facilities/{facility}/application"),
    a(
        "POST",
        "/v1/facilities/{facility}/reviews",
        body=lambda s: {"department": "EDU", "decision": "reject", "note": "x"},
    ),
    a(
        "POST",
        "/v1/facilities/{facility}/status",
        body=lambda s: {"status": "suspended", "reason": "恶意停业"},
    ),
    a("GET", "/v1/facilities/{facility}/status-history"),
    a(
        "PUT",
        "/v1/facilities/{facility}/enrolment",
        body=lambda s: {
            "month": datetime.now(UTC).strftime("%Y-%m"),
            "infant": 9,
            "toddler": 9,
            "preschool": 9,
        },
    ),
    a("GET", "/v1/facilities/{facility}/enrolment"),
    a(
        "POST",
        "/v1/facilities/{facility}/assessments",
        # Self: a peer review of another's licensed facility is allowed by design (T22's 同行互评).
        body=lambda s: {
            "method": "self",
            "scores": {"safety": 10},
            "grade": "D",
            "assessed_on": today(),
            "assessor": "冒名自评",
        },
    ),
    a("GET", "/v1/facilities/{facility}/assessments"),
    a(
        "PUT",
        "/v1/facilities/{facility}/entry-health-checks",
        body=lambda s: {
            "month": datetime.now(UTC).strftime("%Y-%m"),
            "children_enrolled": 9,
            "children_checked": 0,
        },
    ),
    a("GET", "/v1/facilities/{facility}/entry-health-checks"),
    a(
        "POST",
        "/v1/facilities/{facility}/health-assessments",
        body=lambda s: {"year": datetime.now(UTC).year, "result": "unqualified", "assessed_on": today()},
    ),
    a("GET", "/v1/facilities/{facility}/health-assessments"),
    a("GET", "/v1/facilities/{facility}/health"),
    a("POST", "/v1/facilities/{facility}/demonstration", body=lambda s: {"designated": True, "reason": "x"}),
    a("GET", "/v1/facilities/{facility}/credit-record"),
    a(
        "POST",
        "/v1/facilities/{facility}/credit-record",
        body=lambda s: {
            "polarity": "negative",
            "category": "complaint",
            "title": "差评",
            "occurred_on": today(),
        },
    ),
    a("GET", "/v1/facilities/{facility}/inspections"),
    a("GET", "/v1/facilities/{facility}/fees"),
    a("GET", "/v1/facilities/{facility}/fees/current"),
    a("GET", "/v1/facilities/{facility}/fees/1", "GET /v1/facilities/{facility_id}/fees/{version}"),
    a(
        "POST",
        "/v1/facilities/{facility}/fees",
        body=lambda s: {
            "effective_from": today(),
            "fees": [{"age_class": "toddler", "service_mode": "full_day", "amount": "9999.00"}],
        },
    ),
    a("GET", "/v1/facilities/{facility}/change-requests"),
    a("POST", "/v1/facilities/{facility}/change-requests", body=lambda s: {"address": "被改的地址"}),
    a("GET", "/v1/facilities/{facility}/change-requests/{change_request}"),
    a(
        "POST",
        "/v1/facilities/{facility}/change-requests/{change_request}/reviews",
        body=lambda s: {"department": "EDU", "decision": "reject", "note": "x"},
    ),
    a("GET", "/v1/facilities/{facility}/profile"),
    a("GET", "/v1/facilities/{facility}/staffing"),
    a("GET", "/v1/facilities/{facility}/risk"),
    # Lists and bodies that name the facility.
    a("GET", "/v1/facilities", "GET /v1/facilities", listing=True),
    a(
        "GET",
        "/v1/employments",
        "GET /v1/employments",
        query=lambda s: {"facility_id": s.theirs["facility"]},
        listing=True,
    ),
    a(
        "GET",
        "/v1/cameras",
        "GET /v1/cameras",
        query=lambda s: {"facility_id": s.theirs["facility"]},
        listing=True,
    ),
    a(
        "GET",
        "/v1/alerts",
        "GET /v1/alerts",
        query=lambda s: {"facility_id": s.theirs["facility"]},
        listing=True,
    ),
    a(
        "GET",
        "/v1/incidents",
        "GET /v1/incidents",
        query=lambda s: {"facility_id": s.theirs["facility"]},
        listing=True,
    ),
    a(
        "GET",
        "/v1/inspections",
        "GET /v1/inspections",
        query=lambda s: {"facility_id": s.theirs["facility"]},
        listing=True,
    ),
    a("GET", "/v1/risk", "GET /v1/risk", listing=True),
    a("GET", "/v1/compliance/staffing", "GET /v1/compliance/staffing", listing=True),
    a("GET", "/v1/compliance/background-checks", "GET /v1/compliance/background-checks", listing=True),
    a(
        "GET",
        "/v1/compliance/ban-notifications",
        "GET /v1/compliance/ban-notifications",
        query=lambda s: {"pending": "false"},
        listing=True,
    ),
    a(
        "POST",
        "/v1/cameras",
        "POST /v1/cameras",
        body=lambda s: {
            "facility_id": s.theirs["facility"],
            "location": "kitchen",
            "vendor": "x",
            "external_id": f"evil-{uuid.uuid4().hex[:6]}",
        },
    ),
    a(
        "POST",
        "/v1/employments",
        "POST /v1/employments",
        body=lambda s: {
            "practitioner_id": s.mine["practitioner"],
            "facility_id": s.theirs["facility"],
            "role": "childcare_worker",
            "start_date": today(),
        },
    ),
    a(
        "POST",
        "/v1/incidents",
        "POST /v1/incidents",
        body=lambda s: {
            "facility_id": s.theirs["facility"],
            "category": "injury",
            "severity": "high",
            "occurred_at": datetime.now(UTC).isoformat(),
            "description": "捏造的事件",
        },
    ),
    a(
        "POST",
        "/v1/inspections",
        "POST /v1/inspections",
        body=lambda s: {"facility_id": s.theirs["facility"], "inspector_ids": [s.mine["inspector"]]},
    ),
]

WORKFORCE_ATTACKS = [
    a("GET", "/v1/practitioners/{practitioner}"),
    a("POST", "/v1/practitioners/{practitioner}/grades", body=lambda s: {"level": 1, "reason": "x"}),
    a("GET", "/v1/practitioners/{practitioner}/grades"),
    a(
        "POST",
        "/v1/practitioners/{practitioner}/certificates",
        body=lambda s: {
            "type": "teacher",
            "number": f"F-{uuid.uuid4().hex[:6]}",
            "issuer": "x",
            "issued_on": "2024-01-01",
            "expires_on": "2030-01-01",
        },
    ),
    a("GET", "/v1/practitioners/{practitioner}/certificates"),
    a(
        "POST",
        "/v1/practitioners/{practitioner}/trainings",
        body=lambda s: {"category": "ethics", "hours": 2, "date": today(), "provider": "x"},
    ),
    a("GET", "/v1/practitioners/{practitioner}/trainings"),
    a("POST", "/v1/practitioners/{practitioner}/background-checks", body=lambda s: {"reason": "other"}),
    a("GET", "/v1/practitioners/{practitioner}/background-checks"),
    a(
        "POST",
        "/v1/practitioners/{practitioner}/background-checks/{background_check}/answer",
        body=lambda s: {"result": "flagged", "note": "x"},
    ),
    a(
        "POST",
        "/v1/practitioners/{practitioner}/background-checks/{background_check}/resolve",
        body=lambda s: {"note": "x"},
    ),
    a("GET", "/v1/employments/{employment}"),
    a("GET", "/v1/employments/{employment}/history"),
    a(
        "PATCH",
        "/v1/employments/{employment}",
        body=lambda s: {"contract_type": "labour_contract", "social_insurance_paid": False},
    ),
    # The district's decision on a suspended employment: another district's (or an operator) is
    # refused before the employment's standing is even looked at.
    a("POST", "/v1/employments/{employment}/decision", body=lambda s: {"decision": "end", "note": "x"}),
    a(
        "POST",
        "/v1/employments/{employment}/end",
        body=lambda s: {"end_date": today(), "reason": "dismissed"},
    ),
    a("GET", "/v1/bans/{ban}"),
    a("POST", "/v1/bans/{ban}/rescind", body=lambda s: {"reason": "x", "authority_ref": "x"}),
    a("POST", "/v1/bans/{ban}/notifications/{facility}/acknowledge"),
    # Not here: hiring the victim's practitioner at one's own facility (POST /v1/employments naming
    # their practitioner_id) takes no object in its path; it is 404 unless the person is visible to
    # the hiring operator (tests/workforce/test_hiring.py), the job change going through registering
    # the person by ID number (POST /v1/practitioners finds the record and grants access).
]

MONITORING_ATTACKS = [
    a("GET", "/v1/cameras/{camera}"),
    a("PATCH", "/v1/cameras/{camera}", body=lambda s: {"active": False, "label": "关掉"}),
    a("GET", "/v1/alerts/{alert}"),
    a("POST", "/v1/alerts/{alert}/ack", body=lambda s: {"note": "x"}),
    a("POST", "/v1/alerts/{alert}/resolve", body=lambda s: {"note": "x"}),
    a(
        "POST",
        "/v1/alerts/{alert}/escalate",
        body=lambda s: {"category": "abuse", "severity": "critical", "description": "x"},
    ),
    a("GET", "/v1/incidents/{incident}"),
    a(
        "POST",
        "/v1/incidents/{incident}/findings",
        body=lambda s: {
            "outcome": "confirmed",
            "category": "abuse",
            "abuser_practitioner_ids": [s.theirs["practitioner"]],
            "decision_ref": "x",
        },
    ),
    a("POST", "/v1/incidents/{incident}/findings/confirm", body=lambda s: {"note": "x"}),
    a("POST", "/v1/incidents/{incident}/findings/reject", body=lambda s: {"reason": "x"}),
    a("GET", "/v1/complaints/{complaint}"),
    a("POST", "/v1/complaints/{complaint}/acknowledge"),
    a("POST", "/v1/complaints/{complaint}/answer", body=lambda s: {"outcome": "founded", "answer": "x"}),
    a("GET", "/v1/inspections/{inspection}"),
    a(
        "POST",
        "/v1/inspections/{inspection}/result",
        body=lambda s: {"items": [{"code": "records", "passed": False}], "outcome": "fail"},
    ),
    a(
        "POST",
        "/v1/inspections/{inspection}/rectification",
        body=lambda s: {"rectified_on": today(), "note": "x"},
    ),
]

CLIENT_ATTACKS = [
    a("GET", "/v1/admin/clients/{client}"),
    a("DELETE", "/v1/admin/clients/{client}"),
    a("POST", "/v1/admin/clients/{client}/rotate-secret"),
]

# Another district's subsidy list for a closed month (a month and a district name it: no id to guess,
# so no existence oracle to test; the month and year are literal, as text too common to be a leak);
# a line of no one's, since the list check answers before the line is looked up.
SOME_LINE = str(uuid.uuid4())
_MONTHS = date.today().year * 12 + date.today().month - 4
SUBSIDY_MONTH = f"{_MONTHS // 12}-{_MONTHS % 12 + 1:02d}"
SUBSIDY_LIST = "/v1/subsidy-lists/" + SUBSIDY_MONTH + "/{subsidy_district}"
LIST_OPERATION = "/v1/subsidy-lists/{month}/{district_code}"
SUBSIDY_ATTACKS = [
    a(
        "PUT",
        "/v1/subsidy-rates/" + SUBSIDY_MONTH[:4] + "/{subsidy_district}",
        "PUT /v1/subsidy-rates/{year}/{district_code}",
        body=lambda s: {"amount_fen": 1},
        oracle=False,
    ),
    a("POST", SUBSIDY_LIST + "/compute", f"POST {LIST_OPERATION}/compute", oracle=False),
    a("GET", SUBSIDY_LIST, f"GET {LIST_OPERATION}", oracle=False),
    a(
        "POST",
        SUBSIDY_LIST + "/review",
        f"POST {LIST_OPERATION}/review",
        body=lambda s: {"decision": "return", "note": "x"},
        oracle=False,
    ),
    a("POST", SUBSIDY_LIST + "/publish", f"POST {LIST_OPERATION}/publish", oracle=False),
    a("GET", SUBSIDY_LIST + "/lines", f"GET {LIST_OPERATION}/lines", oracle=False),
    a(
        "PUT",
        SUBSIDY_LIST + "/lines/" + SOME_LINE + "/payment",
        f"PUT {LIST_OPERATION}/lines/{{line_id}}/payment",
        body=lambda s: {"paid_fen": 1, "paid_on": today(), "reference": "X-1"},
        oracle=False,
    ),
]

DISTRICT_ATTACKS = [
    a("PATCH", "/v1/inspectors/{inspector}", body=lambda s: {"active": False}),
    a("GET", "/v1/inspection-plans/{plan}"),
    a("GET", "/v1/inspection-plans/{plan}/verification"),
    a(
        "GET",
        "/v1/inspectors",
        "GET /v1/inspectors",
        query=lambda s: {"district_code": HUANGPU},
        listing=True,
    ),
    a(
        "GET",
        "/v1/inspection-plans",
        "GET /v1/inspection-plans",
        query=lambda s: {"district_code": HUANGPU},
        listing=True,
    ),
    a(
        "GET",
        "/v1/facilities",
        "GET /v1/facilities",
        query=lambda s: {"district_code": HUANGPU},
        listing=True,
    ),
    a("GET", "/v1/families", "GET /v1/families", query=lambda s: {"district_code": HUANGPU}, listing=True),
    a(
        "POST",
        "/v1/inspection-plans",
        "POST /v1/inspection-plans",
        body=lambda s: {"district_code": HUANGPU, "month": "2031-01", "sample_size": 1},
    ),
    a(
        "POST",
        "/v1/inspectors",
        "POST /v1/inspectors",
        body=lambda s: {"district_code": HUANGPU, "name": "x"},
    ),
]

FAMILY_ATTACKS = [
    a("GET", "/v1/families/{family}"),
    a("PATCH", "/v1/families/{family}", body=lambda s: {"has_handbook": True}),
    a("POST", "/v1/families/{family}/children", body=lambda s: {"birth_date": today()}),
    a("POST", "/v1/families/{family}/link-code"),
    a("GET", "/v1/families/{family}/home-visits"),
    a("GET", "/v1/families/{family}/bookings"),
    a("GET", "/v1/families/{family}/feed"),
    a("GET", "/v1/home-visits/{home_visit}"),
    a("POST", "/v1/sessions/{session}/bookings/{booking}/cancel"),
    a(
        "POST",
        "/v1/sessions/{session}/bookings",
        body=lambda s: {"family_id": s.theirs["family"]},
    ),
    a("GET", "/v1/families", "GET /v1/families", listing=True),
    a(
        "POST",
        "/v1/home-visits",
        "POST /v1/home-visits",
        body=lambda s: {
            "family_id": s.theirs["family"],
            "visited_on": today(),
            "visitor": "x",
            "topics": ["safety"],
        },
    ),
]
SESSION_ORGANISER_ATTACKS = [  # sessions are public events; their bookings are the organiser's
    a("GET", "/v1/sessions/{session}/bookings", oracle=False),
    a(
        "POST",
        "/v1/sessions/{session}/attendance",
        body=lambda s: {"family_ids": [s.theirs["family"]]},
        oracle=False,
    ),
]
PARENT_INCIDENT_ATTACKS = [
    a("GET", "/v1/incidents/{incident}"),
    a("GET", "/v1/incidents", "GET /v1/incidents", listing=True),
    a("GET", "/v1/complaints/{complaint}"),
    a("GET", "/v1/complaints", "GET /v1/complaints", listing=True),
]


# --- the city ------------------------------------------------------------------------------------


@dataclass
class City:
    stack: Stack
    world: World
    admin: dict[str, str]
    # The victim's objects are read back by a bureau of the city: the admin client reads only the
    # clients it administers (separation of duties), so it could not vouch for the rest.
    reader: dict[str, str]
    # victim and attacker of each pair
    pairs: dict[str, tuple[dict[str, str], Sides]] = field(default_factory=dict)


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgres"])
async def city(
    request: pytest.FixtureRequest,
    db_factories: dict[str, DatabaseFactory],
    shared_nats_url: str,
    run_id: str,
    keys: dict[str, Any],
) -> AsyncIterator[City]:
    if request.param not in db_factories:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    async with start_stack(
        databases=db_factories[request.param],
        nats_url=shared_nats_url,
        namespace=f"t{run_id}bola{request.param[:2]}",
        keys=keys,
        services=("registry", "workforce", "monitoring", "guidance"),
        overrides={"monitoring": {"jobs_interval_seconds": 0}, "workforce": {"jobs_interval_seconds": 0}},
    ) as stack:
        unlimited(stack)
        world = World(stack)
        city = City(stack=stack, world=world, admin=await stack.admin(), reader=await world.edu())

        # Operator against operator, both in 徐汇 (so only the owner check stands between them).
        mine = await world.operator_estate("甲")
        theirs = await world.operator_estate("乙")
        await world.ban(theirs)
        theirs.ids["client"] = theirs.client_id
        attacker = await world.headers(
            "甲 (all scopes)", kind="operator", facility_ids=[mine.ids["facility"]], scopes=ATTACKER_SCOPES
        )
        city.pairs["operator"] = (attacker, Sides(theirs=theirs.ids, mine=mine.ids))

        # District against district: 黄浦's facility (and all that hangs off it) and guidance.
        huangpu = await world.operator_estate("丙", district=HUANGPU)
        await world.ban(huangpu)
        huangpu_guidance = await world.guidance_estate("黄浦", district=HUANGPU)
        xuhui_guidance = await world.guidance_estate("徐汇", district=XUHUI)
        district = await world.headers(
            "徐汇区 (all scopes)", kind="district", district_code=XUHUI, scopes=ATTACKER_SCOPES
        )
        own_district = await world.operator_estate("丁")  # an approved 徐汇 facility, for bodies
        huangpu.ids["subsidy_district"] = await world.subsidy_list(HUANGPU, SUBSIDY_MONTH)
        city.pairs["district"] = (
            district,
            Sides(
                theirs={**huangpu.ids, **huangpu_guidance.ids, "client": huangpu.client_id},
                mine={**own_district.ids, **xuhui_guidance.ids},
            ),
        )

        # Parent against another family (and the incidents another parent reported).
        victim_parent = huangpu_guidance.parent
        reported = ok(
            await stack.client.post(
                "/v1/incidents",
                json={
                    "facility_id": huangpu.ids["facility"],
                    "category": "injury",
                    "severity": "medium",
                    "occurred_at": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
                    "description": "孩子回家后手臂有淤青",
                },
                headers=victim_parent,
            ),
            201,
        )
        complained = ok(
            await stack.client.post(
                "/v1/complaints",
                json={
                    "facility_id": huangpu.ids["facility"],
                    "category": "care",
                    "description": "孩子午睡时无人看护",
                    "complainant_name": "黄女士",
                },
                headers=victim_parent,
            ),
            201,
        )
        attacker_parent = xuhui_guidance.parent
        city.pairs["parent"] = (
            attacker_parent,
            Sides(
                theirs={**huangpu_guidance.ids, "incident": reported["id"], "complaint": complained["id"]},
                mine=xuhui_guidance.ids,
            ),
        )
        yield city


MATRIX: dict[str, list[Attack]] = {
    "operator": FACILITY_ATTACKS + WORKFORCE_ATTACKS + MONITORING_ATTACKS + CLIENT_ATTACKS,
    "district": FACILITY_ATTACKS
    + WORKFORCE_ATTACKS
    + MONITORING_ATTACKS
    + CLIENT_ATTACKS
    + DISTRICT_ATTACKS
    + FAMILY_ATTACKS
    + SESSION_ORGANISER_ATTACKS
    + SUBSIDY_ATTACKS,
    "parent": FAMILY_ATTACKS + PARENT_INCIDENT_ATTACKS,
}
DENIED = (403, 404)


def swap(ids: dict[str, str]) -> dict[str, str]:
    """The same request against objects that do not exist."""
    return {k: str(uuid.uuid4()) for k in ids}


async def send(
    stack: Stack, attack: Attack, headers: dict[str, str], sides: Sides
) -> tuple[int, str, set[str]]:
    """The status, the reply, and the victim's ids the reply names that the request did not."""
    url = attack.url(sides.theirs)
    body = attack.body(sides) if attack.body else None
    query = attack.query(sides) if attack.query else None
    response = await stack.client.request(attack.method, url, headers=headers, json=body, params=query)
    sent = url + json.dumps(body) + json.dumps(query)
    named = {i for i in sides.theirs.values() if i in response.text and i not in sent}
    return response.status_code, response.text, named


async def snapshot(city: City, sides: Sides, attacks: list[Attack]) -> dict[str, Any]:
    """Everything readable about the victim's objects: the clients by the admin, the rest by EDU."""
    seen: dict[str, Any] = {}
    reads = [x for x in attacks if x.method == "GET" and not x.listing]
    extra = ["/v1/sessions/{session}", "/v1/sessions/{session}/bookings"] if "session" in sides.theirs else []
    for path in [x.path for x in reads] + extra:
        try:
            url = path.format(**sides.theirs)
        except KeyError:
            continue
        reader = city.admin if path.startswith("/v1/admin/") else city.reader
        response = await city.stack.client.get(url, headers=reader)
        assert response.status_code != 403, (path, response.text)  # the snapshot must see it all
        seen[path] = (response.status_code, volatile_free(response.json()))
    seen["ban notifications"] = volatile_free(
        ok(await city.stack.client.get("/v1/compliance/ban-notifications?pending=false", headers=city.reader))
    )
    return seen


VOLATILE = {"computed_at", "generated_at", "as_of", "now", "acknowledge_by"}


def volatile_free(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: volatile_free(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [volatile_free(v) for v in value]
    return value


async def attack_all(city: City, pair: str) -> list[str]:
    headers, sides = city.pairs[pair]
    before = await snapshot(city, sides, MATRIX[pair])
    problems: list[str] = []
    for attack in MATRIX[pair]:
        try:
            attack.url(sides.theirs)
        except KeyError as missing:
            problems.append(f"{attack.method} {attack.path}: the victim has no {missing}")
            continue
        status, text, leaked = await send(city.stack, attack, headers, sides)
        if os.environ.get("BOLA_VERBOSE"):
            print(f"{pair:9} {status} {attack.method:6} {attack.path}")
        if attack.listing:
            if status not in (200, *DENIED) or leaked:
                problems.append(f"{attack.method} {attack.path}: {status}, names {leaked}: {text[:300]}")
            continue
        if status not in DENIED:
            problems.append(f"{attack.method} {attack.path}: {status} {text[:300]}")
            continue
        if leaked:
            problems.append(f"{attack.method} {attack.path}: {status} names {leaked}: {text[:300]}")
        if not attack.oracle:
            continue
        ghost_status, _, _ = await send(
            city.stack, attack, headers, Sides(theirs=swap(sides.theirs), mine=sides.mine)
        )
        if ghost_status != status:
            problems.append(
                f"{attack.method} {attack.path}: {status} for the victim's object but {ghost_status} for "
                "one that does not exist (an existence oracle)"
            )
    after = await snapshot(city, sides, MATRIX[pair])
    for path in sorted(set(before) | set(after)):
        if before.get(path) != after.get(path):
            problems.append(
                f"changed: {path}\n  before {json.dumps(before.get(path), ensure_ascii=False)[:600]}"
                f"\n  after  {json.dumps(after.get(path), ensure_ascii=False)[:600]}"
            )
    return problems


@pytest.mark.parametrize("pair", ["operator", "district", "parent"])
async def test_no_caller_reaches_another_owners_objects(city: City, pair: str) -> None:
    problems = await attack_all(city, pair)
    assert not problems, f"{len(problems)} of {len(MATRIX[pair])} requests as {pair}:\n" + "\n".join(problems)


async def test_the_matrix_covers_every_operation_on_an_object(city: City) -> None:
    document = ok(await city.stack.client.get("/openapi.json"))
    on_objects = {
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if "{" in path
    }
    every = {f"{method.upper()} {path}" for path, item in document["paths"].items() for method in item}
    covered = {attack.operation for attacks in MATRIX.values() for attack in attacks}
    assert on_objects - covered - PUBLIC_BY_DESIGN == set(), "operations on objects the matrix lacks"
    assert covered - every == set(), "the matrix names operations the document does not have"


async def test_the_matrix_sends_bodies_the_document_accepts(city: City) -> None:
    """A refusal must come from the object check, not from a body the schema would refuse."""
    document = ok(await city.stack.client.get("/openapi.json"))
    for pair, attacks in MATRIX.items():
        _, sides = city.pairs[pair]
        for attack in attacks:
            if attack.body is None:
                continue
            method, path = attack.operation.split(" ", 1)
            content = document["paths"][path][method.lower()]["requestBody"]["content"]
            schema = {**content["application/json"]["schema"], "components": document["components"]}
            errors = [e.message for e in jsonschema_rs.validator_for(schema).iter_errors(attack.body(sides))]
            assert not errors, (pair, attack.operation, errors)
