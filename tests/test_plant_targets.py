"""tools/plant_bugs.py plants each bug by replacing one exact line; a refactor that moves the
line silently retires the plant. Every plant's line must be in its file exactly once (the
plants themselves run with `PYTHONPATH=. python3 tools/plant_bugs.py`, docs/validation.md)."""

from __future__ import annotations

import sys

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))
from plant_bugs import PLANTS  # noqa: E402  (tools/ is not a package)


@pytest.mark.parametrize("plant", PLANTS, ids=lambda p: p.key)
def test_every_plant_finds_its_line_once(plant):
    text = (ROOT / plant.path).read_text()
    assert text.count(plant.old) == 1, f"plant {plant.key}: update tools/plant_bugs.py"
    assert plant.new != plant.old
    assert all((ROOT / t).is_file() for t in plant.tests)
