"""Lifetime bans (终身禁入): issuing (which ends every active employment at once and tells each
employer), rescinding, ban checks (audited every time, never failing open), employers'
acknowledgements and their escalation."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.workforce.errors import BanAlreadyRescinded, BanExists, BanNotFound, NotificationNotFound
from services.workforce.events import BanIssued, BannedAt, BanNotificationUnacknowledged, BanRescinded
from services.workforce.models import (
    Ban,
    BanNotification,
    BanRescission,
    Employment,
    FacilityProjection,
    Practitioner,
)
from services.workforce.schemas import (
    BanCreate,
    BanNotificationRead,
    BanRead,
    BanRescind,
    PiiView,
    RescissionRead,
)
from services.workforce.service import staffing
from services.workforce.service.common import (
    ID_NUMBER,
    Workforce,
    audit_pii_read,
    get_visible_facility,
    lock_person,
    may_see,
    reveals_pii,
    visible_facilities,
)
from services.workforce.service.hiring import close, ended_event
from shared.clock import as_utc, new_id, shanghai_today, utcnow
from shared.events.outbox import emit
from shared.i18n import tr
from shared.identity import Identity, require_bureau
from shared.pagination import Page, PageParams, cut_page, keyset
from shared.pii import Encrypted, mask

# Who may ban (DOMAIN.md, "Who may ban"): `workforce:ban` reaches the path, only these bureaus act.
BAN_AUTHORITIES = ("EDU", "POLICE")
SYSTEM = "workforce"  # who acts when an event, not a caller, causes the change


def notify_employer(session: AsyncSession, *, ban: Ban, employment: Employment, now: datetime) -> None:
    """The employer of a banned person is told, once per facility; unacknowledged past the deadline
    (counted from `now`), its district is told."""
    session.add(
        BanNotification(
            id=new_id(),
            ban_id=ban.id,
            facility_id=employment.facility_id,
            district_code=employment.district_code,
            employment_id=employment.id,
            notified_at=now,
        )
    )


async def issue_ban(
    *,
    session: AsyncSession,
    id_hash: str,
    sealed_id: Encrypted,
    masked_id: str,
    name: str,
    reason: str,
    decision_ref: str,
    role: str,
    incident_id: str | None,
    issued_by: str,
) -> Ban:
    """Write the ban, end every active employment of the person, notify each employer and publish
    `ban.issued` naming them: one transaction, under the person's lock."""
    await lock_person(session, id_hash)
    existing = (
        await session.execute(select(Ban.id).where(Ban.id_hash == id_hash, Ban.decision_ref == decision_ref))
    ).scalar_one_or_none()
    if existing is not None:
        raise BanExists(
            f"Ban {existing} already records decision {decision_ref} for this person.",
            ban_id=existing,
            headers={"Location": f"/v1/bans/{existing}"},
        )
    practitioner_id = (
        await session.execute(select(Practitioner.id).where(Practitioner.id_hash == id_hash))
    ).scalar_one_or_none()
    now = utcnow()
    ban = Ban(
        id=new_id(),
        id_hash=id_hash,
        practitioner_id=practitioner_id,
        name=name,
        id_number_key_id=sealed_id.key_id,
        id_number_encrypted=sealed_id.ciphertext,
        id_number_masked=masked_id,
        reason=reason,
        decision_ref=decision_ref,
        role=role,
        incident_id=incident_id,
        status="active",
        issued_by=issued_by,
        issued_at=now,
    )
    session.add(ban)
    await session.flush()
    affected: list[BannedAt] = []
    if practitioner_id is not None:
        employments = (
            (
                await session.execute(
                    select(Employment)
                    .where(Employment.practitioner_id == practitioner_id, Employment.status == "active")
                    .order_by(Employment.start_date, Employment.id)
                )
            )
            .scalars()
            .all()
        )
        notified: set[str] = set()
        for employment in employments:
            close(employment, end_date=shanghai_today(now), reason="ban", by=issued_by, note=f"ban {ban.id}")
            await emit(session, ended_event(employment))
            affected.append(
                BannedAt(
                    facility_id=employment.facility_id,
                    district_code=employment.district_code,
                    employment_id=employment.id,
                )
            )
            if employment.facility_id not in notified:
                notified.add(employment.facility_id)
                notify_employer(session, ban=ban, employment=employment, now=now)
    if affected:
        await staffing.announce(session, {place.facility_id for place in affected})
    await emit(
        session,
        BanIssued(
            ban_id=ban.id,
            role=role,
            decision_ref=decision_ref,
            incident_id=incident_id,
            issued_at=now,
            practitioner_id=practitioner_id,
            facilities=affected,
        ),
    )
    await session.flush()
    return ban


