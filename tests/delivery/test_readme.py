"""The README's receiver snippet is the example file the tests verify real deliveries with."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "verify_webhook.py"


def verify_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verify_webhook", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_shows_the_tested_example_word_for_word() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## How a bureau subscribes, in five commands", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert snippet == EXAMPLE.read_text()
