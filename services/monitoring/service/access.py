"""Who may do what in the casework, beyond seeing a facility (service/common.py): the supervisors of
a district are its district client and the EDU bureau (the lead bureau). The admin client
administers clients and acts for no one (separation of duties): it holds no `monitoring:write`
(`Identity.has_scope`), so it neither reports nor escalates, and reads no casework here."""

from __future__ import annotations

from shared.errors import Forbidden
from shared.identity import ClientKind, Identity

LEAD_BUREAU = "EDU"


def supervises(caller: Identity, district_code: str) -> bool:
    if caller.kind == ClientKind.bureau:
        return caller.is_bureau(LEAD_BUREAU)
    return caller.kind == ClientKind.district and caller.district_code == district_code


def require_supervisor(caller: Identity, district_code: str, what: str) -> None:
    if not supervises(caller, district_code):
        raise Forbidden(f"Only the district's guidance centre or the EDU bureau {what}.")


def reads_city(caller: Identity) -> bool:
    """The city's bureaus read every district's casework; the admin client reads none of it."""
    return caller.kind == ClientKind.bureau


def reads_district(caller: Identity, district_code: str) -> bool:
    """Plans and planned inspections: the district and the city's bureaus; never the facilities
    (a 双随机 inspection is unannounced), nor the admin client."""
    if reads_city(caller):
        return True
    return caller.kind == ClientKind.district and caller.district_code == district_code


def is_parent(caller: Identity) -> bool:
    return caller.kind == ClientKind.parent
