"""plan --speculative and plan's workload options (--request-rate, --burstiness, --range-ratio):
properties of the choice, the reproducing command, one-line errors (perfmodel/plan/speculate.py,
perfmodel/cli/planning.py)."""

from __future__ import annotations

import json
import shlex

import pytest
from typer.testing import CliRunner

from perfmodel.cli import app
from perfmodel.plan.grid import SERVE, Point
from perfmodel.plan.search import Slo, plan
from perfmodel.serve.speculative import Speculation

LLAMA, GPU = "meta-llama/Llama-3.1-8B", "h100-sxm-measured"
runner = CliRunner()


def _plan(acceptance: float, concurrencies=(1, 16, 64), tpot: float | None = None,
          method: str = "ngram", k: int = 3):
    return plan(LLAMA, gpus=[GPU], precisions=["bf16"], concurrencies=list(concurrencies),
                isl=1024, osl=128, slo=Slo(tpot_s=tpot), max_gpus=1, workers=1,
                speculation=Speculation(method, k, acceptance))


def _serve(command: str) -> dict:
    """Run a plan's reproducing `perfmodel serve ...` command and return its --json."""
    words = shlex.split(command)
    assert words[:2] == ["perfmodel", "serve"]
    got = runner.invoke(app, [*words[1:], "--json"])
    assert got.exit_code == 0, got.output
    return json.loads(got.output)


def test_a_point_without_speculation_keeps_its_columns_and_command():
    plain = Point(LLAMA, GPU, SERVE, load=8)
    assert not {"speculative", "spec_tokens", "request_rate", "burstiness"} & set(plain.columns())
    assert "--speculative" not in plain.command() and plain.serve_options == {}
    spec = Point(LLAMA, GPU, SERVE, load=8, speculative="draft-model", spec_tokens=4,
                 acceptance=2.5, draft_model="meta-llama/Llama-3.2-1B", draft_overhead_s=0.002)
    assert spec.command().endswith("--speculative draft-model --spec-tokens 4 --acceptance 2.5 "
                                   "--draft-model meta-llama/Llama-3.2-1B --draft-overhead 2ms")
    assert spec.columns()["speculative"] == "draft-model" and spec.columns()["acceptance"] == 2.5


def test_acceptance_one_never_pays():
    """a = 1: each step emits one token, as without speculation, and runs k + 1 per sequence:
    at every concurrency the plain twin does more tokens/s, so plan never picks speculation."""
    result = _plan(1.0)
    spec = [r for r in result.rows if r.get("speculative")]
    assert len(spec) == 3 and all(r["spec_gain"] < 0 for r in spec)
    assert not result.best.get("speculative")
    best = dict(result.best_by_spec)
    assert best["plain"] is result.best and best["speculative"] is not None
    (cross,) = result.spec_crossovers
    assert cross["crossover"] == 1  # it never pays: it stops paying at the first load


def test_high_acceptance_at_small_concurrency_picks_speculation():
    """a = 3.5 of k + 1 = 4 at one request in flight: the step is memory bound, so verifying 4
    tokens costs about one plain step and emits 3.5 tokens; the gain is positive and can never
    exceed a − 1 (no step is cheaper than the plain one)."""
    result = _plan(3.5, concurrencies=(1,))
    assert result.best.get("speculative") == "ngram"
    assert 0.5 < result.best["spec_gain"] <= 3.5 - 1
    doc = _json(result)
    assert doc["verdict"]["winner"] == "speculative"
    assert doc["verdict"]["gain"] == pytest.approx(result.best["spec_gain"])


def test_the_gain_shrinks_as_the_batch_grows():
    """The verification step's extra tokens cost little while decode reads the weights once per
    step and more as the batch becomes compute bound: the gain falls with concurrency."""
    result = _plan(2.5, concurrencies=(1, 8, 64, 256))
    (cross,) = result.spec_crossovers
    gains = list(cross["gain"].values())
    assert list(cross["gain"]) == [1, 8, 64, 256]
    assert all(a > b for a, b in zip(gains, gains[1:])), gains


