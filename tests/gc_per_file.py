"""The cyclic garbage collector, run once per test file and then told to leave the survivors alone.

A worker's heap grows to ~1.7 M objects over a run (imported modules, the session's fixtures,
schemathesis's and hypothesis's caches), and Python's automatic full collections walk all of it:
measured on tests/registry, 15 % of a worker's CPU went to them. So before each file's first test, the
previous file's garbage is collected once and whatever is still alive is frozen (`gc.freeze`):
later collections walk only what was made since. Reference counting still frees frozen objects;
only cycles among them would be kept, and they were alive when frozen. pytest's own end-of-run
collection then has little left to walk.
"""

from __future__ import annotations

import gc

import pytest

_last_file: list[object] = [None]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.path != _last_file[0]:  # before the file's module-scoped fixtures are made
        _last_file[0] = item.path
        gc.collect()
        gc.freeze()
