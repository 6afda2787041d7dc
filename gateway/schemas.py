from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from shared.identity import ClientKind
from shared.scalars import Integer
from shared.text import FreeText, Name

SCOPES = frozenset(
    "registry:read registry:write registry:review workforce:read workforce:write workforce:ban "
    "workforce:pii monitoring:ingest monitoring:read monitoring:write monitoring:pii guidance:read "
    "guidance:write guidance:pii indicators:read audit:read events:read events:subscribe admin parent".split()
)
BUREAUS = frozenset("EDU HEALTH CIVIL SAMR POLICE FIRE HRSS WOMEN WCWC FINANCE".split())
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    scope: str


class ClientCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "天平街道社区服务中心",
                    "kind": "operator",
                    "facility_ids": ["3fa85f64-5717-4562-b3fc-2c963f66afa6"],
                    "scopes": ["registry:read", "registry:write"],
                }
            ]
        },
    )

    name: Name
    kind: Literal[ClientKind.bureau, ClientKind.district, ClientKind.operator, ClientKind.app]
    bureau: str | None = None
    district_code: Annotated[str, StringConstraints(pattern=r"^3101\d{2}$")] | None = None
    facility_ids: list[str] = Field(default_factory=list, max_length=1000)
    scopes: list[str] = Field(min_length=1, max_length=len(SCOPES))

    @field_validator("scopes")
    @classmethod
    def _known_scopes(cls, scopes: list[str]) -> list[str]:
        unknown = sorted(set(scopes) - SCOPES)
        if unknown:
            raise ValueError(f"unknown scope(s): {', '.join(unknown)}")
        if "admin" in scopes:
            raise ValueError("the admin scope is not granted through the API")
        return sorted(set(scopes))

    @field_validator("bureau")
    @classmethod
    def _known_bureau(cls, bureau: str | None) -> str | None:
        if bureau is not None and bureau not in BUREAUS:
            raise ValueError(f"must be one of {', '.join(sorted(BUREAUS))}")
        return bureau

    @field_validator("facility_ids")
    @classmethod
    def _uuid_ids(cls, ids: list[str]) -> list[str]:
        bad = [i for i in ids if not _UUID.match(i)]
        if bad:
            raise ValueError(f"not facility ids (UUIDs): {', '.join(bad[:5])}")
        return sorted(set(ids))

    @model_validator(mode="after")
    def _kind_fits(self) -> ClientCreate:
        if self.kind == ClientKind.bureau and self.bureau is None:
            raise ValueError("a bureau client names its bureau")
        if self.kind == ClientKind.district and self.district_code is None:
            raise ValueError("a district client names its district_code")
        return self


class ClientRead(BaseModel):
    client_id: str
    name: str
    kind: ClientKind
    bureau: str | None
    district_code: str | None
    facility_ids: list[str]
    scopes: list[str]
    enabled: bool
    created_at: datetime


class ClientCreated(ClientRead):
    client_secret: str = Field(description="Shown once; store it now.")


class SecretRotation(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"grace_seconds": 86400}]})

    grace_seconds: Integer | None = Field(
        default=None, ge=0, le=30 * 86400, description="How long the current secret keeps working."
    )


class RotatedSecret(BaseModel):
    client_id: str
    client_secret: str = Field(description="Shown once; store it now.")
    previous_secret_expires_at: datetime = Field(description="Until then the previous secret still works.")


class AuditRead(BaseModel):
    seq: int
    at: datetime
    client_id: str
    client_kind: str
    bureau: str | None
    method: str
    path: str
    status: int
    request_id: str
    purpose: str | None
    duration_ms: float
    export: str | None = Field(
        default=None, description="A list answered as a file: its media type (text/csv or the XLSX type)"
    )
    hash: str


Phone = Annotated[str, StringConstraints(pattern=r"^1[3-9]\d{9}$")]
# Not trimmed (spaces count), but never a NUL or a lone surrogate, which cannot be hashed as UTF-8.
Password = Annotated[str, StringConstraints(min_length=8, max_length=128), FreeText]


class ParentRegister(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"phone": "13812345678", "password": "correct-horse-battery"}]},
    )

    phone: Phone = Field(description="Mainland mobile number, 11 digits")
    password: Password
    family_id: str | None = Field(
        default=None,
        description=(
            "A hint only, carried in the token: it grants nothing. The guidance service links a parent "
            "to a family itself (a family registered from the app, or the station's one-time link code)."
        ),
    )

    @field_validator("family_id")
    @classmethod
    def _uuid(cls, value: str | None) -> str | None:
        if value is not None and not _UUID.match(value):
            raise ValueError("not a family id (UUID)")
        return value


class ParentLogin(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"phone": "13812345678", "password": "correct-horse-battery"}]},
    )

    phone: Phone
    password: Annotated[str, StringConstraints(min_length=1, max_length=128), FreeText]


class IndicatorRow(BaseModel):
    """One indicator of `GET /v1/indicators` (the columns of its export; a compound target or actual
    is JSON text there)."""

    id: str
    name: str
    task: str
    unit: str
    source: str
    status: str
    target: Any = None
    actual: Any = None
    met: bool | None = None
    numerator: int | None = None
    denominator: int | None = None


class PlanIndicators(BaseModel):
    """`GET /v1/indicators`: every indicator of the plan for a year, and how each source service
    answered (`ok`, `not_found`, `not_permitted` or `unavailable`)."""

    year: int
    as_of: date = Field(description="The day the figures are for: the year's last day, or today")
    generated_at: datetime
    sources: dict[str, str]
    items: list[IndicatorRow]


class ProfilePart(BaseModel):
    """One part of a facility's profile, as its service answered this caller: `ok` with its `data`
    (the service's own reply), or `not_found`, `not_permitted` or `unavailable` (down or slower than
    the gateway waits) with a `reason`."""

    status: Literal["ok", "not_found", "not_permitted", "unavailable"]
    data: Any = Field(default=None, description="The service's reply; absent unless `ok`")
    reason: str | None = Field(default=None, description="Why the part is missing; absent when `ok`")


class FacilityProfile(BaseModel):
    """`GET /v1/facilities/{id}/profile`: a facility's parts from three services, each read with the
    caller's identity; `complete` is false while any part is not `ok`."""

    facility_id: str
    generated_at: datetime
    complete: bool
    facility: ProfilePart
    staffing: ProfilePart
    training: ProfilePart
    open_alerts: ProfilePart = Field(description="`data`: `{items, more}`, the open alerts")
    last_inspection: ProfilePart = Field(description="`data`: the last completed inspection, or null")
    risk: ProfilePart = Field(
        description="`data`: the risk score and its reasons (open and founded complaints too)"
    )
    health: ProfilePart = Field(description="`data`: entry health checks (入托体检) and 卫生保健 assessments")
    fees: ProfilePart = Field(
        description="`data`: the fees as they stand today — in force, announced, held for EDU, and the "
        "flag for fees above the district's inclusive cap"
    )
    complaints: ProfilePart = Field(
        description="`data`: `{items, more}`, the latest complaints about it (the complainant as the "
        "caller may see it)"
    )
    subsidies: ProfilePart = Field(description="`data`: `{items, more}`, its latest subsidy lines (综合奖补)")
