"""The order tests/scheduling.py hands files to the workers in."""

from __future__ import annotations

from tests.scheduling import longest_first


def test_files_go_longest_first() -> None:
    seconds = {"a.py": 1.0, "b.py": 30.0, "c.py": 5.0, "e.py": 3.0}
    # b (30 s), c (5 s), d (not measured: the median, 4 s), a (1 s)
    assert longest_first(["a.py", "b.py", "c.py", "d.py"], seconds) == ["b.py", "c.py", "d.py", "a.py"]


def test_without_measurements_the_queued_order_stands() -> None:
    assert longest_first(["b.py", "a.py", "c.py"], {}) == ["b.py", "a.py", "c.py"]