def require_ban_authority(caller: Identity) -> None:
    require_bureau(caller, *BAN_AUTHORITIES, action="Issuing or rescinding a lifetime ban")


def is_ban_authority(caller: Identity) -> bool:
    return caller.is_bureau(*BAN_AUTHORITIES)


async def issue_ban_from_request(
    *, session: AsyncSession, workforce: Workforce, caller: Identity, data: BanCreate
) -> Ban:
    require_ban_authority(caller)
    return await issue_ban(
        session=session,
        id_hash=workforce.hash_id(data.id_number),
        sealed_id=workforce.seal(data.id_number, context=ID_NUMBER),
        masked_id=mask(data.id_number),
        name=data.name,
        reason=data.reason,
        decision_ref=data.decision_ref,
        role=data.role.value,
        incident_id=data.incident_id,
        issued_by=caller.client_id,
    )


async def ban_practitioner_for_incident(
    *,
    session: AsyncSession,
    practitioner: Practitioner,
    role: str,
    incident_id: str,
    decision_ref: str,
    reason: str,
) -> Ban | None:
    """A confirmed incident's ban, once: None when this incident or decision already banned them."""
    already = await session.execute(
        select(Ban.id).where(
            Ban.id_hash == practitioner.id_hash,
            or_(Ban.incident_id == incident_id, Ban.decision_ref == decision_ref),
        )
    )
    if already.first() is not None:
        return None
    return await issue_ban(
        session=session,
        id_hash=practitioner.id_hash,
        # The practitioner's ciphertext is valid for the ban too: same key, same field context.
        sealed_id=Encrypted(practitioner.id_number_key_id, practitioner.id_number_encrypted),
        masked_id=practitioner.id_number_masked,
        name=practitioner.name,
        reason=reason,
        decision_ref=decision_ref,
        role=role,
        incident_id=incident_id,
        issued_by=SYSTEM,
    )


async def get_visible_ban(*, session: AsyncSession, caller: Identity, ban_id: str) -> Ban:
    """The city's bureaus and ban issuers see every ban; an employer or district only a ban that
    notified a facility it may see."""
    ban = await session.get(Ban, ban_id)
    if ban is not None and (caller.sees_whole_city() or is_ban_authority(caller)):
        return ban
    if ban is not None:
        visible = await session.execute(
            select(BanNotification.id)
            .join(FacilityProjection, FacilityProjection.facility_id == BanNotification.facility_id)
            .where(BanNotification.ban_id == ban.id, visible_facilities(caller))
            .limit(1)
        )
        if visible.first() is not None:
            return ban
    raise BanNotFound(tr("No ban {ban_id} that you may see.", ban_id=ban_id))


def notification_read(notification: BanNotification, *, acknowledge_within: timedelta) -> BanNotificationRead:
    return BanNotificationRead(
        ban_id=notification.ban_id,
        facility_id=notification.facility_id,
        district_code=notification.district_code,
        employment_id=notification.employment_id,
        notified_at=notification.notified_at,
        acknowledge_by=as_utc(notification.notified_at) + acknowledge_within,
        acknowledged_at=notification.acknowledged_at,
        escalated_at=notification.escalated_at,
    )


async def ban_read(
    *,
    session: AsyncSession,
    workforce: Workforce,
    caller: Identity,
    ban: Ban,
    purpose: str | None,
    request_id: str | None,
) -> BanRead:
    unmasked = reveals_pii(caller, purpose)
    id_number = ban.id_number_masked
    if unmasked:
        assert purpose is not None
        id_number = workforce.open(ban.id_number_key_id, ban.id_number_encrypted, context=ID_NUMBER)
        audit_pii_read(
            session,
            caller=caller,
            record_type="ban",
            record_id=ban.id,
            fields="id_number",
            purpose=purpose,
            request_id=request_id,
        )
    rescission = (
        await session.execute(select(BanRescission).where(BanRescission.ban_id == ban.id))
    ).scalar_one_or_none()
    notifications = (
        await session.execute(
            select(BanNotification, FacilityProjection)
            .join(FacilityProjection, FacilityProjection.facility_id == BanNotification.facility_id)
            .where(BanNotification.ban_id == ban.id)
            .order_by(BanNotification.facility_id)
        )
    ).all()
    within = timedelta(hours=workforce.settings.ban_acknowledge_hours)
    return BanRead(
        id=ban.id,
        name=ban.name,
        id_number=id_number,
        pii=PiiView.unmasked if unmasked else PiiView.masked,
        practitioner_id=ban.practitioner_id,
        reason=ban.reason,
        decision_ref=ban.decision_ref,
        role=ban.role,
        incident_id=ban.incident_id,
        status=ban.status,
        issued_by=ban.issued_by,
        issued_at=ban.issued_at,
        rescission=RescissionRead(
            reason=rescission.reason,
            authority_ref=rescission.authority_ref,
            rescinded_by=rescission.rescinded_by,
            rescinded_at=rescission.rescinded_at,
        )
        if rescission
        else None,
        notifications=[
            notification_read(n, acknowledge_within=within)
            for n, facility in notifications
            if caller.sees_whole_city() or is_ban_authority(caller) or may_see(caller, facility)
        ],
    )


