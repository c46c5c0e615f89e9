"""The dead-code check: vulture (pinned in the test extras) over perfmodel/, tests/ and tools/
with pyproject.toml's [tool.vulture] settings and tools/vulture_whitelist.py. A function, class,
property or variable that nothing uses fails this test: remove it, or, when Python or a library
uses it by name, add it to the whitelist with the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _vulture(*extra: str) -> subprocess.CompletedProcess:
    try:
        import vulture  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise  # CI installs .[test]: a missing vulture is a broken install, not a skip
        pytest.skip("vulture is not installed (pip install -e '.[test]' installs it)")
    return subprocess.run([sys.executable, "-m", "vulture", *extra], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_no_dead_code():
    result = _vulture()
    assert result.returncode == 0, "vulture finds unused code:\n" + result.stdout + result.stderr


def test_the_check_finds_a_planted_dead_function(tmp_path):
    """The same settings on the package plus one module holding an uncalled function report
    that function (so an empty report above means something)."""
    planted = tmp_path / "planted.py"
    planted.write_text("def never_called_anywhere(x):\n    return x + 1\n")
    result = _vulture("perfmodel", "tests", "tools", str(planted))
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"{planted}:1: unused function 'never_called_anywhere' (60% confidence)"]
