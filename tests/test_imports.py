"""Spreadsheets in, through the gateway: a bureau's licensed facilities (registry) and an operator's
staff roster (workforce), each dry-run first (a verdict per row, nothing changed), then applied,
then uploaded again (nothing new); bad rows name their field, another's facility is refused, and
what is applied shows in the API and its events. Headers in Chinese (XLSX) and English (CSV).
SQLite and PostgreSQL; one stack per module and backend, the tests in order (each builds on what
the one before imported); `cradle import` from a terminal against the gateway under uvicorn."""

from __future__ import annotations

import asyncio
import csv
import io
import itertools
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from openpyxl import Workbook
from sqlalchemy import func, select

from services.workforce.models import Employment, HireAttempt
from shared.pii import national_id_check_char
from tests.conftest import Stack, start_stack
from tests.servers import serving
from tests.support import DatabaseFactory, eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")
_namespaces = itertools.count(1)
_people = itertools.count(1)
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
FACILITY_HEADERS = [
    "许可证号", "机构名称", "类型", "普惠", "街镇代码", "地址", "纬度", "经度", "举办者", "服务形式",
    "乳儿班托位", "托小班托位", "托大班托位",
]  # fmt: skip


def id_number() -> str:
    first17 = (
        f"310104{date(1985, 1, 1) + timedelta(days=next(_people) * 41):%Y%m%d}{uuid.uuid4().int % 1000:03d}"
    )
    return first17 + national_id_check_char(first17)


