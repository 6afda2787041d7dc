"""The 双随机 draw as a pure function of its stored inputs and seed, so anyone can re-run it.

Algorithm `es-tiered-v1`:
1. The random stream is Python's Mersenne Twister, `random.Random(n)` with n = the big-endian
   integer of SHA-256(seed as UTF-8). Everything below reads it in a fixed order.
2. Facilities (the candidates, sorted by id) are drawn by Efraimidis–Spirakis weighted sampling
   without replacement: for each candidate in order, u = 1 - random() ∈ (0, 1] and its key is
   ln(u) / weight (the log of u^(1/weight)). Candidates are ranked by (tier, -key, id) and the first
   `sample_size` taken. Tier 0 holds the facilities without an on-site inspection this calendar year,
   tier 1 the others, so every facility is reached within the year before any is drawn twice.
   weight = 1 + risk score / divisor (both stored), so riskier facilities come up sooner.
3. Inspectors (sorted by id) are paired with the drawn facilities in rank order: the inspectors who
   inspected that facility in the district's previous draw are left out; the rest are shuffled
   (`random.shuffle`), then stably sorted by how many facilities they already have in this plan, and
   the first two taken (sorted by id). If fewer than two remain after the exclusion, all inspectors
   are eligible for that facility (listed in `relaxed`).
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from typing import Any

ALGORITHM = "es-tiered-v1"
PER_FACILITY = 2


@dataclass(frozen=True, slots=True)
class Draw:
    pairs: list[tuple[str, list[str]]]  # (facility_id, inspector_ids) in rank order
    relaxed: list[str] = field(default_factory=list)  # facilities whose exclusion had to be lifted


def rng_for(seed: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha256(seed.encode()).digest(), "big"))


def draw(inputs: dict[str, Any], seed: str) -> Draw:
    rng = rng_for(seed)
    ranked = []
    for candidate in inputs["candidates"]:
        u = 1.0 - rng.random()
        key = math.log(u) / float(candidate["weight"])
        ranked.append((int(candidate["tier"]), -key, str(candidate["facility_id"])))
    ranked.sort()
    chosen = [facility_id for _, _, facility_id in ranked[: int(inputs["sample_size"])]]

    inspectors: list[str] = list(inputs["inspectors"])
    exclusions: dict[str, list[str]] = inputs.get("exclusions", {})
    load = dict.fromkeys(inspectors, 0)
    pairs, relaxed = [], []
    for facility_id in chosen:
        excluded = set(exclusions.get(facility_id, ()))
        eligible = [i for i in inspectors if i not in excluded]
        if len(eligible) < PER_FACILITY:
            eligible = list(inspectors)
            relaxed.append(facility_id)
        rng.shuffle(eligible)
        eligible.sort(key=lambda i: load[i])  # stable: ties keep the shuffled order
        pair = sorted(eligible[:PER_FACILITY])
        for inspector in pair:
            load[inspector] += 1
        pairs.append((facility_id, pair))
    return Draw(pairs=pairs, relaxed=relaxed)
