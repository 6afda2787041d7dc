"""Guidance figures benchmark: the plan's figures over a city-scale demo database, next to a trivial
query in the same run.

    .venv/bin/python bench/guidance_figures.py [--families 300000] [--runs 7] [--year 2026] [--keep]
                                               [--database PATH]

Builds a temp SQLite guidance database (migrated), seeds it with `seed_guidance` (the same code as
`cradle seed-demo`: families with encrypted phones, visits, sessions with bookings, resources with
their pushes, and the families' yearly tallies the figures read), then times, in one process and
one run:
- baseline: `SELECT count(*) FROM family` (the cheapest question about the same table);
- figures: `services.guidance.service.figures.figures(...)`, the function behind
  `GET /v1/guidance/figures` (what the endpoint adds on top is serialisation, well under 1 ms);
- figures for one district (the reply is smaller, the queries are the same).
Each is run `--runs` times after one warm-up; the median and the worst are printed with the ratio to
the baseline, plus the seed's own timings (phone encryption measured separately) and the city
figures, so a reader can see they are plausible. The temp dir is removed unless `--keep`.
`--database PATH` seeds that file if it does not exist and keeps it, and times an existing one as it
is (no seeding): runs before and after a change can then alternate over the same rows.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from cradle.migrations import upgrade
from cradle.seed.guidance import seed_guidance
from services.guidance.config import GuidanceSettings
from services.guidance.service.common import Guidance
from services.guidance.service.figures import figures
from shared.clock import shanghai_today
from shared.db import make_engine
from shared.identity import generate_keypair


async def timed(runs: int, call) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    await call()  # warm-up
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), max(samples)


async def main(args: argparse.Namespace, kept: Path | None) -> None:
    """`kept`: the `--database` file, resolved; seeded here unless it exists."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-guidance-"))
    database = kept or workdir / "guidance.db"
    try:
        url = f"sqlite+aiosqlite:///{database}"
        engine = make_engine(url)
        size = await asyncio.to_thread(lambda: database.stat().st_size if database.exists() else None)
        if kept is not None and size is not None:
            print(f"timing {database} as it is ({size / 1e6:.0f} MB), not seeded")
        else:
            await seed(args, url, engine, database)
        await time_figures(args, engine)
        await engine.dispose()
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def seed(args: argparse.Namespace, url: str, engine: AsyncEngine, database: Path) -> None:
    await asyncio.to_thread(upgrade, "guidance", url)
    key = base64.b64encode(os.urandom(32)).decode()
    settings = GuidanceSettings(
        database_url=url,
        internal_verify_key=generate_keypair()[1],
        pii_keys={"b1": key},
        pii_active_key_id="b1",
        pii_hmac_key=key,
    )
    started = time.perf_counter()
    report = await seed_guidance(
        engine, guidance=Guidance.from_settings(settings), families=args.families, seed=args.seed
    )
    seed_seconds = time.perf_counter() - started
    size_mb = (await asyncio.to_thread(database.stat)).st_size / 1e6
    print(f"seeded {report.families:,} families in {seed_seconds:.1f} s ({size_mb:.0f} MB):")
    for step, seconds in report.seconds.items():
        print(f"  {step:<28} {seconds:>7.2f} s")
    print(
        f"  rows: {report.guardians:,} guardians, {report.children:,} children, "
        f"{report.places:,} places, "
        f"{report.visits:,} visits, {report.sessions:,} sessions, {report.bookings:,} bookings, "
        f"{report.resources} resources, {report.pushes:,} pushes"
    )


async def time_figures(args: argparse.Namespace, engine: AsyncEngine) -> None:
    year = args.year or shanghai_today().year

    async def baseline() -> None:
        async with engine.connect() as connection:
            (await connection.execute(text("SELECT count(*) FROM family"))).scalar_one()

    result = None

    async def city() -> None:
        nonlocal result
        async with engine.connect() as connection:
            from sqlalchemy.ext.asyncio import AsyncSession

            async with AsyncSession(bind=connection) as session:
                result = await figures(session=session, year=year, target=6)

    async def one_district() -> None:
        async with engine.connect() as connection:
            from sqlalchemy.ext.asyncio import AsyncSession

            async with AsyncSession(bind=connection) as session:
                await figures(session=session, year=year, target=6, district_code="310115")

    load_before = os.getloadavg()
    base_median, base_worst = await timed(args.runs, baseline)
    city_median, city_worst = await timed(args.runs, city)
    district_median, district_worst = await timed(args.runs, one_district)
    load_after = os.getloadavg()
    print(f"\nload average (1 min) {load_before[0]:.2f} before the timings, {load_after[0]:.2f} after")
    print(f"{'query':<34}{'median ms':>10}{'worst ms':>10}{'× baseline':>12}")
    print(f"{'baseline SELECT count(*) family':<34}{base_median:>10.1f}{base_worst:>10.1f}{1:>12.1f}")
    print(
        f"{'figures, city + 16 districts':<34}{city_median:>10.1f}{city_worst:>10.1f}"
        f"{city_median / base_median:>12.1f}"
    )
    print(
        f"{'figures, one district':<34}{district_median:>10.1f}{district_worst:>10.1f}"
        f"{district_median / base_median:>12.1f}"
    )
    assert result is not None
    print(f"\nfigures {year} (city):")
    for indicator in result.indicators:
        share = f"{indicator.numerator / indicator.denominator:.1%}" if indicator.denominator else "—"
        whole = indicator.denominator or "—"
        print(f"  {indicator.id:<30} {indicator.numerator:>8,} / {whole:<8} {share:>7}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--year", type=int, default=None)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--database", default=None, help="a SQLite file: seeded if absent, then kept")
    arguments = parser.parse_args()
    asyncio.run(main(arguments, Path(arguments.database).resolve() if arguments.database else None))
