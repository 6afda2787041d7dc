"""Lists as files, through the gateway over real HTTP: CSV and XLSX hold exactly what the JSON pages
hold (the same filters, the same visibility), the whole set and not one page, streamed in chunks;
formulas are neutralised, Chinese survives, an unknown `Accept` is a 406 and the audit log names
the export. SQLite and PostgreSQL; one stack per module and backend (the tests only read what the
module's fixture made)."""

from __future__ import annotations

import csv
import io
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
from openpyxl import load_workbook
from sqlalchemy import insert

from services.monitoring.models import Alert
from services.monitoring.models import Facility as MonitoredFacility
from shared.export import XLSX
from tests.conftest import Stack, facility_body, start_stack
from tests.servers import serving
from tests.support import DatabaseFactory, eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")
XUHUI, JINGAN = "310104", "310106"
ALERTS_PER_DISTRICT = 1_300  # three export pages of 500, and a few JSON pages
INJECTED = '=HYPERLINK("http://evil.example/","点我")'
_namespaces = itertools.count(1)


@dataclass
class City:
    stack: Stack
    http: httpx.AsyncClient  # the gateway under uvicorn: replies arrive as the network brings them
    edu: dict[str, str]
    xuhui: dict[str, str]
    facilities: list[dict[str, Any]]

    async def json_items(self, path: str, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
        """Every item of a JSON list, page by page."""
        items: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {**params, "limit": 500, **({"cursor": cursor} if cursor else {})}
            response = await self.http.get(path, params=query, headers=headers)
            assert response.status_code == 200, response.text
            items += response.json()["items"]
            if (cursor := response.json()["next_cursor"]) is None:
                return items

    async def export(self, path: str, headers: dict[str, str], accept: str, **params: Any) -> httpx.Response:
        response = await self.http.get(path, params=params, headers={**headers, "Accept": accept})
        assert response.status_code == 200, response.text
        return response


async def _seed_alerts(stack: Stack) -> None:
    """Facilities in monitoring's projection and their alerts, straight into its database (the
    alerts' own story is monitoring's tests'; here only their listing matters)."""
    now = datetime.now(UTC)
    facilities, alerts = [], []
    for district, town in ((XUHUI, "310104003"), (JINGAN, "310106011")):
        facility_id = str(uuid.uuid4())
        facilities.append(
            {
                "id": facility_id,
                "name": f"{district} 托育点",
                "kind": "community_point",
                "district_code": district,
                "town_code": town,
                "status": "approved",
                "opening_hours": [],
                "version": 1,
                "source_event_at": now,
                "updated_at": now,
            }
        )
        for n in range(ALERTS_PER_DISTRICT):
            at = now - timedelta(seconds=n)
            alerts.append(
                {
                    "id": str(uuid.uuid4()),
                    "facility_id": facility_id,
                    "district_code": district,
                    "type": "camera_offline" if n % 3 else "abnormal_sound",
                    "severity": ("low", "medium", "high", "critical")[n % 4],
                    "status": "open" if n % 5 else "resolved",
                    "source": "cctv",
                    "count": n % 7 + 1,
                    "first_at": at,
                    "last_at": at,
                    "raised_at": at,
                    "details": {"note": "哭声持续 3 分钟", "n": n} if n % 2 else {},
                    "version": 1,
                    "updated_at": at,
                }
            )
    async with stack.monitoring.state.engine.begin() as connection:
        await connection.execute(insert(MonitoredFacility.__table__), facilities)
        await connection.execute(insert(Alert.__table__), alerts)


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
        namespace=f"t{run_id}x{next(_namespaces)}",
        keys=keys,
        services=("registry", "workforce", "monitoring"),
        overrides={"monitoring": {"jobs_interval_seconds": 0}, "workforce": {"jobs_interval_seconds": 0}},
        network=True,
    ) as stack:
        edu = await stack.headers_for(
            name="上海市教育委员会",
            kind="bureau",
            bureau="EDU",
            scopes=["registry:read", "monitoring:read", "workforce:read", "indicators:read"],
        )
        xuhui = await stack.headers_for(
            name="徐汇区教育局",
            kind="district",
            district_code=XUHUI,
            scopes=["registry:read", "monitoring:read"],
        )
        operator = await stack.operator()
        facilities = []
        for name, town in (
            (INJECTED, "310104003"),
            ("徐汇区“小太阳”托育园, 二部", "310104004"),
            ("静安托育点", "310106011"),
        ):
            submitted = await stack.client.post(
                "/v1/facilities", json=facility_body(name=name, town_code=town), headers=operator
            )
            assert submitted.status_code == 201, submitted.text
            facilities.append(submitted.json())
        await _seed_alerts(stack)
        async with serving(stack.gateway) as url, httpx.AsyncClient(base_url=url, timeout=120) as http:
            yield City(stack=stack, http=http, edu=edu, xuhui=xuhui, facilities=facilities)


