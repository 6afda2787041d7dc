"""The longest test files first (`make test` runs files on five xdist workers, each file on one).

xdist hands out files in order of their number of tests, so the few long files (the story, the fault
suites, the generated client, the replicas) started last and ran on alone while the other workers
sat idle (about 9 % of the workers' time in a run beside another suite). Files are handed out
longest first instead, by the seconds each took in a measured run (tests/file_durations.json), so
the short ones fill in around them at the end. A file the table does not know counts as the median
file. Re-measure after adding long tests:

    .venv/bin/python -m pytest -n 5 --dist loadfile --store-file-durations
"""

from __future__ import annotations

import json
import statistics
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Any

import pytest

DURATIONS = Path(__file__).with_name("file_durations.json")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--store-file-durations",
        action="store_true",
        help=f"record each test file's seconds (setup, call and teardown) in {DURATIONS.name}",
    )


def file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def longest_first(files: list[str], seconds: dict[str, float]) -> list[str]:
    """The files in descending measured seconds; a file not measured counts as the median one, and
    ties keep their order."""
    default = statistics.median(seconds.values()) if seconds else 0.0
    return sorted(files, key=lambda path: -seconds.get(path, default))  # stable


def measured_seconds() -> dict[str, float]:
    try:
        return {path: float(value) for path, value in json.loads(DURATIONS.read_text()).items()}
    except (OSError, ValueError):
        return {}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    class LongestFilesFirst(LoadFileScheduling):
        ordered = False

        def _assign_work_unit(self, node: Any) -> None:
            # The first assignment comes once the queue of files is whole. Only the queue is put in
            # order: the workers' collections are not, since work is sent as indexes into them.
            if not self.ordered:
                self.ordered = True
                files = longest_first(list(self.workqueue), measured_seconds())
                self.workqueue = OrderedDict((path, self.workqueue[path]) for path in files)
            super()._assign_work_unit(node)

    return LongestFilesFirst(config, log)


class FileDurations:
    """Sums each file's phases from the reports the controller receives (or runs, without xdist)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self.seconds[file_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if hasattr(session.config, "workerinput"):
            return
        # Merged into the table: a run of some files re-measures those and keeps the others.
        seconds = measured_seconds() | {path: round(s, 1) for path, s in self.seconds.items()}
        ordered = dict(sorted(seconds.items(), key=lambda item: -item[1]))
        DURATIONS.write_text(json.dumps(ordered, indent=1, ensure_ascii=False) + "\n")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("store_file_durations") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(FileDurations(), "cradle-file-durations")