def test_the_best_command_reruns_the_speculative_point():
    result = _plan(3.0, concurrencies=(4,), tpot=0.02)
    best = result.best
    assert best["command"].count("--speculative ngram --spec-tokens 3 --acceptance 3") == 1
    doc = _serve(best["command"])
    assert doc["tpot_s"]["mean"] == pytest.approx(best["tpot_s"], rel=1e-9)
    assert doc["speculative"]["crossover_batch"] == best["speculative_crossover_batch"]


def _json(result) -> dict:
    from perfmodel.report.plan_view import plan_json

    return plan_json(result, Slo())["speculation"]


def test_plan_cli_speculative_json_and_text():
    args = ["plan", LLAMA, "--gpus", GPU, "--precisions", "bf16", "--max-gpus", "1",
            "--concurrency", "1,32", "--isl", "512", "--osl", "64", "--tpot-slo", "20ms",
            "--speculative", "eagle", "--spec-tokens", "2", "--acceptance", "2.2",
            "--workers", "1"]
    got = runner.invoke(app, [*args, "--json"])
    assert got.exit_code == 0, got.output
    doc = json.loads(got.output)
    block = doc["speculation"]
    assert set(block) == {"best", "verdict", "crossovers"}
    assert set(block["best"]) == {"plain", "speculative"}
    assert block["best"]["speculative"]["speculative"] == "eagle"
    (cross,) = block["crossovers"]
    assert [g["concurrency"] for g in cross["gain"]] == [1, 32]
    text = runner.invoke(app, args, env={"COLUMNS": "200"}).output
    assert "speculation wins" in text or "no speculation wins" in text
    assert "Speculation against none" in text


def test_plan_json_has_no_speculation_block_without_the_flag():
    got = runner.invoke(app, ["plan", LLAMA, "--gpus", GPU, "--precisions", "bf16",
                              "--max-gpus", "1", "--concurrency", "4", "--isl", "512",
                              "--osl", "64", "--workers", "1", "--json"])
    assert got.exit_code == 0, got.output
    doc = json.loads(got.output)
    assert "speculation" not in doc and "speculative" not in doc["best"]


def test_open_loop_plan_reruns_with_its_workload():
    """--request-rate, --burstiness and --range-ratio reach serve, and the command carries them:
    rerunning it gives the row's figures."""
    result = plan(LLAMA, gpus=[GPU], precisions=["bf16"], concurrencies=[1], isl=1024, osl=128,
                  slo=Slo(), max_gpus=1, workers=1, request_rates=[4.0],
                  shape={"burstiness": 0.5, "range_ratio": 0.5})
    (row,) = result.rows
    assert row["request_rate"] == 4.0 and "concurrency" not in row
    assert row["command"].endswith("--request-rate 4 --isl 1024 --osl 128 --burstiness 0.5 "
                                   "--range-ratio 0.5")
    doc = _serve(row["command"])
    assert doc["workload"]["burstiness"] == 0.5
    assert doc["workload"]["lengths"]["range_ratio"] == 0.5
    assert doc["ttft_s"]["mean"] == pytest.approx(row["ttft_s"], rel=1e-9)
    plain = plan(LLAMA, gpus=[GPU], precisions=["bf16"], concurrencies=[1], isl=1024, osl=128,
                 slo=Slo(), max_gpus=1, workers=1, request_rates=[4.0])
    assert plain.rows[0]["ttft_s"] != row["ttft_s"]  # the shape changed the run


@pytest.fixture
def never_evaluate(monkeypatch):
    from perfmodel.plan import search

    def refuse(*args, **kwargs):
        raise AssertionError("started evaluating")
    monkeypatch.setattr(search, "run_points", refuse)


