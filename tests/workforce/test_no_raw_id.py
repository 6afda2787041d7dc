"""The raw ID number appears nowhere: not in the database (file or tables), not in the logs, not in
any NATS message, after it went through every path that touches it."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import nats
import pytest
from sqlalchemy.engine import make_url

from shared.events.streams import SERVICES, Namespace
from tests.support import eventually
from tests.workforce.conftest import WorkforceStack, new_id_number

INCIDENT = "cradle.monitoring.incident.confirmed"


async def all_nats_messages(wf: WorkforceStack) -> list[bytes]:
    ns = Namespace(wf.namespace)
    nc = await nats.connect(wf.nats_url)
    try:
        js = nc.jetstream()
        found: list[bytes] = []
        for name in [ns.stream(service) for service in SERVICES] + [ns.dead_letter_stream]:
            info = await js.stream_info(name)
            if not info.state.messages:
                continue
            for seq in range(max(info.state.first_seq, 1), info.state.last_seq + 1):
                message = await js.get_msg(name, seq)
                found.append((message.subject or "").encode() + b"\n" + (message.data or b""))
                for key, value in (message.headers or {}).items():
                    found.append(f"{key}: {value}".encode())
        return found
    finally:
        await nc.close()


async def database_bytes(wf: WorkforceStack) -> bytes:
    url = make_url(wf.workforce.state.settings.database_url)
    await wf.workforce.state.engine.dispose()  # checkpoint nothing away: read the WAL as well
    if url.get_backend_name() == "sqlite":
        path = Path(url.database or "")
        return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    conn = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        tables = [
            r["tablename"]
            for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        ]
        dump = []
        for table in tables:
            rows = await conn.fetch(f'SELECT row_to_json(t)::text AS j FROM "{table}" t')
            dump.extend(r["j"] for r in rows)
        return "\n".join(dump).encode()
    finally:
        await conn.close()


async def test_the_raw_id_number_is_nowhere(wf: WorkforceStack, capfd: pytest.CaptureFixture[str]) -> None:
    raw = new_id_number()
    hidden = raw[3:14]  # what the mask hides
    facility = await wf.facility()
    person = await wf.practitioner(id_number=raw)
    await wf.certify(person["id"])
    assert (await wf.hire(person["id"], facility)).status_code == 201
    duplicate = await wf.direct.post(
        "/v1/practitioners", json={"id_number": raw, "name": "张三"}, headers=wf.sign()
    )
    assert duplicate.status_code == 200  # the same person's record, found
    lower_x = raw[:17] + "x"
    assert (
        await wf.direct.post("/v1/practitioners", json={"id_number": lower_x, "name": "x"}, headers=wf.sign())
    ).status_code == 422
    reader = wf.bureau("HRSS", scopes=["workforce:read", "workforce:pii"])
    assert (
        await wf.direct.post("/v1/ban-checks", json={"id_number": raw}, headers=reader)
    ).status_code == 200
    refused = wf.operator(scopes=["workforce:write"])
    assert (
        await wf.direct.post("/v1/ban-checks", json={"id_number": raw}, headers=refused)
    ).status_code == 403
    unmasked = await wf.direct.get(
        f"/v1/practitioners/{person['id']}", headers={**reader, "X-Purpose": "audit test"}
    )
    assert unmasked.json()["id_number"] == raw  # the one place it may appear: an audited answer
    ban = await wf.ban(raw)
    assert ban.status_code == 201
    assert (await wf.ban(raw, decision_ref=ban.json()["decision_ref"])).status_code == 409
    assert (await wf.hire(person["id"], facility)).status_code == 409
    other = await wf.employed(facility)
    await wf.publish(
        INCIDENT,
        {
            "incident_id": str(uuid.uuid4()),
            "facility_id": facility,
            "district_code": "310104",
            "category": "abuse",
            "decision_ref": "徐教监〔2026〕99号",
            "decided_at": "2026-11-28T10:00:00+08:00",
            "abuser_practitioner_ids": [other["id"]],
            "responsible_manager_ids": [],
        },
    )
    await eventually(lambda: wf.events("cradle.workforce.ban.issued"))
    await eventually(lambda: _two(wf))

    messages = await all_nats_messages(wf)
    assert len(messages) > 10
    for secret in (raw, hidden, other["raw_id_number"], other["raw_id_number"][3:14]):
        assert not any(secret.encode() in m for m in messages), f"{secret} in a NATS message"
    logs = "".join(capfd.readouterr())
    for secret in (raw, hidden, lower_x[3:14]):
        assert secret not in logs
    stored = await database_bytes(wf)
    assert len(stored) > 1000
    for secret in (raw, hidden, other["raw_id_number"][3:14]):
        assert secret.encode() not in stored, f"{secret} stored in clear"


async def _two(wf: WorkforceStack) -> bool:
    return len(await wf.events("cradle.workforce.ban.issued")) == 2
