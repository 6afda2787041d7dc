"""Composite views the gateway answers itself, from the services' own APIs, called concurrently:

- the facility profile, with the caller's identity, so each service still decides what this caller
  may see; a part whose service is down, slow or refuses is marked so, and the rest still returns;
- the plan's indicators (DOMAIN.md), from each service's yearly figures, read as the gateway itself
  (aggregates, no personal data); a source that is down leaves its indicators `unavailable`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote, urlencode

import orjson
import structlog

from gateway.config import Target
from gateway.proxy import Forwarder
from gateway.upstream import UpstreamError
from shared.clock import SHANGHAI
from shared.errors import NotFound
from shared.i18n import N_, current_locale, localize, tr, translate
from shared.identity import ClientKind, Identity

log = structlog.get_logger("cradle.gateway.views")

# The gateway reading the services' figures for /v1/indicators: a whole-city reader of aggregates.
INDICATOR_READER = Identity(
    client_id="gateway:indicators",
    kind=ClientKind.bureau,
    bureau="EDU",
    scopes=["registry:read", "workforce:read", "monitoring:read", "guidance:read"],
)


@dataclass(frozen=True, slots=True)
class Part:
    status: str  # ok | not_found | not_permitted | unavailable
    data: Any = None
    reason: str | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.data is not None:
            out["data"] = self.data
        if self.reason:
            out["reason"] = localize(self.reason)
        return out


# A profile's complaints and subsidy lines: the latest this many, `more` saying whether there are others.
LISTED = 20


class Views:
    def __init__(self, *, forwarder: Forwarder, timeout: float, targets: Mapping[str, Target]) -> None:
        self.targets = targets
        self.forwarder = forwarder
        self.timeout = timeout

    async def fetch(self, service: str, target: str, identity_token: str, request_id: str) -> Part:
        """GET one service resource as JSON; never raises for the service's sake."""
        headers = [
            (b"x-cradle-identity", identity_token.encode()),
            (b"x-request-id", request_id.encode()),
            (b"accept", b"application/json"),
            (b"accept-language", current_locale().encode()),  # a part's texts in the caller's language
        ]
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.forwarder.send(service, "GET", target, headers, None)
                try:
                    body = b"".join([chunk async for chunk in response.chunks()])
                finally:
                    await response.aclose()
        except (TimeoutError, UpstreamError) as exc:
            log.warning("view_part_unavailable", service=service, target=target, error=type(exc).__name__)
            return Part("unavailable", reason=tr("the {service} service did not answer", service=service))
        if response.status == 404:
            return Part("not_found")
        if response.status in (401, 403):
            reason = tr("this client may not read it from {service}", service=service)
            return Part("not_permitted", reason=reason)
        if response.status != 200:
            return Part(
                "unavailable",
                reason=tr("the {service} service answered {status}", service=service, status=response.status),
            )
        try:
            return Part("ok", orjson.loads(body))
        except orjson.JSONDecodeError:
            reason = tr("the {service} service answered something unreadable", service=service)
            return Part("unavailable", reason=reason)

    async def gather(
        self, calls: dict[str, tuple[str, str]], identity_token: str, request_id: str
    ) -> dict[str, Part]:
        results = await asyncio.gather(
            *(self.fetch(service, target, identity_token, request_id) for service, target in calls.values())
        )
        return dict(zip(calls, results, strict=True))

    # ---- the facility profile ------------------------------------------------------------------

    async def profile(self, *, facility_id: str, caller: Identity, request_id: str) -> dict[str, Any]:
        token = self.forwarder.signer.sign(caller)
        fid = quote(facility_id, safe="")
        year = datetime.now(SHANGHAI).year
        calls = {
            "facility": ("registry", f"/v1/facilities/{fid}"),
            "staffing": ("workforce", f"/v1/facilities/{fid}/staffing"),
            "training": (
                "workforce",
                "/v1/compliance/training?"
                + urlencode({"year": year, "facility_id": facility_id, "limit": 500}),
            ),
            "open_alerts": (
                "monitoring",
                "/v1/alerts?" + urlencode({"facility_id": facility_id, "status": "open", "limit": 100}),
            ),
            "last_inspection": (
                "monitoring",
                "/v1/inspections?"
                + urlencode({"facility_id": facility_id, "status": "completed", "limit": 1}),
            ),
            "risk": ("monitoring", f"/v1/facilities/{fid}/risk"),
            "health": ("registry", f"/v1/facilities/{fid}/health"),
            "fees": ("registry", f"/v1/facilities/{fid}/fees/current"),
            "complaints": (
                "monitoring",
                "/v1/complaints?" + urlencode({"facility_id": facility_id, "limit": LISTED}),
            ),
            "subsidies": (
                "registry",
                "/v1/subsidy-lines?"
                + urlencode({"facility_id": facility_id, "newest_first": "true", "limit": LISTED}),
            ),
        }
        parts = await self.gather(calls, token, request_id)
        # The registry decides whether the facility exists for this caller; when it cannot say
        # (down), the other services' own answers decide.
        if parts["facility"].status == "not_found" or all(
            p.status in ("not_found", "not_permitted") for p in parts.values()
        ):
            raise NotFound(tr("No facility {facility_id} that you may see.", facility_id=facility_id))
        last = parts["last_inspection"]
        if last.status == "ok":
            items = last.data.get("items", []) if isinstance(last.data, dict) else []
            last = Part("ok", items[0] if items else None)
        listed = {name: _listed(parts[name]) for name in ("open_alerts", "complaints", "subsidies")}
        shown = {**parts, "last_inspection": last, **listed}
        return {
            "facility_id": facility_id,
            "generated_at": datetime.now(UTC).isoformat(),
            "complete": all(p.status == "ok" for p in shown.values()),
            **{name: part.body() for name, part in shown.items()},
        }

    # ---- the plan's indicators -----------------------------------------------------------------

    async def indicators(self, *, year: int, request_id: str) -> dict[str, Any]:
        token = self.forwarder.signer.sign(INDICATOR_READER)
        today = datetime.now(SHANGHAI).date()
        on = min(today, date(year, 12, 31))
        sources = await self.gather(
            {
                "coverage": ("registry", f"/v1/coverage?year={year}"),
                "certification": ("workforce", f"/v1/compliance/certification?on={on.isoformat()}"),
                "training": ("workforce", f"/v1/compliance/training?year={year}&limit=1"),
                "monitoring": ("monitoring", f"/v1/monitoring/figures?year={year}"),
                "guidance": ("guidance", f"/v1/guidance/figures?year={year}"),
            },
            token,
            request_id,
        )
        rows = [row.evaluate(sources, self.targets[row.id]) for row in INDICATORS]
        return {
            "year": year,
            "as_of": on.isoformat(),
            "generated_at": datetime.now(UTC).isoformat(),
            "sources": {name: part.status for name, part in sources.items()},
            "items": rows,
        }