def assert_cell(text: str, value: Any, where: str) -> None:
    """A CSV cell says what the JSON value said (formulas neutralised, nested values as JSON)."""
    if value is None:
        assert text == "", where
    elif isinstance(value, bool):
        assert text == ("true" if value else "false"), where
    elif isinstance(value, int | float):
        assert float(text) == value, where
    elif isinstance(value, str):
        assert text == ("'" + value if value[:1] in ("=", "+", "-", "@") else value), where
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        assert text == "; ".join(value), where
    else:
        assert json.loads(text) == value, where


def value_at(item: dict[str, Any], column: str) -> Any:
    value: Any = item
    for key in column.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def parse_csv(response: httpx.Response) -> tuple[list[str], list[list[str]]]:
    assert response.content.startswith("\ufeff".encode())  # the BOM: Excel reads UTF-8
    header, *rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))
    return header, rows


def assert_same(header: list[str], rows: list[list[Any]], items: list[dict[str, Any]]) -> None:
    assert len(rows) == len(items)
    for row, item in zip(rows, items, strict=True):
        assert len(row) == len(header)
        for column, text in zip(header, row, strict=True):
            assert_cell(text, value_at(item, column), f"{item.get('id')} {column}")


async def test_csv_is_the_whole_filtered_list_as_its_json_pages_show_it(city: City) -> None:
    response = await city.export("/v1/alerts", city.xuhui, "text/csv", status="open")
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="alerts-') and disposition.endswith('.csv"')
    header, rows = parse_csv(response)
    assert header[:3] == ["id", "facility_id", "district_code"] and "details" in header
    items = await city.json_items("/v1/alerts", city.xuhui, status="open")
    assert len(items) > 1000 and {i["district_code"] for i in items} == {XUHUI}  # the district's only
    assert_same(header, rows, items)
    # RFC 4180: every record ends in CRLF.
    assert response.content.count(b"\r\n") == len(rows) + 1


async def test_xlsx_reads_back_as_the_json_items(city: City) -> None:
    response = await city.export("/v1/alerts", city.edu, XLSX, severity="critical")
    assert response.headers["content-type"] == XLSX
    assert response.headers["content-disposition"].endswith('.xlsx"')
    sheet = load_workbook(io.BytesIO(response.content), read_only=True).worksheets[0]
    header, *rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    items = await city.json_items("/v1/alerts", city.edu, severity="critical")
    assert len(items) == len(rows) > 0 and {i["district_code"] for i in items} == {XUHUI, JINGAN}
    for row, item in zip(rows, items, strict=True):
        for column, value in zip(header, row, strict=True):
            expected = value_at(item, column)
            if isinstance(expected, dict):
                assert json.loads(value) == expected
            elif expected is None:
                assert value is None, column
            else:
                assert value == expected, column  # numbers as numbers, text as text


