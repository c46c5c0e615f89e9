"""An empty path (`--out ""`, `--plot=`) names no file: typer would read it as Path("."), the
current folder, and `calibrate-gpu --out ""` wrote its profile there. Every path option of every
command refuses it with one line and exit 2, before any work, and nothing is written."""

from __future__ import annotations

import click
import pytest
import typer
from typer.testing import CliRunner

from perfmodel.cli import app
from perfmodel.cli.options import refuse_empty_paths
from perfmodel.outpath import OutputPathError, check_out_path

runner = CliRunner()
M = "meta-llama/Llama-3.1-8B"


@pytest.mark.parametrize("args", [
    ("calibrate-gpu", "--device", "cpu", "--quick", "--out", ""),
    ("calibrate-gpu", "--device", "cpu", "--quick", "--out="),
    ("predict", M, "--plot", ""),
    ("serve", M, "--concurrency", "2", "--num-requests", "4", "--trace", ""),
    ("sweep", M, "--gpu", "h100-sxm-measured", "-b", "1", "--out", ""),
    ("plan", M, "--gpus", "h100-sxm-measured", "--tpot-slo", "30ms", "--plot", ""),
    ("validate-serving", "--csv", ""),
    ("validate", M, "--out", ""),
    ("calibrate-engine", "--profile", ""),
])
def test_an_empty_output_path_is_one_line_and_writes_nothing(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2, result.output
    flag = next(a for a in args if a.startswith("--") and a.rstrip("=") in
                ("--out", "--plot", "--trace", "--csv", "--profile") and
                (a.endswith("=") or args[args.index(a) + 1] == ""))
    assert result.output.strip().splitlines() == [
        f'error: {flag.rstrip("=")} "" names no file: an empty path means the current '
        f"folder; pass a file path; see 'perfmodel {args[0]} --help'"]
    assert list(tmp_path.iterdir()) == []


def test_every_path_option_of_every_command_is_covered():
    """Not a list kept by hand: each command's click.Path options, as the check finds them."""
    group = typer.main.get_command(app)
    checked = 0
    for name, command in group.commands.items():
        for param in command.params:
            if isinstance(param.type, click.Path):
                flag = next(o for o in param.opts if o.startswith("--"))
                with pytest.raises(click.UsageError, match=f'{flag} ""'):
                    refuse_empty_paths(group.commands, [name, flag, ""])
                refuse_empty_paths(group.commands, [name, flag, "x.csv"])  # a name is fine
                checked += 1
    assert checked >= 9


def test_the_output_checker_refuses_an_empty_string(tmp_path, monkeypatch):
    """For callers of the Python API, who pass the string itself."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputPathError, match='--out "" names no file'):
        check_out_path("")
    check_out_path(None)  # no --out: the current folder, as documented
