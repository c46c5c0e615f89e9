"""The serving-data check of plan (perfmodel/plan/silicon_check.py): its arithmetic by hand, and
one real group when ../shared holds the measurements."""

from __future__ import annotations

import pytest

from conftest import SHARED
from perfmodel.plan.silicon_check import check
from perfmodel.plan.silicon_rank import GroupCheck, measured_tok_s_per_gpu, pick


def row(rid, c, ttft_ms, tpot_ms, osl=100, tp=1, backend="vllm"):
    return {"id": rid, "batch_size": str(c), "osl": str(osl), "isl": "1000", "tp_size": str(tp),
            "pp_size": "1", "silicon_ttft_ms": str(ttft_ms), "silicon_tpot_ms": str(tpot_ms),
            "model_path": "m", "system": "h200_sxm", "backend": backend}


def sim(tpot_s, per_gpu, error=None):
    return {"tpot_s": tpot_s, "ttft_s": 0.1, "tok_s_per_gpu": per_gpu,
            "tok_s_per_user": 1 / tpot_s, "gpus": 1, "error": error}


def test_measured_throughput_by_hand():
    # 8 requests of 100 tokens, each 100 ms + 99 × 10 ms = 1.09 s: 800 / 1.09 tok/s on 2 GPUs
    assert measured_tok_s_per_gpu(row("a", 8, 100, 10, tp=2)) == pytest.approx(800 / 1.09 / 2)


def test_pick_is_the_fastest_simulated_row_meeting_the_target():
    rows = [row("a", 1, 50, 8), row("b", 8, 80, 12), row("c", 64, 400, 30)]
    sims = [sim(0.008, 100.0), sim(0.011, 700.0), sim(0.031, 3000.0)]
    assert pick(rows, sims, 0.030)["id"] == "b"  # c is simulated above the target
    assert pick(rows, sims, 0.031)["id"] == "c"
    assert pick(rows, sims, 0.001) is None
    assert pick(rows, [sim(0.008, 100.0), sim(0.011, 700.0, "does not fit"),
                       sim(0.5, 1.0)], 0.030)["id"] == "a"


def test_groups_pass_within_ten_percent_of_the_best_measured():
    rows = [row("a", 1, 50, 8), row("b", 8, 80, 12), row("c", 64, 400, 30),
            row("d", 4, 60, 9, backend="sglang")]  # alone in its group: not checked
    sims = {"a": sim(0.008, 100.0), "b": sim(0.011, 700.0), "c": sim(0.031, 3000.0),
            "d": sim(0.009, 1.0)}
    (group,) = check(rows, sims)
    assert group.best_id == "c" and group.target_tpot_s == pytest.approx(0.030)
    assert group.pick_id == "b" and not group.passed  # b measures a third of c
    assert group.ratio == pytest.approx(measured_tok_s_per_gpu(rows[1]) /
                                        measured_tok_s_per_gpu(rows[2]))
    sims["c"] = sim(0.029, 3000.0)
    (group,) = check(rows, sims)
    assert group.pick_id == "c" and group.ratio == 1 and group.passed
    assert not GroupCheck(("m", "s", "e", 1, 1), 2, 0.01, "x", 10.0, None, None).passed


@pytest.mark.skipif(not (SHARED / "external" / "aiconfigurator-silicon").exists(),
                    reason="no ../shared/external/aiconfigurator-silicon")
def test_one_real_group_runs_end_to_end():
    from perfmodel.plan.silicon_check import _point
    from perfmodel.plan.silicon_rank import groups
    from perfmodel.plan.sweep import run_points
    from perfmodel.validate.silicon import is_training, serving_rows

    test_half = [r for r in serving_rows() if not is_training(r)]
    key = ("meta-llama/Llama-3.1-8B-Instruct", "h100_sxm", "trtllm", 1024, 128)
    members = groups(test_half)[key]
    sims = run_points([_point(r) for r in members], workers=1)
    assert all(s["error"] is None and s["basis"] == "serve" for s in sims)
    (group,) = check(members, {r["id"]: s for r, s in zip(members, sims)})
    best = max(measured_tok_s_per_gpu(r) for r in members)
    assert group.best_tok_s_per_gpu == best
    assert group.pick_id is None or group.pick_tok_s_per_gpu <= best


@pytest.mark.skipif(not (SHARED / "external" / "aiconfigurator-silicon").exists(),
                    reason="no ../shared/external/aiconfigurator-silicon")
def test_the_check_ranks_many_gpu_rows_of_the_test_half():
    from perfmodel.plan.silicon_check import _point, check_rows
    from perfmodel.validate.silicon import is_training

    every, one = check_rows(), check_rows(one_gpu=True)
    assert set(r["id"] for r in one) < set(r["id"] for r in every)
    assert not any(is_training(r) for r in every)
    many = [r for r in every if r not in one]
    assert many and all(_point(r).gpus > 1 or _point(r).ep > 1 for r in many)
    dp = next(r for r in many if (r["attention_dp_size"] or "1") != "1")
    assert _point(dp).dp == int(dp["attention_dp_size"])  # its ranks, each batch_size clients
    assert _point(dp).load == int(dp["batch_size"]) * _point(dp).dp


