"""The callers' language through the gateway, in front of all four real services: problem texts from
the services and from the gateway itself, field messages (the field names unchanged), risk reasons
and indicator names, in Chinese for `Accept-Language: zh-CN` and for the parents' app clients that
send no header, in English otherwise; each reply says its language and that it varies by it."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import update

from gateway.views import INDICATORS
from services.monitoring.models import Facility as MonitoredFacility
from tests.conftest import SERVICES, Stack, facility_body, start_stack
from tests.monitoring.casework_support import XUHUI, add_facilities
from tests.support import DatabaseFactory

pytestmark = pytest.mark.asyncio(loop_scope="module")
CJK = re.compile(r"[\u4e00-\u9fff]")
ZH = {"Accept-Language": "zh-CN"}
EN = {"Accept-Language": "en"}


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgres"])
async def stack(
    request: pytest.FixtureRequest,
    db_factories: dict[str, DatabaseFactory],
    shared_nats_url: str,
    run_id: str,
    keys: dict[str, Any],
) -> AsyncIterator[Stack]:
    if request.param not in db_factories:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    async with start_stack(
        databases=db_factories[request.param],
        nats_url=shared_nats_url,
        namespace=f"t{run_id}lang{request.param[:2]}",
        keys=keys,
        services=tuple(SERVICES),
        overrides={"monitoring": {"jobs_interval_seconds": 0}, "workforce": {"jobs_interval_seconds": 0}},
    ) as s:
        yield s


def in_language(response: httpx.Response, tag: str) -> None:
    assert response.headers["content-language"] == tag
    vary = {v.strip().lower() for v in ",".join(response.headers.get_list("vary")).split(",")}
    assert "accept-language" in vary
    assert len(response.headers.get_list("content-language")) == 1


async def test_a_services_problem_in_chinese_and_in_english(stack: Stack) -> None:
    reader = await stack.headers_for(name="市教委", kind="bureau", bureau="EDU", scopes=["registry:read"])
    missing = f"/v1/facilities/{uuid.uuid4()}"

    chinese = await stack.client.get(missing, headers=reader | ZH)
    assert chinese.status_code == 404 and chinese.headers["content-type"] == "application/problem+json"
    in_language(chinese, "zh-CN")
    assert chinese.json()["title"] == "未找到该托育机构"
    assert chinese.json()["type"] == "/problems/not-found"  # the type is a name, never translated

    english = await stack.client.get(missing, headers=reader | EN)
    in_language(english, "en")
    assert english.json()["title"] == "Facility not found"

    # No header from a bureau's system: English.
    plain = await stack.client.get(missing, headers=reader)
    in_language(plain, "en")
    assert plain.json()["title"] == "Facility not found"


async def test_invalid_input_names_the_same_fields_in_either_language(stack: Stack) -> None:
    operator = await stack.operator()
    body = facility_body(capacity={"infant": -1, "toddler": "many", "preschool": 20})
    del body["name"]

    chinese = await stack.client.post("/v1/facilities", json=body, headers=operator | ZH)
    english = await stack.client.post("/v1/facilities", json=body, headers=operator | EN)
    assert chinese.status_code == english.status_code == 422
    in_language(chinese, "zh-CN")
    fields = {e["field"] for e in english.json()["errors"]}
    assert (
        fields
        == {e["field"] for e in chinese.json()["errors"]}
        >= {
            "name",
            "capacity.infant",
            "capacity.toddler",
        }
    )
    assert english.json()["title"] == "Invalid input" and chinese.json()["title"] == "输入无效"
    assert chinese.json()["detail"].startswith(f"{len(fields)} 个字段无效：")
    by_field = {e["field"]: e["message"] for e in chinese.json()["errors"]}
    assert by_field["name"] == "必填字段"
    assert by_field["capacity.infant"] == "输入应大于或等于 0"
    assert {e["field"]: e["message"] for e in english.json()["errors"]}["name"] == "Field required"


async def test_the_gateways_own_refusals_follow_the_negotiation(stack: Stack) -> None:
    path = f"/v1/facilities/{uuid.uuid4()}"
    for header, tag, title in [
        ("zh-CN", "zh-CN", "未认证"),
        ("zh-Hans", "zh-CN", "未认证"),
        ("zh;q=0.5, en;q=0.9", "en", "Unauthorized"),
        ("fr, zh;q=0.3", "zh-CN", "未认证"),
        ("fr", "en", "Unauthorized"),
    ]:
        response = await stack.client.get(path, headers={"Accept-Language": header})
        assert response.status_code == 401, header
        in_language(response, tag)
        assert response.json()["title"] == title, header
        if tag == "zh-CN":
            assert response.json()["detail"] == "此路径需要由 POST /v1/auth/token 获取的令牌。"

    bureau = await stack.headers_for(name="市民政局", kind="bureau", bureau="CIVIL", scopes=["guidance:read"])
    refused = await stack.client.get("/v1/facilities", headers=bureau | ZH)
    assert refused.status_code == 403
    assert refused.json()["title"] == "缺少权限范围"
    assert refused.json()["detail"].startswith("此路径需要以下权限范围之一：")
    assert "registry:read" in refused.json()["detail"]  # scope names stay as they are


async def test_the_parents_app_is_answered_in_chinese_unless_it_asks_otherwise(stack: Stack) -> None:
    app = await stack.headers_for(name="随申办 育儿 App", kind="app", scopes=["guidance:read"])
    missing = f"/v1/facilities/{uuid.uuid4()}"
    default = await stack.client.get(missing, headers=app)
    assert default.status_code == 403
    in_language(default, "zh-CN")
    assert default.json()["title"] == "缺少权限范围"
    asked = await stack.client.get(missing, headers=app | EN)
    in_language(asked, "en")
    assert asked.json()["title"] == "Missing scope"

    registered = await stack.client.post(
        "/v1/auth/parents/register", json={"phone": "13912345678", "password": "correct horse"}
    )
    assert registered.status_code == 201, registered.text
    parent = {"Authorization": f"Bearer {registered.json()['access_token']}"}
    answer = await stack.client.get(f"/v1/guidance/families/{uuid.uuid4()}", headers=parent)
    assert 400 <= answer.status_code < 500
    in_language(answer, "zh-CN")
    assert CJK.search(answer.json()["title"]), answer.json()
    # A parent's successful read says its language too.
    public = await stack.client.get("/v1/public/facilities", headers=parent)
    assert public.status_code == 200
    in_language(public, "zh-CN")


async def test_risk_reasons_in_the_callers_language(stack: Stack) -> None:
    [facility_id] = await add_facilities(stack, 1, district=XUHUI)  # type: ignore[arg-type]
    async with stack.monitoring.state.sessionmaker() as session, session.begin():
        await session.execute(
            update(MonitoredFacility)
            .where(MonitoredFacility.id == facility_id)
            .values(staffing_in_ratio=False, staffing_shortfall=2)
        )
    district = await stack.headers_for(
        name="徐汇区托育服务指导中心", kind="district", district_code=XUHUI, scopes=["monitoring:read"]
    )
    path = f"/v1/facilities/{facility_id}/risk"

    chinese = await stack.client.get(path, headers=district | ZH)
    assert chinese.status_code == 200, chinese.text
    in_language(chinese, "zh-CN")
    reasons = {r["code"]: r["detail"] for r in chinese.json()["reasons"]}
    assert reasons == {
        "staffing_out_of_ratio": "最近一次评估未达到师幼比",
        "staffing_shortfall": "达到师幼比尚缺的保育人员",
    }
    english = await stack.client.get(path, headers=district | EN)
    assert {r["code"]: r["detail"] for r in english.json()["reasons"]} == {
        "staffing_out_of_ratio": "staff-to-child ratio not met at the last assessment",
        "staffing_shortfall": "carer(s) missing to meet the ratio",
    }


async def test_indicator_names_in_the_callers_language(stack: Stack) -> None:
    reader = await stack.headers_for(
        name="市妇儿工委", kind="bureau", bureau="WCWC", scopes=["indicators:read"]
    )
    english_names = {row.id: row.name for row in INDICATORS}

    chinese = await stack.client.get("/v1/indicators", headers=reader | ZH)
    assert chinese.status_code == 200, chinese.text
    in_language(chinese, "zh-CN")
    names = {row["id"]: row["name"] for row in chinese.json()["items"]}
    assert set(names) == set(english_names)
    assert all(CJK.search(name) and name != english_names[i] for i, name in names.items()), names
    assert names["new_inclusive_points"] == "年内新增普惠性托育点"

    english = await stack.client.get("/v1/indicators", headers=reader | EN)
    assert {row["id"]: row["name"] for row in english.json()["items"]} == english_names
