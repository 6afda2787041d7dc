"""Subsidies (综合奖补, DOMAIN.md): FINANCE's rate per inclusive place per month for each district and
year; each district's monthly list computed from the registry's own records as they stood at the
month's close; EDU's review, FINANCE's publication and payments. A published list is never rewritten:
what a later record changes about a published month is an adjustment line on the next list."""

from services.registry.service.subsidies.common import (
    MonthNotClosed,
    NoSubsidyRate,
    PaymentRecorded,
    SubsidyListFinal,
    SubsidyListNotFound,
    SubsidyListOutOfOrder,
    closes_at,
    last_day,
    month_end,
    month_start,
    next_month,
)
from services.registry.service.subsidies.entitlements import REFUSALS, Entitlement, entitlements
from services.registry.service.subsidies.lists import (
    compute_list,
    may_compute,
    may_review,
    publish_list,
    record_payment,
    review_list,
)
from services.registry.service.subsidies.rates import current_rates, rate_at, rate_history, set_rate
from services.registry.service.subsidies.reading import (
    get_list,
    lines_page,
    list_id_of,
    lists_page,
    may_see_list,
)

__all__ = [
    "REFUSALS",
    "Entitlement",
    "MonthNotClosed",
    "NoSubsidyRate",
    "PaymentRecorded",
    "SubsidyListFinal",
    "SubsidyListNotFound",
    "SubsidyListOutOfOrder",
    "closes_at",
    "compute_list",
    "current_rates",
    "entitlements",
    "get_list",
    "last_day",
    "lines_page",
    "list_id_of",
    "lists_page",
    "may_compute",
    "may_review",
    "may_see_list",
    "month_end",
    "month_start",
    "next_month",
    "publish_list",
    "rate_at",
    "rate_history",
    "record_payment",
    "review_list",
    "set_rate",
]