@pytest.mark.skipif(not SHARED.exists(), reason="needs ../shared/external")
def test_prefix_cached_rows_are_left_out_as_validate_serving_leaves_them():
    """vLLM 0.12 on an H200, Llama-3.1-8B-FP8, 1000 in / 100 out at 112 clients: 72 ms TTFT and
    11.2 ms TPOT measured, 112 / (0.072 + 99 × 0.0112) = 94 requests/s; at 11.9 ms of roofline
    prefill each, 1.12 s of prefill a second: a cached prefix. At 5 ms it would be 0.47."""
    from perfmodel.plan.silicon_check import prefix_cached
    from perfmodel.validate.silicon import serving_rows

    (r,) = [r for r in serving_rows() if r["backend"] == "vllm" and r["isl"] == "1000"
            and r["osl"] == "100" and r["batch_size"] == "112"]
    rate = 112 / (float(r["silicon_ttft_ms"]) / 1e3 + 99 * float(r["silicon_tpot_ms"]) / 1e3)
    assert rate * 0.0119 > 1 > rate * 0.005
    cached = {"error": None, "limit_ttft_s": 0.0119, "parallel_schedulers": 1}
    assert prefix_cached(r, cached)
    assert not prefix_cached(r, {**cached, "limit_ttft_s": 0.005})
    assert not prefix_cached(r, {**cached, "parallel_schedulers": 2})  # half the rate each
    assert not prefix_cached(r, {"error": "does not fit"})


def test_an_exact_oracle_passes_every_group_and_a_noisy_one_loses_the_knife_edge():
    from perfmodel.plan.silicon_oracle import oracle_passes

    # group m/vllm: the best row c (64 clients) and b, a third of its tokens/s at a lower TPOT:
    # only c passes, so the group turns on the sign of the error on c's TPOT (half the draws).
    # group m/sglang: e at 93% of f's tokens/s and 20% lower TPOT passes either way.
    rows = [row("a", 1, 50, 8), row("b", 8, 80, 12), row("c", 64, 400, 30),
            row("e", 24, 100, 16, backend="sglang"), row("f", 32, 100, 20, backend="sglang")]
    assert 0.9 < measured_tok_s_per_gpu(rows[3]) / measured_tok_s_per_gpu(rows[4]) < 1
    assert oracle_passes(rows, 0.0, trials=5) == [2] * 5
    passes = oracle_passes(rows, 0.03, trials=400)
    assert min(passes) == 1 and max(passes) == 2
    assert 0.35 < passes.count(2) / 400 < 0.65
    assert oracle_passes(rows, 0.03, trials=400, slack=0.2) == [2] * 400  # 0.2 ≫ 3% noise


def test_repeats_count_distinct_measurements_of_one_configuration():
    from perfmodel.plan.silicon_oracle import repeats

    def measured(rid, model, tpot, c=8):
        return {**row(rid, c, 100, tpot), "model_path": model, "backend_version": "1.0"}

    rows = [measured("a", "deepseek-ai/DeepSeek-R1", 10.0),  # V3's architecture (BUILDS)
            measured("b", "deepseek-ai/DeepSeek-V3", 15.0),
            measured("c", "deepseek-ai/DeepSeek-V3", 15.0),  # a copy of b: counts once
            measured("d", "m", 20.0), measured("e", "m", 20.0),  # copies only: no repeat
            measured("f", "m", 21.0, c=16)]  # another concurrency: another configuration
    ((key, spread),) = repeats(rows)
    assert key[0] == "deepseek-ai/DeepSeek-V3" and spread == pytest.approx(1.5)


@pytest.mark.skipif(not (SHARED / "external" / "aiconfigurator-silicon").exists(),
                    reason="no ../shared/external/aiconfigurator-silicon")
def test_the_rows_repeat_closely_except_where_sources_contradict():
    from perfmodel.plan.silicon_oracle import repeats
    from perfmodel.validate.silicon import csv_rows

    spreads = repeats([r for r in csv_rows() if r["mode"] == "agg"])
    values = [s for _, s in spreads]
    assert values == sorted(values) and values[0] >= 1
    deepseek_trt = [s for k, s in spreads
                    if k[0] == "deepseek-ai/DeepSeek-V3" and k[2] == "trtllm"]
    assert len(deepseek_trt) >= 10 and min(deepseek_trt) > 1.15  # docs/plan.md: 1.20-1.92×
    reruns = [s for k, s in spreads if k[2] == "vllm" and k[3] in ("0.16.0", "0.18.0")]
    assert len(reruns) >= 20 and sorted(reruns)[len(reruns) // 2] < 1.01