def _listed(part: Part) -> Part:
    """A list part as `{items, more}`: the first page a service answered, and whether there is more."""
    if part.status != "ok" or not isinstance(part.data, dict):
        return part
    return Part("ok", {"items": part.data.get("items", []), "more": bool(part.data.get("next_cursor"))})


def _rate(numerator: int | None, denominator: int | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 4)


@dataclass(frozen=True)
class Indicator:
    """One row of DOMAIN.md's table: where its figure comes from. What meets it is configuration
    (`GatewaySettings.plan_targets`); `actual` returns a number, or a dict of numbers for a
    compound target."""

    id: str
    name: str
    task: str
    source: str
    actual: Callable[[dict[str, Any]], Any]
    unit: str  # count | share (0–1)
    detail: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def evaluate(self, sources: dict[str, Part], target: Any) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": self.id,
            "name": translate(self.name),
            "task": self.task,
            "unit": self.unit,
            "target": target,
            "source": self.source,
        }
        part = sources[self.source]
        if part.status != "ok" or not isinstance(part.data, dict):
            return row | {"actual": None, "met": None, "status": "unavailable"}
        try:
            actual = self.actual(part.data)
            extra = self.detail(part.data) if self.detail else {}
        except (KeyError, TypeError) as exc:  # a figure missing from a service's reply
            log.warning("indicator_figure_missing", indicator=self.id, error=repr(exc))
            return row | {"actual": None, "met": None, "status": "unavailable"}
        return row | {"actual": actual, "met": _met(actual, target), "status": "ok", **extra}


def _met(actual: Any, target: Any) -> bool | None:
    if isinstance(target, dict):
        checks = [_met(actual.get(key), value) for key, value in target.items()]
        return None if any(c is None for c in checks) else all(checks)
    if actual is None or target is None:  # no target: the plan gives no number
        return None
    return actual >= target


def _city(figures: dict[str, Any]) -> dict[str, Any]:
    return figures["city"]


