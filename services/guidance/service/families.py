"""Families: guardians (phones encrypted, masked unless a `guidance:pii` caller says why), children
(birth dates only), flags, and the link between a parent's app account and its family."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, false, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.guidance.errors import AlreadyLinked, FamilyNotFound, LinkCodeNotFound, TooManyLinkAttempts
from services.guidance.events import FamilyLinked, FamilyRegistered
from services.guidance.models import Child, Family, FamilyLink, Guardian, LinkAttempt
from services.guidance.schemas import (
    GRANDPARENTS,
    ChildCreate,
    ChildRead,
    FamilyCreate,
    FamilyRead,
    FamilySummary,
    FamilyUpdate,
    GuardianRead,
    PiiView,
)
from services.guidance.service.common import (
    LINK_CODE,
    PHONE,
    Guidance,
    age_in_months,
    audit_pii_read,
    check_area,
    families_visible_to,
    is_parent,
    linked_family_id,
    may_see_family,
    reveals_pii,
    town_or_422,
    writes_guidance,
)
from services.guidance.service.tallies import set_in_need
from shared.api import check_version
from shared.clock import as_utc, new_id, shanghai_today, utcnow
from shared.errors import CradleError, Forbidden, invalid
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import Identity
from shared.pagination import PageParams, encode_cursor
from shared.pii import mask

# Unambiguous capitals and digits (no 0/O, 1/I/L): 31^10 ≈ 2^49 codes, read aloud or typed.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 10


@dataclass
class FamilyDetail:
    family: Family
    guardians: list[Guardian]
    children: list[Child]
    linked_parents: int


@dataclass(frozen=True)
class FamilyFilters:
    district_code: str | None = None
    town_code: str | None = None
    in_need: bool | None = None
    newborn: bool | None = None


def normalise_code(code: str) -> str:
    return "".join(c for c in code.upper() if c.isalnum())


def code_hash(guidance: Guidance, code: str) -> str:
    return guidance.hasher.digest("link-code:" + normalise_code(code))


def new_link_code(guidance: Guidance, family: Family) -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    family.link_code_hash = code_hash(guidance, raw)
    family.link_code_expires_at = utcnow() + timedelta(days=guidance.settings.link_code_days)
    return f"{raw[:5]}-{raw[5:]}"


def seal_code(guidance: Guidance, code: str) -> str:
    sealed = guidance.seal(code, context=LINK_CODE)
    return f"{sealed.key_id}:{sealed.ciphertext}"


def open_code(guidance: Guidance, sealed: str) -> str:
    key_id, _, ciphertext = sealed.partition(":")
    return guidance.open(key_id, ciphertext, context=LINK_CODE)


async def register_family(
    *, session: AsyncSession, guidance: Guidance, caller: Identity, data: FamilyCreate
) -> tuple[FamilyDetail, str | None]:
    """A family registered by a station or district gets a one-time link code for its parents; a
    parent registering from the app is linked to the family at once."""
    parent = is_parent(caller)
    if parent and await linked_family_id(session, caller) is not None:
        raise AlreadyLinked("This app account is already linked to a family.")
    if not parent and not writes_guidance(caller):
        raise Forbidden("This needs the `guidance:write` scope, or a parent's app account.")
    town = await town_or_422(session, data.town_code)
    if not parent:
        check_area(caller, town.district_code)
    now = utcnow()
    grandparent_carers = (
        data.grandparent_carers
        if data.grandparent_carers is not None
        else any(g.relation in GRANDPARENTS for g in data.guardians)
    )
    family = Family(
        id=new_id(),
        district_code=town.district_code,
        town_code=town.code,
        in_need=data.in_need,
        newborn=data.newborn,
        grandparent_carers=grandparent_carers,
        has_handbook=data.has_handbook,
        registered_on=shanghai_today(now),
        registered_at=now,
        registered_by=caller.client_id,
        registered_via="app" if parent else "station",
        updated_at=now,
    )
    code = None if parent else new_link_code(guidance, family)
    session.add(family)
    guardians = []
    for position, g in enumerate(data.guardians):
        sealed = guidance.seal(g.phone, context=PHONE) if g.phone else None
        guardians.append(
            Guardian(
                id=new_id(),
                family_id=family.id,
                position=position,
                relation=g.relation.value,
                name=g.name,
                phone_key_id=sealed.key_id if sealed else None,
                phone_encrypted=sealed.ciphertext if sealed else None,
                phone_masked=mask(g.phone) if g.phone else None,
                phone_hash=guidance.hasher.digest(g.phone) if g.phone else None,
            )
        )
    children = [Child(id=new_id(), family_id=family.id, birth_date=c.birth_date) for c in data.children]
    await session.flush()
    session.add_all([*guardians, *children])
    if parent:
        session.add(
            FamilyLink(
                parent_id=caller.client_id, family_id=family.id, linked_via="registration", linked_at=now
            )
        )
    await session.flush()
    await emit(
        session,
        FamilyRegistered(
            family_id=family.id,
            district_code=family.district_code,
            town_code=family.town_code,
            in_need=family.in_need,
            newborn=family.newborn,
            grandparent_carers=family.grandparent_carers,
            has_handbook=family.has_handbook,
            children=len(children),
            registered_via=family.registered_via,
            registered_at=now,
        ),
    )
    if parent:
        await emit(
            session,
            FamilyLinked(
                family_id=family.id, parent_id=caller.client_id, linked_via="registration", linked_at=now
            ),
        )
    return FamilyDetail(family, guardians, children, 1 if parent else 0), code


async def detail(session: AsyncSession, family: Family) -> FamilyDetail:
    guardians = (
        await session.execute(
            select(Guardian).where(Guardian.family_id == family.id).order_by(Guardian.position, Guardian.id)
        )
    ).scalars()
    children = (
        await session.execute(
            select(Child).where(Child.family_id == family.id).order_by(Child.birth_date, Child.id)
        )
    ).scalars()
    links = (
        await session.execute(
            select(func.count()).select_from(FamilyLink).where(FamilyLink.family_id == family.id)
        )
    ).scalar_one()
    return FamilyDetail(family, list(guardians), list(children), int(links))


def to_read(
    found: FamilyDetail,
    *,
    session: AsyncSession,
    guidance: Guidance,
    caller: Identity,
    purpose: str | None,
    request_id: str | None,
) -> FamilyRead:
    """Phones masked, unless the caller holds `guidance:pii` and gave a purpose; then the read is
    audited in the same transaction, so no unmasked answer leaves without its audit row."""
    family = found.family
    unmasked = reveals_pii(caller, purpose) and any(g.phone_encrypted for g in found.guardians)
    if unmasked:
        assert purpose is not None
        audit_pii_read(
            session,
            caller=caller,
            record_type="family",
            record_id=family.id,
            fields="guardians.phone",
            purpose=purpose,
            request_id=request_id,
        )

    def phone(g: Guardian) -> str | None:
        if unmasked and g.phone_encrypted and g.phone_key_id:
            return guidance.open(g.phone_key_id, g.phone_encrypted, context=PHONE)
        return g.phone_masked

    today = shanghai_today()
    return FamilyRead(
        id=family.id,
        district_code=family.district_code,
        town_code=family.town_code,
        in_need=family.in_need,
        newborn=family.newborn,
        grandparent_carers=family.grandparent_carers,
        has_handbook=family.has_handbook,
        guardians=[
            GuardianRead(id=g.id, relation=g.relation, name=g.name, phone=phone(g)) for g in found.guardians
        ],
        children=[
            ChildRead(id=c.id, birth_date=c.birth_date, age_months=age_in_months(c.birth_date, today))
            for c in found.children
        ],
        registered_on=family.registered_on,
        registered_via=family.registered_via,
        linked_parents=found.linked_parents,
        pii=PiiView.unmasked if unmasked else PiiView.masked,
        version=family.version,
    )


async def get_visible_family(
    *, session: AsyncSession, caller: Identity, family_id: str, for_update: bool = False
) -> Family:
    """404 both when it does not exist and when the caller may not see it: never reveal existence."""
    family = await session.get(Family, family_id, with_for_update=for_update or None)
    if family is None or not await may_see_family(session, caller, family):
        raise FamilyNotFound(tr("No family {family_id} that you may see.", family_id=family_id))
    return family


async def update_family(
    *, session: AsyncSession, caller: Identity, family: Family, data: FamilyUpdate, if_match: str | None
) -> Family:
    check_version(family.version, if_match)
    changes = data.model_dump(exclude_unset=True)
    if is_parent(caller):
        staff_only = sorted(set(changes) - {"grandparent_carers", "has_handbook"})
        if staff_only:
            raise Forbidden(f"Only a guidance station or district changes {', '.join(staff_only)}.")
    elif not writes_guidance(caller):
        raise Forbidden("This needs the `guidance:write` scope.")
    for field, value in changes.items():
        if value is None:
            raise invalid(field, "is true or false")
        setattr(family, field, value)
    family.version += 1
    family.updated_at = utcnow()
    await session.flush()
    if "in_need" in changes:
        # The tallies follow under the family's row lock (taken on load), which pushes and marks wait for.
        await set_in_need(session=session, family_id=family.id, in_need=family.in_need)
    return family


async def add_child(*, session: AsyncSession, caller: Identity, family: Family, data: ChildCreate) -> Family:
    if not (is_parent(caller) or writes_guidance(caller)):
        raise Forbidden("This needs the `guidance:write` scope, or the family's parent.")
    session.add(Child(id=new_id(), family_id=family.id, birth_date=data.birth_date))
    family.version += 1
    family.updated_at = utcnow()
    await session.flush()
    return family


async def reissue_link_code(
    *, session: AsyncSession, guidance: Guidance, caller: Identity, family: Family
) -> str:
    """A new one-time code (the old one stops working), for a parent who lost it."""
    if not writes_guidance(caller):
        raise Forbidden("This needs the `guidance:write` scope.")
    code = new_link_code(guidance, family)
    family.version += 1
    family.updated_at = utcnow()
    await session.flush()
    return code


async def redeem_link_code(
    *, session: AsyncSession, guidance: Guidance, caller: Identity, code: str
) -> Family | CradleError:
    """Link the parent's account to the family the code was issued for; the code then stops
    working. A refusal is returned, not raised, so that the wrong attempt it records commits."""
    if not is_parent(caller):
        raise Forbidden("Only a parent's app account redeems a link code.")
    if await linked_family_id(session, caller) is not None:
        raise AlreadyLinked("This app account is already linked to a family.")
    now = utcnow()
    hour_ago = now - timedelta(hours=1)
    wrong = (
        await session.execute(
            select(func.count())
            .select_from(LinkAttempt)
            .where(LinkAttempt.parent_id == caller.client_id, LinkAttempt.attempted_at > hour_ago)
        )
    ).scalar_one()
    if wrong >= guidance.settings.link_attempts_per_hour:
        return TooManyLinkAttempts("Too many wrong codes in the last hour; try again later.", retry_after=900)
    digest = code_hash(guidance, code)
    family = (
        await session.execute(select(Family).where(Family.link_code_hash == digest))
    ).scalar_one_or_none()
    expires = as_utc(family.link_code_expires_at) if family and family.link_code_expires_at else None
    # Single use even under concurrent redemptions: only the UPDATE that still finds the hash wins.
    used = None
    if family is not None and expires is not None and expires > now:
        used = await session.execute(
            update(Family)
            .where(Family.id == family.id, Family.link_code_hash == digest)
            .values(
                link_code_hash=None, link_code_expires_at=None, version=Family.version + 1, updated_at=now
            )
            .execution_options(synchronize_session=False)
        )
    if family is None or used is None or used.rowcount != 1:
        session.add(LinkAttempt(id=new_id(), parent_id=caller.client_id, attempted_at=now))
        await session.execute(delete(LinkAttempt).where(LinkAttempt.attempted_at < now - timedelta(days=1)))
        return LinkCodeNotFound("No family has this code (or it was used or has expired).")
    session.add(FamilyLink(parent_id=caller.client_id, family_id=family.id, linked_via="code", linked_at=now))
    await session.flush()
    await emit(
        session,
        FamilyLinked(family_id=family.id, parent_id=caller.client_id, linked_via="code", linked_at=now),
    )
    await session.refresh(family)
    return family


async def list_families(
    *,
    session: AsyncSession,
    caller: Identity,
    filters: FamilyFilters,
    page: PageParams,
    parent_family_id: str | None = None,
) -> tuple[list[FamilySummary], str | None]:
    if is_parent(caller):
        query = select(Family).where(Family.id == parent_family_id if parent_family_id else false())
    else:
        query = select(Family).where(families_visible_to(caller))
    if filters.district_code:
        query = query.where(Family.district_code == filters.district_code)
    if filters.town_code:
        query = query.where(Family.town_code == filters.town_code)
    if filters.in_need is not None:
        query = query.where(Family.in_need == filters.in_need)
    if filters.newborn is not None:
        query = query.where(Family.newborn == filters.newborn)
    if page.after:
        query = query.where(Family.id > str(page.after[0]))
    rows = list((await session.execute(query.order_by(Family.id).limit(page.limit + 1))).scalars())
    more = len(rows) > page.limit
    rows = rows[: page.limit]
    items = [FamilySummary.model_validate(f, from_attributes=True) for f in rows]
    return items, encode_cursor([rows[-1].id]) if more and rows else None
