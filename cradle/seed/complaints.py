"""Demo complaints (投诉) for `cradle seed-demo`: about one approved facility in twelve, lodged over
the last four months by parents' accounts, the public and the EDU hotline, in the words families
use; the districts acknowledged the older ones and answered most of them (about a third founded
or partly founded). Lodged, acknowledged and answered through the service's own functions at the
times they happened, so the deadlines come from Shanghai's working calendar, the complainants'
names and phones are sealed with monitoring's keys, and each step's event waits in the outbox
(a founded answer reaches the registry's credit record once monitoring runs). Unanswered ones past
their deadlines are left for the escalation job. Seeded once per database; deterministic for a seed."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from services.monitoring.models import Complaint, Facility, outbox
from services.monitoring.schemas import ComplaintAnswer, ComplaintCreate
from services.monitoring.service import complaints
from services.monitoring.service.complaint_access import Complaints
from shared.events.outbox import OutboxWriter, outbox_session_info
from shared.events.streams import Namespace
from shared.identity import PUBLIC_IDENTITY, ClientKind, Identity

SHARE = 12  # one facility in this many gets a complaint (some get two)
DAYS = 120
WORDS: dict[str, tuple[str, ...]] = {
    "food": ("午餐连续几天没有按公示食谱提供", "点心分量明显不足，孩子回家说饿"),
    "care": ("孩子午睡时无人看护", "孩子尿湿后长时间没有更换衣物"),
    "safety": ("户外活动区的围栏有松动", "接送时门口无人核对接送人身份"),
    "health_hygiene": ("教室地面和玩具清洁不到位", "班上多名幼儿腹泻，园方未及时告知家长"),
    "fees": ("收取了未公示的材料费", "退托后剩余保育费迟迟未退"),
    "staff_conduct": ("保育员对孩子大声呵斥", "老师在班上长时间看手机"),
    "premises": ("睡眠室通风差，气味重", "卫生间热水长期不能使用"),
    "other": ("园方更换了午休时间但未提前通知", "家长开放日被临时取消"),
}
ANSWERS = {
    "founded": "经核查，反映情况属实，已责令机构限期整改并约谈负责人。",
    "partly_founded": "经核查，反映情况部分属实，已要求机构整改，其余情况未发现问题。",
    "unfounded": "经现场核查及调阅监控，未发现反映的问题，已向投诉人说明。",
}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙朱马胡郭何林"
EDU_HOTLINE = Identity(
    client_id="seed-edu-hotline", kind=ClientKind.bureau, bureau="EDU", scopes=["monitoring:write"]
)


@dataclass
class ComplaintsReport:
    lodged: int = 0
    answered: int = 0
    founded: int = 0


async def seed_complaints(
    engine: AsyncEngine, *, desk: Complaints, namespace: str, seed: int = 2026
) -> ComplaintsReport:
    rng = random.Random(f"complaints:{seed}")
    report = ComplaintsReport()
    info = outbox_session_info(OutboxWriter(outbox, Namespace(namespace), "/cradle/monitoring"))
    maker = async_sessionmaker(engine, expire_on_commit=False, info=info)
    async with maker() as session:
        if (await session.execute(select(Complaint.id).limit(1))).first() is not None:
            return report  # seeded before, or real complaints: left as they are
        facilities = (
            (
                await session.execute(
                    select(Facility).where(Facility.status == "approved").order_by(Facility.id)
                )
            )
            .scalars()
            .all()
        )
    now = datetime.now(UTC)
    for facility in facilities:
        if rng.randrange(SHARE):
            continue
        for _ in range(1 + (rng.random() < 0.2)):
            await _one(maker, desk=desk, facility=facility, rng=rng, now=now, report=report)
    return report


async def _one(
    maker: async_sessionmaker,  # type: ignore[type-arg]
    *,
    desk: Complaints,
    facility: Facility,
    rng: random.Random,
    now: datetime,
    report: ComplaintsReport,
) -> None:
    category = rng.choice(sorted(WORDS))
    lodged_at = now - timedelta(days=rng.uniform(0, DAYS), seconds=rng.randrange(86_400))
    who = rng.random()
    if who < 0.45:
        caller = Identity(
            client_id=f"seed-parent-{rng.randrange(10**8):08d}", kind=ClientKind.parent, scopes=["parent"]
        )
    elif who < 0.85:
        caller = PUBLIC_IDENTITY
    else:
        caller = EDU_HOTLINE
    named = rng.random() < 0.6
    data = ComplaintCreate(
        facility_id=facility.id,
        category=category,
        description=rng.choice(WORDS[category]),
        complainant_name=f"{rng.choice(SURNAMES)}{'女士' if rng.random() < 0.7 else '先生'}"
        if named
        else None,
        complainant_phone=f"13{rng.randrange(10**9):09d}" if named or rng.random() < 0.5 else None,
    )
    district = Identity(
        client_id=f"seed-district-{facility.district_code}",
        kind=ClientKind.district,
        district_code=facility.district_code,
        scopes=["monitoring:read", "monitoring:write"],
    )
    async with maker() as session, session.begin():
        lodged = await complaints.lodge(session=session, caller=caller, data=data, desk=desk, now=lodged_at)
        complaint = lodged.complaint
        report.lodged += 1
        age = (now - lodged_at).days
        if age >= 2 and rng.random() < 0.9:
            # Mostly on time: within the working day, sometimes a few days late.
            acknowledged_at = min(
                lodged_at + timedelta(hours=rng.uniform(1, 30 if rng.random() < 0.85 else 90)), now
            )
            await complaints.acknowledge(
                session=session, caller=district, complaint=complaint, now=acknowledged_at
            )
        if age >= 10 and rng.random() < 0.85:
            answered_at = min(lodged_at + timedelta(days=rng.uniform(3, 25)), now)
            outcome = rng.choices(("founded", "partly_founded", "unfounded"), weights=(2, 2, 7))[0]
            await complaints.answer(
                session=session,
                caller=district,
                complaint=complaint,
                data=ComplaintAnswer(outcome=outcome, answer=ANSWERS[outcome]),
                now=max(answered_at, complaint.acknowledged_at or answered_at),
            )
            report.answered += 1
            report.founded += outcome != "unfounded"
