"""Demo change requests to licensed facts for `cradle seed-demo`: about one approved facility in forty
asks to change what its licence fixed — a class more of one age class (its places with it), or a
move to another address in its 街镇 — and the licensing departments review it: about a third are
approved by every department (the facts then change: versions, events and coverage as in the
service), some are rejected by one, the rest wait with some departments still to review. Asked and
reviewed through the registry's own functions at the time of seeding, by the facility's operator
and each department as itself, so checks, reviews, versions and events are the real ones. (The fee
requests above the inclusive cap are `fees.py`'s.) Seeded once per database: a registry that has a
request about licensed facts is left as it is; deterministic for a seed."""

from __future__ import annotations

import random
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from cradle.seed.approved import approved_without, in_batches, registry_sessions
from services.registry.config import RegistrySettings
from services.registry.models import ChangeRequest, Facility
from services.registry.schemas import Capacity, Classes, ReviewCreate, ReviewDecision
from services.registry.schemas.fees import ChangeRequestKind, LicensedFactsChange
from services.registry.service import change_requests
from services.registry.service.facilities import capacity_of, check_capacity, class_sizes
from shared.errors import InvalidInput
from shared.identity import ClientKind, Identity

ONE_IN = 40
AGE_CLASSES = ("infant", "toddler", "preschool")
REASONS = {
    "class": ("扩班：新增一个{word}，场地已按标准改造", "应家长需求增设{word}"),
    "move": ("原场地租约到期，迁至同街镇新址", "迁入街道提供的新社区用房"),
}
WORDS = {"infant": "乳儿班", "toddler": "托小班", "preschool": "托大班"}
REJECTIONS = {
    "FIRE": "新址消防验收材料不全",
    "HEALTH": "新增班级的卫生保健设施未达标",
    "EDU": "新增托位所需保育人员配备方案缺失",
    "SAMR": "登记信息与申请材料不一致",
}


@dataclass
class ChangeRequestsReport:
    asked: int = 0
    approved: int = 0
    rejected: int = 0


def _department(name: str) -> Identity:
    return Identity(
        client_id=f"seed-{name.lower()}", kind=ClientKind.bureau, bureau=name, scopes=["registry:review"]
    )


def _change(rng: random.Random, facility: Facility, settings: RegistrySettings) -> LicensedFactsChange | None:
    """A class more of one age class with its places, or a move within the 街镇; None when the
    facility's licensed classes do not hold its places (nothing sensible to ask)."""
    if rng.random() < 0.65:
        sizes = class_sizes(settings)
        capacity = capacity_of(facility)
        declared = Classes(**{a: getattr(facility, f"classes_{a}") for a in AGE_CLASSES})
        try:
            classes = check_capacity(
                capacity, declared if any(declared.model_dump().values()) else None, settings
            )
        except InvalidInput:
            return None
        grown = rng.choice([a for a in AGE_CLASSES if getattr(capacity, a)] or ["toddler"])
        more_places = {a: getattr(capacity, a) + (sizes[a] if a == grown else 0) for a in AGE_CLASSES}
        more_classes = {a: getattr(classes, a) + (a == grown) for a in AGE_CLASSES}
        return LicensedFactsChange(
            capacity=Capacity(**more_places),
            classes=Classes(**more_classes),
            reason=rng.choice(REASONS["class"]).format(word=WORDS[grown]),
        )
    street = rng.choice(("文化路", "康乐路", "育才路", "和平街", "友谊路", "新华路"))
    return LicensedFactsChange(
        address=f"{street} {rng.randint(1, 899)} 号",
        lat=round(facility.lat + rng.uniform(-0.004, 0.004), 6),
        lon=round(facility.lon + rng.uniform(-0.004, 0.004), 6),
        reason=rng.choice(REASONS["move"]),
    )


async def seed_change_requests(
    engine: AsyncEngine, *, namespace: str, seed: int = 2026
) -> ChangeRequestsReport:
    rng = random.Random(f"change_requests:{seed}")
    report = ChangeRequestsReport()
    settings = RegistrySettings.model_construct()  # the defaults: the seeder runs outside the service
    maker = registry_sessions(engine, namespace)
    async with maker() as session:
        facts = select(ChangeRequest.id).where(ChangeRequest.kind == ChangeRequestKind.facts.value).limit(1)
        if (await session.execute(facts)).first() is not None:
            return report
        ids = await approved_without(session, ChangeRequest.facility_id)  # one question open at a time
    chosen = [i for i in ids if rng.randrange(ONE_IN) == 0]
    async for session, batch in in_batches(maker, chosen):
        for facility in batch:
            data = _change(rng, facility, settings)
            if data is None:
                continue
            operator = Identity(
                client_id=facility.owner_client_id or "seed-demo",
                kind=ClientKind.operator,
                facility_ids=[facility.id],
                scopes=["registry:write"],
            )
            request = await change_requests.request_facts(
                session=session, caller=operator, facility=facility, data=data, settings=settings
            )
            report.asked += 1
            # About a third approved by every department (the facts change), some rejected by one
            # after others approved, the rest waiting for the departments still to review.
            departments = list(request.departments)
            draw = rng.random()
            everyone = draw < 0.35
            approving = (
                departments if everyone else rng.sample(departments, rng.randint(0, len(departments) - 1))
            )
            decisions = [(d, ReviewDecision.approve, "") for d in approving]
            if not everyone and draw < 0.5:
                refusing = rng.choice([d for d in departments if d not in approving])
                decisions.append((refusing, ReviewDecision.reject, REJECTIONS[refusing]))
            for department, decision, note in decisions:
                await change_requests.review(
                    session=session,
                    caller=_department(department),
                    facility=facility,
                    request=request,
                    data=ReviewCreate(department=department, decision=decision, note=note),
                    settings=settings,
                )
            report.approved += request.status == "approved"
            report.rejected += request.status == "rejected"
    return report
