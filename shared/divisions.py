"""Shanghai's districts and 街镇: public reference data shipped with the code (shared/data). Each
service that needs divisions loads its own copy into its own database from here."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources

# 街道 / 镇 / 乡 are the legal 街镇; `other` units (development zones, farms) are valid addresses but
# not in the coverage denominators (DOMAIN.md).
LEGAL_TOWN_TYPES = frozenset({"street", "town", "township"})


@dataclass(frozen=True, slots=True)
class DivisionRow:
    district_code: str
    district_name: str
    district_pinyin: str
    is_central_city: bool
    district_population_2020: int | None
    district_population_2020_age0: int | None
    district_population_2020_age1_4: int | None
    town_code: str
    town_name: str
    town_type: str
    town_code_source: str
    mca2025_code: str | None
    name_variant: str | None


def _int_or_none(value: str) -> int | None:
    return int(value) if value.strip() else None


def read_divisions() -> Iterator[DivisionRow]:
    """One row per 街镇-level unit, in file order."""
    source = resources.files("shared") / "data" / "shanghai_divisions.csv"
    with source.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            yield DivisionRow(
                district_code=row["district_code"],
                district_name=row["district_name"],
                district_pinyin=row["district_pinyin_or_english"],
                is_central_city=row["is_central_city"] == "1",
                district_population_2020=_int_or_none(row["district_pop_2020_census"]),
                district_population_2020_age0=_int_or_none(row["district_pop_2020_age0"]),
                district_population_2020_age1_4=_int_or_none(row["district_pop_2020_age1_4"]),
                town_code=row["town_code"],
                town_name=row["town_name"],
                town_type=row["town_type"],
                town_code_source=row["town_code_source"],
                mca2025_code=row["mca2025_code"] or None,
                name_variant=row["name_variant"] or None,
            )
