"""Usage errors that click finds before perfmodel runs (a value of the wrong type, an unknown
option or command, a missing argument, a 5000-digit integer) are one `error:` line naming the
fix, exit 2, like every perfmodel error; help still prints as help."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from perfmodel.cli import app

runner = CliRunner()


@pytest.mark.parametrize("args, words", [
    (["predict", "meta-llama/Llama-3.1-8B", "--batch", "abc"], ["'--batch'", "'abc'"]),
    (["predict", "meta-llama/Llama-3.1-8B", "--batch", "9" * 5000], ["'--batch'"]),
    (["plan", "meta-llama/Llama-3.1-8B", "--max-gpus", "abc"], ["'--max-gpus'"]),
    (["predict", "--bogus", "x"], ["No such option", "--bogus"]),
    (["predict"], ["Missing argument", "MODEL"]),
    (["bogus"], ["No such command"]),
    (["serve", "meta-llama/Llama-3.1-8B", "--concurrency", "1.5"], ["'--concurrency'"]),
])
def test_usage_error_is_one_line(args, words):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "--help'" in lines[0]
    for word in words:
        assert word in lines[0]


def test_help_is_still_help():
    result = runner.invoke(app, ["predict", "--help"])
    assert result.exit_code == 0 and "Usage:" in result.output
    bare = runner.invoke(app, [])
    assert "Commands" in bare.output and "error:" not in bare.output
