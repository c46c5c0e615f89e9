"""plan and sweep tests that bite: the margin pick on hand-made rows, and the per-GPU column of
a TP2 serving row (docs/validation.md, "Tests that bite"; tools/plant_bugs.py)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from perfmodel.cli import app
from perfmodel.plan import search
from perfmodel.plan.evaluate import evaluate
from perfmodel.plan.grid import PREDICT, SERVE, Point
from perfmodel.plan.sweep import read_rows

MODEL, GPU = "meta-llama/Llama-3.1-8B", "h100-sxm-measured"
runner = CliRunner()

# concurrency: (TTFT s, TPOT s, output tok/s): against a 20 ms TPOT target, 32 has 5% headroom
# (20 / 19 − 1), 16 has 33% (20 / 15 − 1), 8 has 67%.
HAND_ROWS = {8: (0.20, 0.012, 1200.0), 16: (0.25, 0.015, 2000.0), 32: (0.30, 0.019, 3000.0)}


@pytest.fixture
def hand_plan(monkeypatch):
    """plan over one deployment whose three points are HAND_ROWS (nothing simulated)."""

    def deployments(model, gpus, precisions, max_gpus, isl, osl, method, engine, tps=None,
                    router=None):
        return [(Point(model, GPU, method, "bf16", isl=isl, osl=osl), 1000)], [], []

    def run_points(points, workers=None, on_progress=None):
        rows = []
        for p in points:
            ttft, tpot, put = HAND_ROWS[p.load]
            rows.append({**p.columns(), "error": None, "basis": "hand", "ttft_s": ttft,
                         "tpot_s": tpot, "output_tok_s": put, "tok_s_per_gpu": put / p.gpus,
                         "tok_s_per_user": 1 / tpot})
        return rows

    monkeypatch.setattr(search, "deployments", deployments)
    monkeypatch.setattr(search, "run_points", run_points)


def test_margin_pick_keeps_the_margin_on_hand_rows(hand_plan):
    """Hand truth: under TPOT ≤ 20 ms the best is concurrency 32 (19 ms, the most tok/s/GPU);
    with a 25% margin a point must stay under 20 / 1.25 = 16 ms, which 32 misses and 16 meets
    (15 ms): the margin's pick is 16. With margin 0 there is none."""
    slo = search.Slo(tpot_s=0.020)
    kw = dict(gpus=[GPU], precisions=["bf16"], concurrencies=[8, 16, 32], isl=1024, osl=128,
              slo=slo, method=PREDICT)
    result = search.plan(MODEL, margin=0.25, **kw)
    assert result.best["batch"] == 32
    assert result.best_with_margin["batch"] == 16
    assert search.plan(MODEL, margin=0.0, **kw).best_with_margin is None
    # a margin that nothing keeps: 20 / 2 = 10 ms is under every row's TPOT
    assert search.plan(MODEL, margin=1.0, **kw).best_with_margin is None


def test_plan_cli_reports_the_margin_pick(hand_plan):
    """The same hand rows through `perfmodel plan`: the JSON's best_with_margin and the text's
    margin line name concurrency (batch) 16, not the best's 32."""
    args = ["plan", MODEL, "--gpus", GPU, "--precisions", "bf16", "--concurrency", "8,16,32",
            "--method", "predict", "--tpot-slo", "20ms", "--margin", "0.25"]
    got = runner.invoke(app, [*args, "--json"], env={"COLUMNS": "160"})
    assert got.exit_code == 0, got.output
    doc = json.loads(got.output)
    assert doc["best"]["batch"] == 32 and doc["best_with_margin"]["batch"] == 16
    text = runner.invoke(app, args, env={"COLUMNS": "200"}).output
    assert "with a 25% margin" in text and "at batch 16" in text, text


def test_serve_row_per_gpu_is_the_deployment_over_its_gpus():
    """Tokens/s per GPU is the deployment's output tokens/s over the GPUs it takes (as
    aiconfigurator's tokens/s/gpu): a TP2 serving row's per-GPU column is half its output
    column, serve's own JSON says the same, and a TP1 row's columns are equal."""
    from perfmodel.serve import run_serve

    kw = dict(method=SERVE, engine="vllm", load=4, isl=128, osl=16, requests=16)
    tp2 = evaluate(Point(MODEL, GPU, tp=2, **kw))
    tp1 = evaluate(Point(MODEL, GPU, **kw))
    assert tp2["error"] is None and tp1["error"] is None and tp2["gpus"] == 2
    assert tp2["tok_s_per_gpu"] == pytest.approx(tp2["output_tok_s"] / 2, rel=1e-12)
    assert tp1["tok_s_per_gpu"] == pytest.approx(tp1["output_tok_s"], rel=1e-12)
    put = run_serve(MODEL, gpu=GPU, tp=2, concurrency=4, num_requests=16, isl=128,
                    osl=16).metrics["throughput"]
    assert put["output_tok_s_per_gpu"] == pytest.approx(put["output_tok_s"] / 2, rel=1e-12)


def test_sweep_cli_per_gpu_column_of_a_tp2_serving_row(tmp_path):
    """`perfmodel sweep --tp 2 --concurrency`: the file's per-GPU column is half the output."""
    out = tmp_path / "rows.csv"
    got = runner.invoke(app, ["sweep", MODEL, "--gpu", GPU, "--tp", "2", "--concurrency", "4",
                              "--isl", "128", "--osl", "16", "--num-requests", "16", "--out",
                              str(out)])
    assert got.exit_code == 0, got.output
    (row,) = read_rows(out)
    assert row["error"] is None and row["tp"] == 2 and row["gpus"] == 2
    assert row["tok_s_per_gpu"] == pytest.approx(row["output_tok_s"] / 2, rel=1e-9)
