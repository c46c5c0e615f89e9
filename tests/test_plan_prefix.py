"""plan --prefix-len: the shared prefix reaches every serve point and its reproducing command;
a cached prefix only removes prefill work, so no point gets slower; bad values are one line."""

from __future__ import annotations

import json
import shlex

import pytest
from typer.testing import CliRunner

from perfmodel.cli import app

runner = CliRunner()
BASE = ["plan", "meta-llama/Llama-3.1-8B", "--gpus", "h200-measured", "--precisions", "bf16",
        "--max-gpus", "1", "--isl", "256", "--osl", "32", "--concurrency", "4,16",
        "--tpot-slo", "50ms", "--waves", "1", "--workers", "1", "--json"]


def _plan(*extra: str) -> dict:
    result = runner.invoke(app, [*BASE, *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_plan_passes_the_prefix_to_serve_and_its_command():
    cached = _plan("--prefix-len", "768", "--num-prefixes", "2")
    command = cached["best"]["command"]
    assert "--prefix-len 768" in command and "--num-prefixes 2" in command
    served = runner.invoke(app, [*shlex.split(command)[1:], "--json"])
    assert served.exit_code == 0, served.output
    doc = json.loads(served.output)
    assert doc["prefix_cache"]["hit_rate"] > 0.5  # 768 of 1024 prompt tokens shared, 2 prefixes
    assert doc["throughput"]["output_tok_s_per_gpu"] == pytest.approx(
        cached["best"]["tok_s_per_gpu"], rel=1e-9)


def test_a_cached_prefix_never_lowers_the_best():
    """The same 1024-token prompts, 768 of them shared and cached, against the prompts computed
    whole: caching only removes prefill work, so plan's best tokens/s per GPU is no lower."""
    cached = _plan("--prefix-len", "768")["best"]
    args = list(BASE)
    args[args.index("--isl") + 1] = "1024"
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    whole = json.loads(result.output)["best"]
    assert cached["tok_s_per_gpu"] >= whole["tok_s_per_gpu"]


@pytest.mark.parametrize("extra, says", [
    (["--prefix-len", "0", "--num-prefixes", "2"], "--num-prefixes needs --prefix-len"),
    (["--prefix-len", "-5"], "--prefix-len"),
    (["--prefix-len", "64", "--method", "predict"], "needs the serve method"),
    (["--prefix-len", "64", "--disagg"], "--prefix-len is not modelled with --disagg"),
])
def test_bad_prefix_options_are_one_line(extra, says):
    result = runner.invoke(app, [*BASE[:-1], *extra])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and says in result.output
    assert len(result.output.strip().splitlines()) == 1