@pytest.mark.usefixtures("never_evaluate")
@pytest.mark.parametrize("args, words", [
    (("--speculative", "bogus", "--spec-tokens", "3", "--acceptance", "2"),
     ["--speculative must be one of mtp, eagle, ngram, draft-model"]),
    (("--speculative", "eagle", "--spec-tokens", "3"), ["--speculative needs --acceptance"]),
    (("--speculative", "eagle", "--spec-tokens", "3", "--acceptance", "5"),
     ["--acceptance must be from 1 to k + 1 = 4"]),
    (("--acceptance", "2"), ["--acceptance needs --speculative"]),
    (("--draft-overhead", "2ms"), ["--draft-overhead needs --speculative"]),
    (("--speculative", "mtp", "--spec-tokens", "1", "--acceptance", "1.8"),
     ["has no MTP layers"]),
    (("--speculative", "ngram", "--spec-tokens", "3", "--acceptance", "2", "--method",
      "predict"), ["--speculative needs the serve method"]),
    (("--burstiness", "0.5"), ["--burstiness shapes open-loop arrivals", "--request-rate"]),
    (("--request-rate", "2", "--burstiness", "0"), ["--burstiness must be > 0"]),
    (("--request-rate", "1,0"), ["--request-rate takes request rates per second", "'0'"]),
    (("--request-rate", "nan"), ["--request-rate takes request rates per second", "'nan'"]),
    (("--request-rate", "2", "--concurrency", "4"), ["not both"]),
    (("--range-ratio", "1"), ["--range-ratio must be in [0, 1)"]),
    (("--request-rate", "2", "--method", "predict"), ["--request-rate needs the serve method"]),
])
def test_plan_refuses_bad_speculation_and_workloads_in_one_line(args, words):
    from test_bad_inputs import invoke, one_line_error

    one_line_error(invoke("plan", LLAMA, "--tpot-slo", "50ms", *args), *words)


def test_goodput_ranks_by_good_requests_per_gpu():
    """--goodput 0.9: a point meets the targets when 90% of its requests do (serve's per-request
    count), which a point whose means meet them can miss; the best has the most good requests/s
    per GPU among those, and its command reruns with the same --slo."""
    slo = Slo(ttft_s=0.3, tpot_s=0.02, attainment=0.9)
    result = plan(LLAMA, gpus=[GPU], precisions=["bf16"], concurrencies=[4, 16, 64], isl=1024,
                  osl=256, slo=slo, max_gpus=2, workers=1)
    assert result.keys == ("goodput_per_gpu", "tok_s_per_user")
    for row in result.rows:
        assert row["goodput_per_gpu"] == pytest.approx(
            row["goodput_fraction"] * row["throughput_requests_s"] / row["gpus"])
        assert row["meets_slo"] == (row["goodput_fraction"] >= 0.9)
    meeting = [r for r in result.rows if r["meets_slo"]]
    assert result.best is max(meeting, key=lambda r: r["goodput_per_gpu"])
    # the means alone would let through a point that fails the 90% share
    assert any(Slo(0.3, 0.02).met(r) and not r["meets_slo"] for r in result.rows)
    assert result.best["command"].endswith("--slo ttft=300ms,tpot=20ms")
    doc = _serve(result.best["command"])
    assert doc["goodput"]["fraction"] == pytest.approx(result.best["goodput_fraction"])


@pytest.mark.usefixtures("never_evaluate")
@pytest.mark.parametrize("args, words", [
    (("--goodput", "0"), ["--goodput is the share of requests", "not 0.0"]),
    (("--goodput", "1.5"), ["--goodput is the share of requests", "not 1.5"]),
    (("--goodput", "nan"), ["--goodput is the share of requests", "not nan"]),
    (("--goodput", "0.9", "--disagg"), ["--goodput needs the serve method and aggregated"]),
    (("--goodput", "0.9", "--method", "predict"), ["--goodput needs the serve method"]),
])
def test_plan_refuses_bad_goodput_in_one_line(args, words):
    from test_bad_inputs import invoke, one_line_error

    one_line_error(invoke("plan", LLAMA, "--tpot-slo", "50ms", *args), *words)


def test_goodput_needs_a_target():
    from test_bad_inputs import invoke, one_line_error

    one_line_error(invoke("plan", LLAMA, "--goodput", "0.9"), "give at least one of them")
