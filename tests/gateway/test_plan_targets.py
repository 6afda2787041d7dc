"""The plan's targets are configuration: the defaults are the plan's, a deployment may set its own
(`GATEWAY_PLAN_TARGETS`), and an indicator is met against the target configured."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from gateway.config import PLAN_TARGETS
from gateway.views import INDICATORS, Part
from tests.conftest import gateway_settings

COVERAGE = {"new_inclusive_points": 12}


def new_points_row(targets: dict[str, Any]) -> dict[str, Any]:
    [row] = [i for i in INDICATORS if i.id == "new_inclusive_points"]
    return row.evaluate({"coverage": Part(status="ok", data=COVERAGE)}, targets[row.id])


def test_every_indicator_has_the_plans_target_by_default(keys: dict[str, Any]) -> None:
    settings = gateway_settings(database_url="sqlite+aiosqlite://", keys=keys)
    assert set(settings.plan_targets) == {i.id for i in INDICATORS}
    assert settings.plan_targets["new_inclusive_points"] == 50
    assert settings.plan_targets["development_bases"] == {"districts": 16, "bases": 18}
    row = new_points_row(settings.plan_targets)
    assert (row["actual"], row["target"], row["met"]) == (12, 50, False)


def test_a_configured_target_replaces_the_plans_and_keeps_the_others(keys: dict[str, Any]) -> None:
    settings = gateway_settings(
        database_url="sqlite+aiosqlite://", keys=keys, plan_targets={"new_inclusive_points": 10}
    )
    row = new_points_row(settings.plan_targets)
    assert (row["target"], row["met"]) == (10, True)
    assert settings.plan_targets["inclusive_town_coverage"] == PLAN_TARGETS["inclusive_town_coverage"]


def test_a_target_for_no_indicator_is_refused(keys: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="no such indicator: new_points"):
        gateway_settings(database_url="sqlite+aiosqlite://", keys=keys, plan_targets={"new_points": 10})