async def test_an_export_is_streamed_in_chunks_not_one_body(city: City) -> None:
    async with city.http.stream("GET", "/v1/alerts", headers={**city.edu, "Accept": "text/csv"}) as response:
        assert response.status_code == 200
        assert "content-length" not in response.headers
        assert response.headers["transfer-encoding"] == "chunked"
        reads = [chunk async for chunk in response.aiter_raw()]
    assert len(reads) >= 3  # one per page of the whole set, at least
    text = b"".join(reads).decode("utf-8-sig")
    assert text.count("\r\n") == 2 * ALERTS_PER_DISTRICT + 1


async def test_facilities_keep_chinese_and_never_run_a_formula(city: City) -> None:
    response = await city.export("/v1/facilities", city.edu, "text/csv", district_code=XUHUI)
    header, rows = parse_csv(response)
    items = await city.json_items("/v1/facilities", city.edu, district_code=XUHUI)
    assert {i["id"] for i in items} == {f["id"] for f in city.facilities[:2]}
    assert_same(header, rows, items)
    names = [row[header.index("name")] for row in rows]
    assert "'" + INJECTED in names and INJECTED not in names
    assert "徐汇区“小太阳”托育园, 二部" in names  # a comma inside, quoted and read back whole
    assert "capacity.infant" in header  # nested shapes flattened
    sheet = load_workbook(
        io.BytesIO((await city.export("/v1/facilities", city.edu, XLSX, district_code=XUHUI)).content)
    ).worksheets[0]
    cells = [cell for row in sheet.iter_rows() for cell in row]
    assert not any(cell.data_type == "f" for cell in cells)  # no formula anywhere
    assert "'" + INJECTED in {cell.value for cell in cells}


async def test_an_accept_the_list_cannot_answer_is_406(city: City) -> None:
    for path in ("/v1/alerts", "/v1/facilities", "/v1/incidents", "/v1/coverage"):
        refused = await city.http.get(path, headers={**city.edu, "Accept": "application/xml"})
        assert refused.status_code == 406, (path, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"] == "/problems/not-acceptable"
    for accept in ("application/json", "*/*", "text/csv;q=0.5, application/json", "application/*"):
        answered = await city.http.get(
            "/v1/alerts", params={"limit": 1}, headers={**city.edu, "Accept": accept}
        )
        assert answered.headers["content-type"] == "application/json", accept
    liked = await city.http.get(
        "/v1/alerts", headers={**city.edu, "Accept": "application/json;q=0.1, text/*"}
    )
    assert liked.headers["content-type"].startswith("text/csv")


async def test_coverage_and_indicators_as_files(city: City) -> None:
    coverage = (await city.http.get("/v1/coverage", headers=city.edu)).json()
    header, rows = parse_csv(await city.export("/v1/coverage", city.edu, "text/csv"))
    towns = [(d, t) for d in coverage["districts"] for t in d["town_coverage"]]
    assert len(rows) == len(towns) > 200
    first_district, first_town = towns[0]
    assert rows[0][header.index("district_name")] == first_district["name"]
    assert rows[0][header.index("town_name")] == first_town["name"]
    indicators = (await city.http.get("/v1/indicators", headers=city.edu)).json()
    header, rows = parse_csv(await city.export("/v1/indicators", city.edu, "text/csv"))
    assert [row[header.index("id")] for row in rows] == [i["id"] for i in indicators["items"]]


async def test_the_audit_log_names_each_export(city: City) -> None:
    await city.export("/v1/incidents", city.edu, XLSX)
    await city.http.get("/v1/incidents", headers=city.edu)

    async def recorded() -> list[dict[str, Any]]:
        records = await city.http.get(
            "/v1/audit", params={"path": "/v1/incidents"}, headers=await city.stack.admin()
        )
        return records.json()["items"] if len(records.json()["items"]) >= 2 else []

    records = await eventually(recorded)
    assert {r["export"] for r in records} == {XLSX, None}