async def rescind_ban(*, session: AsyncSession, caller: Identity, ban: Ban, data: BanRescind) -> Ban:
    """A ban is corrected, never deleted: the rescission is recorded beside it. Employment ended
    by the ban stays ended; rehiring is a new hire."""
    require_ban_authority(caller)
    await lock_person(session, ban.id_hash)
    await session.refresh(ban)
    if ban.status != "active":
        raise BanAlreadyRescinded(tr("Ban {ban_id} is already rescinded.", ban_id=ban.id))
    now = utcnow()
    session.add(
        BanRescission(
            id=new_id(),
            ban_id=ban.id,
            reason=data.reason,
            authority_ref=data.authority_ref,
            rescinded_by=caller.client_id,
            rescinded_at=now,
        )
    )
    ban.status = "rescinded"
    await emit(
        session,
        BanRescinded(ban_id=ban.id, reason=data.reason, authority_ref=data.authority_ref, rescinded_at=now),
    )
    await session.flush()
    return ban


async def acknowledge(
    *, session: AsyncSession, workforce: Workforce, caller: Identity, ban_id: str, facility_id: str
) -> BanNotificationRead:
    await get_visible_facility(session=session, caller=caller, facility_id=facility_id)
    notification = (
        await session.execute(
            select(BanNotification).where(
                BanNotification.ban_id == ban_id, BanNotification.facility_id == facility_id
            )
        )
    ).scalar_one_or_none()
    if notification is None:
        raise NotificationNotFound(
            tr(
                "Facility {facility_id} has no notification of ban {ban_id}.",
                facility_id=facility_id,
                ban_id=ban_id,
            )
        )
    if notification.acknowledged_at is None:
        notification.acknowledged_at = utcnow()
        notification.acknowledged_by = caller.client_id
    return notification_read(
        notification, acknowledge_within=timedelta(hours=workforce.settings.ban_acknowledge_hours)
    )


async def list_notifications(
    *, session: AsyncSession, workforce: Workforce, caller: Identity, pending_only: bool, page: PageParams
) -> Page[BanNotificationRead]:
    """Newest first."""
    query = (
        select(BanNotification)
        .join(FacilityProjection, FacilityProjection.facility_id == BanNotification.facility_id)
        .where(visible_facilities(caller))
    )
    if pending_only:
        query = query.where(BanNotification.acknowledged_at.is_(None))
    query = keyset(query, [BanNotification.notified_at, BanNotification.id], page, descending=True)
    rows, cursor = cut_page(
        (await session.execute(query)).scalars().all(),
        limit=page.limit,
        position_of=lambda n: [n.notified_at, n.id],
    )
    within = timedelta(hours=workforce.settings.ban_acknowledge_hours)
    return Page[BanNotificationRead](
        items=[notification_read(n, acknowledge_within=within) for n in rows], next_cursor=cursor
    )


async def escalate_unacknowledged(*, session: AsyncSession, workforce: Workforce, now: datetime) -> int:
    """Tell the district about every notification left unacknowledged past the deadline, once."""
    deadline = now - timedelta(hours=workforce.settings.ban_acknowledge_hours)
    query = (
        select(BanNotification)
        .where(
            BanNotification.acknowledged_at.is_(None),
            BanNotification.escalated_at.is_(None),
            BanNotification.notified_at <= deadline,
        )
        .order_by(BanNotification.notified_at)
        .limit(1000)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)  # replicas never escalate the same one twice
    due = (await session.execute(query)).scalars().all()
    for notification in due:
        notification.escalated_at = now
        await emit(
            session,
            BanNotificationUnacknowledged(
                ban_id=notification.ban_id,
                facility_id=notification.facility_id,
                district_code=notification.district_code,
                notified_at=as_utc(notification.notified_at),
            ),
        )
    return len(due)
