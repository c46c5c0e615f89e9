"""Sweeps: grid expansion, rows equal to `perfmodel predict`, error rows, files, the CLI."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings, strategies as st
from typer.testing import CliRunner

from perfmodel.api import run_predict
from perfmodel.cli import app
from perfmodel.plan.evaluate import evaluate
from perfmodel.plan.grid import PREDICT, SERVE, Point, expand
from perfmodel.plan.sweep import read_rows, run_points, write_rows

MODEL = "meta-llama/Llama-3.1-8B"
runner = CliRunner()


def test_grid_is_the_product_in_a_fixed_order():
    points = expand(MODEL, method=PREDICT, gpus=["a", "b"], loads=[1, 2, 4],
                    precisions=["bf16", "fp8"], tps=[1, 2], isls=[128, 256])
    assert len(points) == 2 * 3 * 2 * 2 * 2
    assert len(set(points)) == len(points)
    assert [p.load for p in points[:3]] == [1, 2, 4]  # load fastest
    assert points[0].gpu == "a" and points[-1].gpu == "b"  # GPU slowest
    assert {(p.precision, p.tp, p.isl) for p in points} == \
        {(pr, tp, i) for pr in ("bf16", "fp8") for tp in (1, 2) for i in (128, 256)}


def test_point_gpus_and_command():
    p = Point(MODEL, "b200", SERVE, "fp8", None, "vllm", tp=4, dp=2, ep=8, load=32,
              isl=2048, osl=512)
    assert p.gpus == 8 and p.columns()["concurrency"] == 32 and "batch" not in p.columns()
    assert p.command() == ("perfmodel serve meta-llama/Llama-3.1-8B --gpu b200 --engine vllm "
                           "--precision fp8 --tp 4 --ep 8 --dp 2 --concurrency 32 --isl 2048 "
                           "--osl 512")


@pytest.mark.parametrize("gpu, precision, batch", [
    ("h100-sxm-measured", "bf16", 8), ("h200-measured", "fp8", 64), ("b200", None, 1)])
def test_rows_equal_predict(gpu, precision, batch):
    """The cached fast path gives exactly what `perfmodel predict` gives."""
    row = evaluate(Point(MODEL, gpu, PREDICT, precision, load=batch, isl=2048, osl=300))
    pred = run_predict(MODEL, gpu=gpu, precision=precision, batch=batch, input_len=2048,
                       output_len=300).prediction
    assert row["error"] is None
    for key, value in pred.limit.items():
        assert row[f"limit_{key}"] == value
    assert row["basis"] == "estimate" and row["tpot_s"] == pred.estimate["itl_s"]
    assert row["tok_s_per_user"] == pytest.approx(1 / pred.estimate["itl_s"])
    assert row["output_tok_s"] == pred.estimate["throughput_tok_s"] == row["tok_s_per_gpu"]


def test_parallel_rows_equal_predict():
    from perfmodel.plan.evaluate import parallel_predict_supported

    if not parallel_predict_supported():
        row = evaluate(Point(MODEL, "h100-sxm-measured", PREDICT, tp=2, load=4))
        assert "--tp" in row["error"] and row["tpot_s"] is None
        return
    for tp, ep in ((2, 1), (4, 1), (8, 1)):
        row = evaluate(Point("meta-llama/Llama-3.1-70B", "h100-sxm-measured", PREDICT, "bf16",
                             tp=tp, ep=ep, load=16, isl=2048, osl=300))
        pred = run_predict("meta-llama/Llama-3.1-70B", gpu="h100-sxm-measured",
                           precision="bf16", batch=16, input_len=2048, output_len=300, tp=tp,
                           ep=ep).prediction
        assert row["error"] is None and row["gpus"] == tp
        for key, value in pred.limit.items():
            assert row[f"limit_{key}"] == value
        assert row["tok_s_per_gpu"] == pytest.approx(row["output_tok_s"] / tp)


def test_invalid_points_are_rows_with_an_error():
    rows = run_points([Point(MODEL, "h100-sxm-measured", load=100_000),
                       Point(MODEL, "a100-sxm-80gb", precision="fp8", load=1),
                       Point(MODEL, "no-such-gpu", load=1),
                       Point(MODEL, "h100-sxm-measured", load=1)], workers=1)
    assert rows[0]["error"].startswith("does not fit") and rows[0]["tpot_s"] is None
    assert rows[0]["max_batch"] < 100_000
    assert "fp8" in rows[1]["error"]
    assert rows[2]["error"] and rows[2]["ttft_s"] is None
    assert rows[3]["error"] is None and rows[3]["ttft_s"] > 0


def test_forked_workers_give_the_same_rows():
    points = expand(MODEL, method=PREDICT, gpus=["h100-sxm-measured", "h200-measured"],
                    loads=list(range(1, 301)), precisions=["bf16", "fp8"])
    assert run_points(points, workers=2) == run_points(points, workers=1)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_files_round_trip(tmp_path, suffix):
    rows = run_points(expand(MODEL, method=PREDICT, gpus=["h100-sxm-measured"],
                             loads=[1, 4, 5000]), workers=1)
    path = tmp_path / f"rows{suffix}"
    write_rows(rows, path)
    back = read_rows(path)
    assert len(back) == 3 and [r["batch"] for r in back] == [1, 4, 5000]
    for got, want in zip(back, rows):
        for key, value in want.items():
            if isinstance(value, float):
                assert got[key] == pytest.approx(value, rel=1e-15)
            else:
                assert got[key] == value, key


def test_sweep_cli_writes_every_point(tmp_path):
    out = tmp_path / "sweep.jsonl"
    result = runner.invoke(app, ["sweep", MODEL, "--gpu", "h100-sxm-measured,b200", "--batch",
                                 "1-8x2", "--precision", "bf16,fp8", "--osl", "64", "--out",
                                 str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 2 * 4 * 2
    assert {(r["gpu"], r["precision"], r["batch"]) for r in rows} == \
        {(g, p, b) for g in ("h100-sxm-measured", "b200") for p in ("bf16", "fp8")
         for b in (1, 2, 4, 8)}
    assert all(r["error"] is None and r["osl"] == 64 for r in rows)


def test_sweep_cli_serves_with_concurrency(tmp_path):
    out = tmp_path / "serve.csv"
    result = runner.invoke(app, ["sweep", MODEL, "--gpu", "h100-sxm-measured", "--concurrency",
                                 "2,8", "--osl", "16", "--num-requests", "16", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = read_rows(out)
    assert [r["concurrency"] for r in rows] == [2, 8]
    assert all(r["basis"] == "serve" and r["requests"] == 16 and r["error"] is None
               for r in rows)
    # a closed loop at higher concurrency never has a shorter TPOT, never fewer tokens/s
    assert rows[1]["tpot_s"] >= rows[0]["tpot_s"]
    assert rows[1]["tok_s_per_gpu"] >= rows[0]["tok_s_per_gpu"]
    for r in rows:
        assert r["tpot_s_p99"] >= r["tpot_s_median"] and r["ttft_s_p99"] >= r["ttft_s_median"]


@pytest.mark.parametrize("args, message", [
    (["--batch", "1", "--concurrency", "2"], "not both"),
    (["--out", "x.xlsx"], ".csv"),
    (["--batch", "0"], "--batch"),
])
def test_sweep_cli_errors(args, message):
    result = runner.invoke(app, ["sweep", MODEL, *args], env={"PERFMODEL_DEBUG": "0"})
    assert result.exit_code == 2 and message in result.output
    assert "Traceback" not in result.output


def test_parquet_needs_pyarrow(tmp_path):
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        result = runner.invoke(app, ["sweep", MODEL, "--out", str(tmp_path / "x.parquet")])
        assert result.exit_code == 2 and "pyarrow" in result.output
    else:
        pytest.skip("pyarrow is installed")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True),
       st.lists(st.integers(1, 512), min_size=1, max_size=6, unique=True),
       st.lists(st.sampled_from([None, "bf16", "fp8"]), min_size=1, max_size=3, unique=True),
       st.lists(st.sampled_from([1, 2, 4, 8]), min_size=1, max_size=4, unique=True),
       st.lists(st.integers(1, 8192), min_size=1, max_size=3, unique=True))
def test_grid_holds_every_combination_once(gpus, loads, precisions, tps, isls):
    points = expand(MODEL, method=PREDICT, gpus=gpus, loads=loads, precisions=precisions,
                    tps=tps, isls=isls)
    assert len(points) == len(gpus) * len(loads) * len(precisions) * len(tps) * len(isls)
    assert {(p.gpu, p.load, p.precision, p.tp, p.isl) for p in points} == \
        set(itertools.product(gpus, loads, precisions, tps, isls))
    assert [p.load for p in points[:len(loads)]] == loads


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 10_000), min_size=1, max_size=8, unique=True))
def test_int_lists_round_trip(values):
    from perfmodel.plan.parse import parse_ints

    assert parse_ints(",".join(map(str, values)), "--batch") == values