INDICATORS: tuple[Indicator, ...] = (
    Indicator(
        "new_inclusive_points",
        N_("New inclusive childcare points in the year"),
        "T1",
        "coverage",
        lambda c: c["new_inclusive_points"],
        "count",
    ),
    Indicator(
        "inclusive_town_coverage",
        N_("Share of 街镇 with ≥ 1 inclusive point"),
        "T1",
        "coverage",
        lambda c: c["inclusive_town_coverage"],
        "share",
        lambda c: {"numerator": c["towns_with_point"], "denominator": c["towns"]},
    ),
    Indicator(
        "central_street_coverage",
        N_("Share of central-city 街道 with ≥ 1 inclusive point"),
        "T1",
        "coverage",
        lambda c: c["central_street_coverage"],
        "share",
        lambda c: {"numerator": c["central_streets_with_point"], "denominator": c["central_streets"]},
    ),
    Indicator(
        "kindergarten_nursery_share",
        N_("Kindergartens with a nursery class / all kindergartens"),
        "§2(1)",
        "coverage",
        lambda c: c["kindergarten_nursery_share"],
        "share",
        lambda c: {"numerator": c["kindergartens_with_nursery_class"], "denominator": c["kindergartens"]},
    ),
    Indicator(
        "guidance_station_coverage",
        N_("街镇 with a guidance station"),
        "T2",
        "guidance",
        lambda g: _rate(_city(g)["towns_with_station"], _city(g)["towns"]),
        "share",
        lambda g: {"numerator": _city(g)["towns_with_station"], "denominator": _city(g)["towns"]},
    ),
    Indicator(
        "child_friendly_sites",
        N_("New child-friendly community sites in the year"),
        "T3",
        "guidance",
        lambda g: _city(g)["new_child_friendly_sites"],
        "count",
    ),
    Indicator(
        "development_bases",
        N_("Districts with ≥ 1 early-development base; bases citywide"),
        "T18",
        "guidance",
        lambda g: {"districts": g["districts_with_development_base"], "bases": _city(g)["development_bases"]},
        "count",
    ),
    Indicator(
        "certified_rate",
        N_("Practitioners in certified roles with a valid certificate"),
        "§2(3)",
        "certification",
        lambda w: w["rate"],
        "share",
        lambda w: {"numerator": w["certified"], "denominator": w["employments"]},
    ),
    Indicator(
        "training_compliance",
        N_("Practitioners meeting 72 h skills + 40 h ethics"),
        "§2(3)",
        "training",
        lambda t: _rate(t["meeting"], t["practitioners"]),
        "share",
        lambda t: {"numerator": t["meeting"], "denominator": t["practitioners"]},
    ),
    Indicator(
        "annual_onsite_inspection",
        N_("Facilities inspected on site at least once in the year"),
        "§2(2)",
        "monitoring",
        lambda m: _rate(_city(m)["facilities_inspected_onsite"], _city(m)["facilities_approved"]),
        "share",
        lambda m: {
            "numerator": _city(m)["facilities_inspected_onsite"],
            "denominator": _city(m)["facilities_approved"],
        },
    ),
    Indicator(
        "newborn_home_visits",
        N_("Newborn families with ≥ 1 home visit"),
        "§2(4)",
        "guidance",
        lambda g: _rate(_city(g)["newborn_families_visited"], _city(g)["newborn_families"]),
        "share",
        lambda g: {
            "numerator": _city(g)["newborn_families_visited"],
            "denominator": _city(g)["newborn_families"],
        },
    ),
    Indicator(
        "offline_guidance",
        N_("Families in need with ≥ 6 offline sessions"),
        "§2(4)",
        "guidance",
        lambda g: _rate(_city(g)["families_in_need_offline_target_met"], _city(g)["families_in_need"]),
        "share",
        lambda g: {
            "numerator": _city(g)["families_in_need_offline_target_met"],
            "denominator": _city(g)["families_in_need"],
        },
    ),
    Indicator(
        "guidance_events",
        N_("City-level / district-level 育儿加油站 events"),
        "T23",
        "guidance",
        lambda g: {"city": _city(g)["city_events"], "district": _city(g)["district_events"]},
        "count",
    ),
    Indicator(
        "observation_room_pilots",
        N_("Districts with a play-observation room pilot"),
        "T20",
        "guidance",
        lambda g: g["districts_with_observation_room"],
        "count",
    ),
    Indicator(
        "handbook_coverage",
        N_("Families given the 母子健康手册 / births in the year"),
        "T19",
        "guidance",
        lambda g: _rate(_city(g)["families_registered_with_handbook"], _city(g)["births"]),
        "share",
        lambda g: {
            "numerator": _city(g)["families_registered_with_handbook"],
            "denominator": _city(g)["births"],
        },
    ),
)
