"""`perfmodel plan` through the real CLI: the JSON document, SLO filtering, the reproducing
command, what is skipped, errors."""

from __future__ import annotations

import json
import shlex

import pytest
from typer.testing import CliRunner

from perfmodel.cli import app
from perfmodel.plan.evaluate import parallel_predict_supported
from perfmodel.plan.pareto import dominates

runner = CliRunner()
MODEL = "meta-llama/Llama-3.1-8B"
ARGS = ["plan", MODEL, "--gpus", "h100-sxm-measured,h200-measured", "--precisions", "bf16,fp8",
        "--concurrency", "1-256x2", "--isl", "2048", "--osl", "256", "--method", "predict"]


def invoke(*args):
    return runner.invoke(app, list(args), env={"COLUMNS": "160", "PERFMODEL_DEBUG": "0"})


def plan_json(*extra):
    result = invoke(*ARGS, *extra, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_json_document_and_slo():
    doc = plan_json("--ttft-slo", "2s", "--tpot-slo", "12ms")
    assert set(doc) >= {"pareto", "best", "searched", "method", "slo", "skipped"}
    assert doc["method"] == "predict" and doc["slo"] == {"ttft_s": 2.0, "tpot_s": 0.012}
    # GPUs × precisions × TP {1, 2, 4, 8} × concurrencies, less those memory cannot hold
    tps = 4 if parallel_predict_supported() else 1
    assert doc["searched"] + len(doc["skipped"]) == 2 * 2 * tps * 9
    assert {p["tp"] for p in doc["pareto"]} <= {1, 2, 4, 8}
    assert all(s["error"].startswith("concurrency") and s["batch"] > 100
               for s in doc["skipped"])
    best = doc["best"]
    assert best["ttft_s"] <= 2.0 and best["tpot_s"] <= 0.012 and best["meets_slo"]
    keys = ("tok_s_per_gpu", "tok_s_per_user")
    for point in doc["pareto"]:
        assert not any(dominates(other, point, keys) for other in doc["pareto"])
    assert best["tok_s_per_gpu"] >= max(p["tok_s_per_gpu"] for p in doc["pareto"]
                                        if p["meets_slo"])
    per_gpu = doc["best_per_gpu"]
    assert set(per_gpu) == {"h100-sxm-measured", "h200-measured"}
    assert best in per_gpu.values()
    for gpu, point in per_gpu.items():
        assert point is None or (point["gpu"] == gpu and point["meets_slo"]
                                 and point["tok_s_per_gpu"] <= best["tok_s_per_gpu"])


def test_the_margin_pick_keeps_its_headroom():
    doc = plan_json("--ttft-slo", "2s", "--tpot-slo", "12ms", "--margin", "0.2")
    best, safe = doc["best"], doc["best_with_margin"]
    assert doc["margin"] == 0.2 and safe is not None
    assert safe["ttft_s"] * 1.2 <= 2.0 + 1e-12 and safe["tpot_s"] * 1.2 <= 0.012 + 1e-12
    assert safe["tok_s_per_gpu"] <= best["tok_s_per_gpu"]
    assert doc["best_headroom"]["tpot"] == pytest.approx(0.012 / best["tpot_s"] - 1)
    assert plan_json("--tpot-slo", "12ms", "--margin", "0")["best_with_margin"] is None
    text = invoke(*ARGS, "--tpot-slo", "12ms", "--margin", "0.2").output
    assert "headroom" in text and "20% margin" in text


def test_best_command_reproduces_the_best_point():
    best = plan_json("--tpot-slo", "10ms")["best"]
    args = shlex.split(best["command"])
    assert args[:3] == ["perfmodel", "predict", MODEL]
    result = invoke(*args[1:], "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["estimate"]["itl_s"] == pytest.approx(best["tpot_s"], rel=1e-12)
    assert doc["estimate"]["ttft_s"] == pytest.approx(best["ttft_s"], rel=1e-12)


def test_tighter_slo_never_gives_more_throughput():
    loose = plan_json("--tpot-slo", "40ms")["best"]
    tight = plan_json("--tpot-slo", "8ms")["best"]
    assert tight is None or tight["tok_s_per_gpu"] <= loose["tok_s_per_gpu"]
    assert plan_json("--tpot-slo", "1us")["best"] is None


def test_prices_make_the_front_cost():
    doc = plan_json("--gpu-price", "h100-sxm-measured=2.49,h200-measured=3.5")
    assert doc["front_axes"] == ["cost_per_mtok", "tok_s_per_user"]
    for point in doc["pareto"]:
        price = 2.49 if point["gpu"] == "h100-sxm-measured" else 3.5
        assert point["cost_per_mtok"] == pytest.approx(price / 3600 / point["tok_s_per_gpu"] * 1e6)


def test_deployments_that_do_not_fit_are_skipped_before_evaluation():
    result = invoke("plan", "meta-llama/Llama-3.1-70B", "--gpus", "h100-sxm-measured,b200",
                    "--precisions", "bf16,fp8", "--concurrency", "1,8", "--method", "predict",
                    "--max-gpus", "1", "--json")
    doc = json.loads(result.output)
    skipped = {(s["gpu"], s["precision"]) for s in doc["skipped"]
               if s["error"].startswith("does not fit")}
    assert ("h100-sxm-measured", "bf16") in skipped  # 141 GB of weights on an 80 GB GPU
    over = [s for s in doc["skipped"] if s["error"].startswith("concurrency")]
    assert all(s["batch"] == 8 for s in over)  # the KV cache of 8 × 1152 tokens is the limit
    assert doc["searched"] == 2 * (4 - len(skipped)) - len(over)
    assert len(doc["skipped"]) == len(skipped) + len(over)


def test_table_output_says_how_points_were_evaluated():
    result = invoke(*ARGS, "--tpot-slo", "50ms")
    assert result.exit_code == 0, result.output
    assert "static-batch predictions" in result.output and "Pareto front" in result.output
    assert "perfmodel predict" in result.output


@pytest.mark.parametrize("args, message", [
    (["--tpot-slo", "fast"], "500ms"),
    (["--gpu-price", "b200=3"], "not among the GPUs"),
    (["--method", "guess"], "serve or predict"),
    (["--plot", "front.pdf"], ".png or .svg"),
])
def test_errors_are_one_line(args, message):
    result = invoke(*ARGS, *args)
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output