def xlsx(header: list[str], rows: list[list[Any]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def csv_bytes(header: list[str], rows: list[list[Any]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([header, *rows])
    return buffer.getvalue().encode("utf-8-sig")


@dataclass
class Bureau:
    stack: Stack
    edu: dict[str, str]

    async def upload(
        self, path: str, headers: dict[str, str], content: bytes, name: str, *, dry_run: bool
    ) -> httpx.Response:
        kind = XLSX_TYPE if name.endswith(".xlsx") else "text/csv"
        return await self.stack.client.post(
            path,
            params={"dry_run": str(dry_run).lower()},
            files={"file": (name, content, kind)},
            headers=headers,
        )

    async def rows_of(self, model: Any, *conditions: Any) -> int:
        async with self.stack.workforce.state.sessionmaker() as session:
            return (
                await session.execute(select(func.count()).select_from(model).where(*conditions))
            ).scalar_one()


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["sqlite", "postgres"])
async def bureau(
    request: pytest.FixtureRequest,
    db_factories: dict[str, DatabaseFactory],
    shared_nats_url: str,
    run_id: str,
    keys: dict[str, Any],
) -> AsyncIterator[Bureau]:
    if request.param not in db_factories:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    async with start_stack(
        databases=db_factories[request.param],
        nats_url=shared_nats_url,
        namespace=f"t{run_id}i{next(_namespaces)}",
        keys=keys,
        overrides={"workforce": {"jobs_interval_seconds": 0}},
    ) as stack:
        edu = await stack.headers_for(
            name="上海市教育委员会",
            kind="bureau",
            bureau="EDU",
            scopes=["registry:read", "registry:review", "workforce:read"],
        )
        yield Bureau(stack=stack, edu=edu)


def facility_rows(licences: list[str], address: str = "天平路 100 号") -> list[list[Any]]:
    return [
        [
            licences[0],
            "徐汇区天平托育园",
            "private",
            "是",
            "310104003",
            address,
            31.205,
            121.44,
            "天平托育有限公司",
            "full_day; hourly",
            10,
            15,
            20,
        ],
        [
            licences[1],
            "徐汇区枫林托育点",
            "community_point",
            "否",
            "310104004",
            "枫林路 8 号",
            31.19,
            121.45,
            "枫林街道社区服务中心",
            "full_day",
            0,
            10,
            10,
        ],
        [
            licences[2],
            "坏行",
            "",
            "是",
            "310104003",
            "某路 1 号",
            40.0,
            121.44,
            "某公司",
            "full_day",
            5,
            5,
            5,
        ],
        [
            licences[0],
            "重复的行",
            "private",
            "是",
            "310104003",
            "某路 2 号",
            31.2,
            121.44,
            "某公司",
            "full_day",
            5,
            5,
            5,
        ],
    ]


async def test_a_bureau_imports_licensed_facilities(bureau: Bureau) -> None:
    licences = [f"沪托备{uuid.uuid4().hex[:8]}" for _ in range(3)]
    facility_ids: dict[str, str] = {}  # licence → facility id
    sheet = xlsx(FACILITY_HEADERS, facility_rows(licences))

    dry = await bureau.upload("/v1/imports/facilities", bureau.edu, sheet, "机构.xlsx", dry_run=True)
    assert dry.status_code == 200, dry.text
    report = dry.json()
    assert report["dry_run"] is True and (report["rows"], report["created"], report["errors"]) == (4, 2, 2), [
        v["errors"] for v in report["items"]
    ]
    verdicts = report["items"]
    assert [v["outcome"] for v in verdicts] == ["create", "create", "error", "error"]
    assert [v["row"] for v in verdicts] == [2, 3, 4, 5]
    assert {e["field"] for e in verdicts[2]["errors"]} == {"kind", "lat"}  # named by their columns
    assert verdicts[3]["errors"][0]["field"] == "license_no"  # the same licence twice in one file
    listed = await bureau.stack.client.get("/v1/facilities", params={"limit": 500}, headers=bureau.edu)
    assert not {f.get("license_no") for f in listed.json()["items"]} & set(licences)  # nothing

    applied = await bureau.upload("/v1/imports/facilities", bureau.edu, sheet, "机构.xlsx", dry_run=False)
    assert [v["outcome"] for v in applied.json()["items"]] == ["create", "create", "error", "error"]
    for verdict, licence in zip(applied.json()["items"][:2], licences, strict=False):
        facility = (
            await bureau.stack.client.get(f"/v1/facilities/{verdict['id']}", headers=bureau.edu)
        ).json()
        assert facility["status"] == "approved" and facility["license_no"] == licence
        facility_ids[licence] = verdict["id"]
    first = (await bureau.stack.client.get(f"/v1/facilities/{verdict['id']}", headers=bureau.edu)).json()
    assert first["capacity"] == {"infant": 0, "toddler": 10, "preschool": 10}

    again = await bureau.upload("/v1/imports/facilities", bureau.edu, sheet, "机构.xlsx", dry_run=False)
    assert [v["outcome"] for v in again.json()["items"]] == ["skip", "skip", "error", "error"]
    assert [v["id"] for v in again.json()["items"][:2]] == [facility_ids[lic] for lic in licences[:2]]

    # English headers, CSV: one address changed is an update (a new version), the other a skip.
    english = [
        "license_no",
        "name",
        "kind",
        "inclusive",
        "town_code",
        "address",
        "lat",
        "lon",
        "operator_name",
        "service_modes",
        "capacity_infant",
        "capacity_toddler",
        "capacity_preschool",
    ]
    moved = csv_bytes(english, facility_rows(licences, address="天平路 102 号")[:2])
    changed = await bureau.upload(
        "/v1/imports/facilities", bureau.edu, moved, "facilities.csv", dry_run=False
    )
    assert [v["outcome"] for v in changed.json()["items"]] == ["update", "skip"], changed.text
    updated = await bureau.stack.client.get(f"/v1/facilities/{facility_ids[licences[0]]}", headers=bureau.edu)
    assert updated.json()["address"] == "天平路 102 号" and updated.json()["version"] == 2


async def test_only_edu_imports_facilities_and_a_bad_file_is_refused_whole(bureau: Bureau) -> None:
    sheet = xlsx(FACILITY_HEADERS, facility_rows([f"x{n}" for n in range(3)]))
    operator = await bureau.stack.operator()
    refused = await bureau.upload("/v1/imports/facilities", operator, sheet, "a.xlsx", dry_run=True)
    assert refused.status_code == 403
    health = await bureau.stack.headers_for(
        name="卫健委", kind="bureau", bureau="HEALTH", scopes=["registry:review"]
    )
    assert (
        await bureau.upload("/v1/imports/facilities", health, sheet, "a.xlsx", dry_run=True)
    ).status_code == 403
    unknown = csv_bytes(["许可证号", "机构名称", "备注"], [["x", "y", "z"]])
    bad = await bureau.upload("/v1/imports/facilities", bureau.edu, unknown, "a.csv", dry_run=True)
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert {e["field"] for e in bad.json()["errors"]} == {"file.header.3"}
    missing = csv_bytes(["机构名称"], [["y"]])
    bad = await bureau.upload("/v1/imports/facilities", bureau.edu, missing, "a.csv", dry_run=True)
    assert bad.status_code == 422 and {e["field"] for e in bad.json()["errors"]} == {"license_no"}
    garbage = await bureau.upload(
        "/v1/imports/facilities", bureau.edu, b"PK\x03\x04 not a zip", "a.xlsx", dry_run=True
    )
    assert garbage.status_code == 422 and garbage.json()["errors"][0]["field"] == "file"


async def licensed_facilities(bureau: Bureau) -> list[str]:
    """Two facilities imported by EDU, as legacy licensed ones come to exist here: their ids."""
    licences = [f"沪托备{uuid.uuid4().hex[:8]}" for _ in range(3)]
    sheet = xlsx(FACILITY_HEADERS, facility_rows(licences)[:2])
    applied = await bureau.upload("/v1/imports/facilities", bureau.edu, sheet, "机构.xlsx", dry_run=False)
    assert [v["outcome"] for v in applied.json()["items"]] == ["create", "create"], applied.text
    return [verdict["id"] for verdict in applied.json()["items"]]


async def operator_of(bureau: Bureau, facility_id: str) -> dict[str, str]:
    """An operator client of the facility, once the workforce has learnt of the facility."""
    created = await bureau.stack.new_client(
        name="天平托育有限公司",
        kind="operator",
        facility_ids=[facility_id],
        scopes=["workforce:read", "workforce:write"],
    )
    token = await bureau.stack.token(created["client_id"], created["client_secret"])
    operator = {"Authorization": f"Bearer {token}"}

    async def known_to_workforce() -> bool:  # the registry's facility.approved, through NATS
        listed = await bureau.stack.client.get(
            "/v1/employments", params={"facility_id": facility_id}, headers=operator
        )
        return listed.status_code == 200

    await eventually(known_to_workforce)
    return operator


ROSTER_HEADERS = [
    "身份证号", "姓名", "手机", "证书类型", "证书编号", "发证机关", "发证日期", "有效期至", "机构ID", "岗位",
    "入职日期", "缴纳社保", "健康证编号", "健康证发证机构", "健康证发证日期",
]  # fmt: skip


async def test_an_operator_imports_its_roster(bureau: Bureau) -> None:
    mine, theirs = await licensed_facilities(bureau)
    operator = await operator_of(bureau, mine)
    people = [id_number() for _ in range(4)]
    today = date.today()
    issued, expires, start = (
        today - timedelta(days=100),
        today + timedelta(days=900),
        today - timedelta(days=3),
    )
    bad_id = people[1][:-1] + ("0" if people[1][-1] != "0" else "1")
    rows = [
        [
            people[0],
            "张丽",
            "13912345678",
            "infant_carer",
            "YY-2026-001",
            "上海市人社局",
            issued,
            expires,
            mine,
            "infant_carer",
            start,
            "是",
            "JK-2026-001",
            "上海市黄浦区疾病预防控制中心",
            today - timedelta(days=30),
        ],
        [bad_id, "李强", *[None] * 6, mine, "other", start, "否", *[None] * 3],
        [people[2], "王芳", *[None] * 6, theirs, "other", start, "否", *[None] * 3],
        [people[3], "赵敏", *[None] * 6, mine, "infant_carer", start, "否", *[None] * 3],
    ]
    sheet = xlsx(ROSTER_HEADERS, rows)

    dry = await bureau.upload("/v1/imports/roster", operator, sheet, "花名册.xlsx", dry_run=True)
    assert dry.status_code == 200, dry.text
    verdicts = dry.json()["items"]
    assert [v["outcome"] for v in verdicts] == ["create", "error", "error", "error"], verdicts
    assert verdicts[0]["key"] != people[0] and verdicts[0]["key"].endswith(people[0][-4:])
    assert {e["field"] for e in verdicts[1]["errors"]} == {"id_number"}
    assert {e["field"] for e in verdicts[2]["errors"]} == {"facility_id"}  # not the operator's
    assert verdicts[3]["errors"][0]["field"] in {"role", "certificate_type"}  # a carer needs a certificate
    assert await bureau.rows_of(Employment, Employment.facility_id == mine) == 0  # the dry run kept nothing

    applied = await bureau.upload("/v1/imports/roster", operator, sheet, "花名册.xlsx", dry_run=False)
    assert [v["outcome"] for v in applied.json()["items"]] == ["create", "error", "error", "error"]
    staff = await bureau.stack.client.get("/v1/employments", params={"facility_id": mine}, headers=operator)
    [hired] = staff.json()["items"]
    assert hired["practitioner_name"] == "张丽" and hired["social_insurance_paid"] is True
    person = await bureau.stack.client.get(f"/v1/practitioners/{hired['practitioner_id']}", headers=operator)
    assert person.json()["id_number"] != people[0]  # stored encrypted, shown masked
    certificates = await bureau.stack.client.get(
        f"/v1/practitioners/{hired['practitioner_id']}/certificates", headers=operator
    )
    assert [(c["type"], c["number"]) for c in certificates.json()["items"]] == [
        ("infant_carer", "YY-2026-001"),
        ("health", "JK-2026-001"),  # 健康合格证明, valid a year from its issue
    ]

    again = await bureau.upload("/v1/imports/roster", operator, sheet, "花名册.xlsx", dry_run=False)
    assert [v["outcome"] for v in again.json()["items"]] == ["skip", "error", "error", "error"]
    assert await bureau.rows_of(Employment, Employment.facility_id == mine) == 1
    assert await bureau.rows_of(Employment, Employment.facility_id == theirs) == 0

    # The roster as the bureau's file: the same rows as the JSON, another operator's roster a 404.
    exported = await bureau.stack.client.get(
        "/v1/employments", params={"facility_id": mine}, headers={**bureau.edu, "Accept": "text/csv"}
    )
    assert exported.status_code == 200 and exported.content.startswith("\ufeff".encode())
    header, *rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"), newline="")))
    assert [dict(zip(header, row, strict=True)) for row in rows] == [
        {
            k: ("true" if v is True else "false" if v is False else "" if v is None else str(v))
            for k, v in item.items()
        }
        for item in staff.json()["items"]
    ]
    elsewhere = await bureau.stack.client.get(
        "/v1/employments", params={"facility_id": theirs}, headers={**operator, "Accept": "text/csv"}
    )
    assert elsewhere.status_code == 404


async def test_a_banned_person_in_a_roster_is_refused_and_recorded(bureau: Bureau) -> None:
    mine, _ = await licensed_facilities(bureau)
    operator = await operator_of(bureau, mine)
    banned = id_number()
    police = await bureau.stack.headers_for(
        name="公安局", kind="bureau", bureau="POLICE", scopes=["workforce:ban"]
    )
    ban = await bureau.stack.client.post(
        "/v1/bans",
        json={"id_number": banned, "name": "钱某", "reason": "虐童", "decision_ref": "沪公〔2026〕1号",
              "role": "abuser"},
        headers=police,
    )  # fmt: skip
    assert ban.status_code == 201, ban.text
    english = ["id_number", "name", "facility_id", "role", "start_date"]
    sheet = csv_bytes(english, [[banned, "钱某", mine, "other", date.today().isoformat()]])
    refused = await bureau.upload("/v1/imports/roster", operator, sheet, "roster.csv", dry_run=False)
    [verdict] = refused.json()["items"]
    assert verdict["outcome"] == "error" and verdict["errors"][0]["field"] == "id_number"
    assert await bureau.rows_of(HireAttempt, HireAttempt.facility_id == mine) >= 1  # as the API keeps it


async def test_the_command_line_uploads_and_prints_the_verdicts(bureau: Bureau, tmp_path: Path) -> None:
    licences = [f"沪托备{uuid.uuid4().hex[:8]}" for _ in range(3)]
    sheet = tmp_path / "机构.xlsx"
    sheet.write_bytes(xlsx(FACILITY_HEADERS, facility_rows(licences)[:3]))
    token = bureau.edu["Authorization"].removeprefix("Bearer ")
    async with serving(bureau.stack.gateway) as url:

        async def cradle_import(*extra: str) -> tuple[int, str]:
            process = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).with_name("cradle")), "import", str(sheet),
                "--to", f"{url}/v1/imports/facilities", *extra,
                env={**os.environ, "CRADLE_TOKEN": token, "COLUMNS": "200"},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            output, _ = await process.communicate()
            return process.returncode or 0, output.decode()

        status, output = await cradle_import("--dry-run")
        assert status == 1, output  # a row in error
        assert "3 rows of facilities: 2 would be (dry run) created" in output, output
        assert "lat" in output and "kind" in output  # the bad row's fields, in the table
        assert "uploading" in output  # the progress bar's line
        listed = await bureau.stack.client.get("/v1/facilities", params={"limit": 500}, headers=bureau.edu)
        assert not {f.get("license_no") for f in listed.json()["items"]} & set(licences)

        status, output = await cradle_import()
        assert status == 1 and "2 were created" in output, output
        status, output = await cradle_import()
        assert "0 were created" in output and "2 skipped" in output, output

        operator = (await bureau.stack.operator())["Authorization"].removeprefix("Bearer ")
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("cradle")), "import", str(sheet),
            "--to", f"{url}/v1/imports/facilities", "--token", operator,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output_bytes, _ = await process.communicate()
        assert process.returncode == 2 and "403" in output_bytes.decode()
