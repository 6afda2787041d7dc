"""Seeding benchmark: `cradle seed-demo` rows/s next to SQLAlchemy Core executemany, in the same run.

    .venv/bin/python bench/seed.py [--scale city|small]

In a temporary data directory (SQLite, as `cradle up` runs embedded): migrates every database with
`cradle migrate`, counts every table's rows, runs `cradle seed-demo --scale …` as a subprocess
(its own per-step times are printed as it prints them), counts again, and divides the rows the
seeding wrote, in every service's database, by its wall time. The baseline, measured right after
on the same disk: SQLAlchemy Core `insert()` executemany of as many rows into one table of ten
columns (text, integers, a date, a flag: about a family's width), in batches of 10,000, one
transaction each, with the pragmas the services use (WAL, synchronous NORMAL). Prints both, the
ratio and the machine's load average. The temporary directory is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date
from pathlib import Path

from sqlalchemy import Boolean, Column, Date, Integer, MetaData, String, Table, create_engine, event, insert

ROOT = Path(__file__).resolve().parents[1]
CRADLE = str(Path(sys.executable).parent / "cradle")
BATCH = 10_000


def table_rows(data: Path) -> dict[tuple[str, str], int]:
    """(database, table) → rows, for every SQLite database in the data directory."""
    counts: dict[tuple[str, str], int] = {}
    for path in sorted(data.glob("*.db")):
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            names = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            for name in names:
                counts[(path.stem, name)] = connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
        finally:
            connection.close()
    return counts


def cradle(args: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run([CRADLE, *args], cwd=ROOT, env=env, check=True)
    return time.perf_counter() - started


def executemany_rate(path: Path, rows: int) -> float:
    """Core executemany of `rows` rows, batches of BATCH, the services' pragmas; rows/s."""
    engine = create_engine(f"sqlite:///{path}")

    @event.listens_for(engine, "connect")
    def _pragmas(connection, _record):  # type: ignore[no-untyped-def]
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")

    metadata = MetaData()
    table = Table(
        "row",
        metadata,
        Column("id", String(36), primary_key=True),
        Column("district_code", String(6), nullable=False),
        Column("town_code", String(9), nullable=False),
        Column("registered_on", Date, nullable=False),
        Column("in_need", Boolean, nullable=False),
        Column("newborn", Boolean, nullable=False),
        Column("has_handbook", Boolean, nullable=False),
        Column("children", Integer, nullable=False),
        Column("source", String(16), nullable=False),
        Column("note", String(200), nullable=False),
    )
    metadata.create_all(engine)
    started = time.perf_counter()
    for start in range(0, rows, BATCH):
        batch = [
            {
                "id": str(uuid.uuid4()),
                "district_code": "310104",
                "town_code": "310104003",
                "registered_on": date(2026, 1, 1 + n % 28),
                "in_need": n % 7 == 0,
                "newborn": n % 11 == 0,
                "has_handbook": n % 2 == 0,
                "children": 1 + n % 3,
                "source": "station",
                "note": "",
            }
            for n in range(start, min(rows, start + BATCH))
        ]
        with engine.begin() as connection:
            connection.execute(insert(table), batch)
    elapsed = time.perf_counter() - started
    engine.dispose()
    return rows / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["city", "small"], default="city")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cradle-bench-seed-"))
    try:
        env = {**os.environ, "CRADLE_DATA_DIR": str(work / "data"), "CRADLE_EVENT_NAMESPACE": "benchseed"}
        for name in list(env):
            if name.endswith("_DATABASE_URL"):
                del env[name]  # the embedded shape: SQLite under the data directory
        cradle(["migrate"], env)
        before = table_rows(work / "data")
        seconds = cradle(["seed-demo", "--scale", args.scale], env)
        after = table_rows(work / "data")
        written = sum(after.values()) - sum(before.values())
        baseline = executemany_rate(work / "baseline.db", written)
        load = os.getloadavg()
        print()
        print(
            f"cradle seed-demo --scale {args.scale}: {written:,} rows in {seconds:.1f} s "
            f"= {written / seconds:,.0f} rows/s"
        )
        for (database, table), rows in sorted(after.items(), key=lambda item: -item[1])[:8]:
            print(f"  {database}.{table}: {rows - before.get((database, table), 0):,}")
        print(f"Core executemany, the same number of rows, batches of {BATCH:,}: {baseline:,.0f} rows/s")
        print(f"ratio seed-demo / executemany: {written / seconds / baseline:.2f}x")
        print(f"load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} on {os.cpu_count()} cores")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
