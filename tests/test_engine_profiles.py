"""Engine profiles and the engine's own runs: reading vLLM's logs and results, the fit's rule by
hand, the profile serve picks, and what a profile changes (docs/serving.md, "Engine profiles").
Ground truth: vLLM 0.26.0's own server log and benchmark JSON of one H200 run (committed under
docs/data/engines), and hand arithmetic."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from typer.testing import CliRunner

from perfmodel.cli import app
from perfmodel.serve import run_serve
from perfmodel.serve.engine_profile import (EngineProfileError, load_profile, merge_tables,
                                            parse_profile, select_profile, split_engine)
from perfmodel.validate.engine_fit import compare, fit, summary
from perfmodel.validate.engine_runs import read_runs, server_settings

RUNS = ROOT / "docs" / "data" / "engines" / "vllm-0.26.0-h200"
NOCACHE = ROOT / "docs" / "data" / "engines" / "vllm-0.26.0-h200-nocache"
PROFILE = ROOT / "configs" / "engines" / "vllm-0.26.0-h200.yaml"
LLAMA = "meta-llama/Llama-3.1-8B"
runner = CliRunner()


def test_server_log_settings_are_vllm_026s_own_words():
    """The settings come from the lines vLLM 0.26.0 printed on the H200 (server.log)."""
    s = server_settings((RUNS / "llama8b-bf16" / "server.log").read_text())
    assert s.version == "0.26.0"
    assert s.max_num_batched_tokens == 8192
    assert s.kv_cache_tokens == 919_824
    assert s.gpu_memory_utilization == 0.92
    assert s.attention_backend == "FLASH_ATTN"
    assert s.async_scheduling is True and s.prefix_caching is True
    assert s.cudagraph_mode == "FULL_AND_PIECEWISE"
    assert s.capture_sizes[:4] == (1, 2, 4, 8) and s.capture_sizes[-1] == 512
    assert len(s.capture_sizes) == 51  # "Capturing CUDA graphs (FULL): ... 0/51"
    moe = server_settings((RUNS / "qwen30b-a3b-bf16" / "server.log").read_text())
    assert moe.moe_backend == "TRITON" and moe.kv_cache_tokens == 744_672


def test_runs_read_the_benchmark_json_as_written():
    runs = {r.id: r for r in read_runs(RUNS)}
    r = runs["llama8b-bf16/results/llama8b-bf16.1024.256.c64.rinf.json"]
    raw = json.loads((RUNS / r.id).read_text())
    assert (r.isl, r.osl, r.concurrency, r.request_rate) == (1024, 256, 64, None)
    assert r.num_requests == raw["completed"] == 192
    assert r.tpot_s == pytest.approx(raw["mean_tpot_ms"] / 1e3)
    assert r.output_tok_s == pytest.approx(raw["output_throughput"])
    assert r.model == LLAMA and r.precision is None and r.device == "NVIDIA H200"
    fp8 = runs["llama8b-fp8/results/llama8b-fp8.128.128.c1.rinf.json"]
    assert fp8.precision == "fp8" and fp8.settings.quantization == "fp8"
    rate = runs["llama8b-bf16/results/llama8b-bf16.1024.256.c256.r4.json"]
    assert rate.request_rate == 4.0
    assert {r.half for r in runs.values()} == {"train", "test"}


def test_a_point_with_a_triton_jit_compile_is_left_out():
    """vLLM warned of a fused_moe JIT compile at 01:33:04, inside the Qwen3-30B-A3B C=16 point
    (its TTFT then holds the compile: 1086 ms against 576 ms at C=64)."""
    runs = {r.id: r for r in read_runs(RUNS)}
    jit = runs["qwen30b-a3b-bf16/results/qwen30b-a3b-bf16.1024.256.c16.rinf.json"]
    assert jit.excluded and "JIT" in jit.excluded
    assert sum(r.excluded is not None for r in runs.values()) == 1


def test_prefix_hits_from_the_log_during_a_point():
    """Without the server's counters a point carries the highest hit rate vLLM logged during
    it (over its last 1,000 requests): the cache-free server logs 0%."""
    runs = {r.id: r for r in read_runs(RUNS)}
    r = runs["llama8b-bf16/results/llama8b-bf16.2048.128.c128.rinf.json"]
    assert r.prefix_hits == (pytest.approx(0.397), "log")
    assert {r.prefix_hits for r in read_runs(NOCACHE)} == {(0.0, "log")}


def test_runs_folder_errors_are_one_line(tmp_path):
    from perfmodel.validate.engine_runs import RunsError

    with pytest.raises(RunsError, match="no such folder"):
        read_runs(tmp_path / "missing")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(RunsError, match="no `vllm bench serve"):
        read_runs(tmp_path)


def test_fit_follows_its_rule_by_hand(tmp_path):
    """request_latency = median over the training one-client points of measured − simulated
    median TTFT; host overhead = median of measured − simulated mean TPOT (at least 0); both
    simulated with the profile's settings and tables and its two constants at 0."""
    zero = tmp_path / "zero.yaml"
    zero.write_text(yaml.safe_dump({**yaml.safe_load(PROFILE.read_text()),
                                    "host_overhead_s": 0.0, "request_latency_s": 0.0}))
    runs = read_runs(RUNS)
    points = [r for r in runs if r.half == "train" and r.concurrency == 1 and not r.excluded]
    assert len(points) >= 5
    sims = [run_serve(r.model, gpu="h200-measured", engine_profile=str(zero), isl=r.isl,
                      osl=r.osl, concurrency=1, num_requests=r.num_requests,
                      precision=r.precision, gpu_memory_utilization=0.92,
                      host_overhead_s=0.0, stagger=False).metrics for r in points]
    latency = statistics.median(r.median_ttft_s - m["ttft_s"]["median"]
                                for r, m in zip(points, sims))
    host = statistics.median(r.tpot_s - m["tpot_s"]["mean"] for r, m in zip(points, sims))
    got = fit(runs, "h200-measured", engine="vllm", engine_profile=str(zero))
    assert got.request_latency_s == pytest.approx(latency, rel=1e-9)
    assert got.host_overhead_s == pytest.approx(max(host, 0.0), abs=1e-12)
    assert set(got.points) == {r.id for r in points}


def test_bundled_profile_is_the_fit_of_its_runs():
    """configs/engines/vllm-0.26.0-h200.yaml holds what the rule gives on the committed runs."""
    from perfmodel.validate.engine_fit import profile_document

    doc = yaml.safe_load(PROFILE.read_text())
    fitted = profile_document(read_runs(RUNS), RUNS, "h200-measured")
    assert doc["request_latency_s"] == pytest.approx(fitted["request_latency_s"], abs=1e-6)
    assert doc["host_overhead_s"] == pytest.approx(fitted["host_overhead_s"], abs=1e-7)
    assert doc["settings"]["memory_fraction"] == 0.92
    assert doc["settings"]["kv_cache_tokens"]["llama8b-bf16"] == 919_824
    assert sorted(doc["fit"]["train"]) == sorted(fitted["fit"]["train"])


def test_async_scheduling_hides_the_host():
    """vLLM 0.26 schedules asynchronously: one-client TPOT is the GPU's step, so the fitted
    visible host time is under 0.1 ms (the published-row fit of 0.10-0.12 was 1.04 ms)."""
    assert load_profile(str(PROFILE)).host_overhead_s < 1e-4


def test_kv_tokens_match_vllm_026s_log():
    """serve's KV pool at the profile's memory fraction against vLLM 0.26.0's logged token
    counts on the H200, within 1% (vLLM's profiling run differs from the activation bound)."""
    logged = {"meta-llama/Llama-3.1-8B": 919_824, "Qwen/Qwen3-32B": 269_312,
              "Qwen/Qwen3-30B-A3B": 744_672}
    for model, tokens in logged.items():
        kv = run_serve(model, gpu="h200-measured", concurrency=1, num_requests=1, isl=16,
                       osl=2).metrics["kv_cache"]["tokens"]
        assert kv == pytest.approx(tokens, rel=0.035), model
    llama = run_serve(LLAMA, gpu="h200-measured", concurrency=1, num_requests=1, isl=16,
                      osl=2).metrics["kv_cache"]["tokens"]
    assert llama == pytest.approx(919_824, rel=0.01)


def test_select_profile():
    assert split_engine("vllm@0.26.0") == ("vllm", "0.26.0")
    assert split_engine("VLLM") == ("vllm", None)
    name, prof = select_profile("vllm", "h200")
    assert name == "vllm" and prof.version == "0.26.0"
    assert select_profile("vllm@0.26", "h200")[1].version == "0.26.0"
    assert select_profile("vllm@published", "h200")[1] is None
    assert select_profile("vllm@0.12", "h200")[1] is None  # a release only the rows have
    assert select_profile("vllm", "h100")[1] is None  # none measured on an H100
    assert select_profile("sglang", "h200")[1] is None
    with pytest.raises(EngineProfileError, match="drop --engine"):
        select_profile("sglang", "h200", str(PROFILE))
    with pytest.raises(EngineProfileError, match="measured on h200, not h100"):
        select_profile("vllm@0.26.0", "h100")  # a release measured elsewhere: say so


def test_profile_changes_what_it_says_and_nothing_else():
    base = dict(gpu="h200-measured", concurrency=4, isl=512, osl=64, num_requests=8)
    new = run_serve(LLAMA, **base)
    old = run_serve(LLAMA, engine="vllm@published", **base)
    assert new.metrics["engine_profile"]["version"] == "0.26.0"
    assert old.metrics["engine_profile"] is None
    assert new.facts.memory_fraction == 0.92 and old.facts.memory_fraction == 0.9
    assert new.metrics["request_latency_s"] > 0.005 and old.metrics["request_latency_s"] == 0
    on_h100 = run_serve(LLAMA, **{**base, "gpu": "h100-sxm-measured"})
    assert on_h100.metrics["engine_profile"] is None
    # a user's knob still wins over the profile's
    mine = run_serve(LLAMA, gpu_memory_utilization=0.5, **base)
    assert mine.facts.memory_fraction == 0.5


def test_request_latency_adds_to_ttft_and_e2e_only(tmp_path):
    """The same profile with 10 ms of request latency and with none, an open loop (arrivals
    fixed): TTFT and E2E move by 10 ms exactly, TPOT and the limit not at all."""
    doc = yaml.safe_load(PROFILE.read_text())
    runs = {}
    for latency in (0.0, 0.010):
        path = tmp_path / f"lat{latency}.yaml"
        path.write_text(yaml.safe_dump({**doc, "request_latency_s": latency}))
        runs[latency] = run_serve(LLAMA, gpu="h200-measured", request_rate=20.0, isl=128,
                                  osl=16, num_requests=6, engine_profile=str(path)).metrics
    a, b = runs[0.0], runs[0.010]
    for key in ("ttft_s", "e2e_s"):
        assert b[key]["mean"] - a[key]["mean"] == pytest.approx(0.010, abs=1e-9)
    assert b["tpot_s"]["mean"] == pytest.approx(a["tpot_s"]["mean"], rel=1e-12)
    assert b["limit"] == a["limit"]


def test_merge_tables_replaces_by_name_and_shape():
    gpu = {"linear": {"bf16": "B", "fp8": "F"}, "rmsnorm": "R",
           "attention": [{"phase": "decode", "kind": "gqa", "heads": 32, "kv_heads": 8,
                          "head_dim": 128, "v_head_dim": 128, "window": None, "sinks": False,
                          "points": "torch"},
                         {"phase": "decode", "kind": "mla", "heads": 128, "points": "mla"}]}
    engine = {"linear": {"fp8": "cutlass"},
              "attention": [dict(gpu["attention"][0], points="fa3")], "fused_moe": "x"}
    merged = merge_tables(gpu, engine)
    assert merged["linear"] == {"bf16": "B", "fp8": "cutlass"}
    assert [a["points"] for a in merged["attention"]] == ["fa3", "mla"]
    assert merged["rmsnorm"] == "R" and "fused_moe" not in merged


def test_profile_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("engine: vllm\nversion: 1\n")
    with pytest.raises(EngineProfileError, match="'settings' is missing or not a mapping"):
        load_profile(str(bad))
    result = runner.invoke(app, ["serve", LLAMA, "--gpu", "h200-measured", "--concurrency",
                                 "1", "--engine-profile", str(tmp_path / "none.yaml")])
    assert result.exit_code == 2 and "no such file" in result.output
    good = (ROOT / "configs/engines/vllm-0.26.0-h200.yaml").read_text()
    for sync in ("synchronous: 3\n", "synchronous: {host_overhead_s: 2}\n",
                 "synchronous: {host_overhead_s: 0.001, speculative_methods: draft}\n"):
        bad.write_text(good.replace("synchronous:\n", "old_synchronous:\n") + sync)
        with pytest.raises(EngineProfileError, match="'synchronous' must map"):
            load_profile(str(bad))


def test_limit_never_above_a_measurement():
    rows = compare(read_runs(RUNS) + read_runs(NOCACHE), "h200-measured")
    assert all(c.limit_tpot <= 1.0 for c in rows)
    assert all(c.predicted.limit.ttft_s.mean <= c.run.ttft_s for c in rows)


def test_without_cache_hits_throughput_is_within_ten_percent():
    """The four loaded Llama-3.1-8B points run with prefix caching off (no hit can shorten a
    prefill): serve's output tokens/s within 10% of each, the stated tolerance."""
    rows = compare(read_runs(NOCACHE), "h200-measured")
    assert len(rows) == 4
    assert all(abs(c.tok_s - 1) < 0.10 for c in rows), [round(c.tok_s, 3) for c in rows]
    assert summary(rows)["runs"] == 4


def test_validate_serving_runs_cli(tmp_path):
    result = runner.invoke(app, ["validate-serving", "--runs", str(NOCACHE), "--json"],
                           env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert len(doc["runs"]) == 4 and "0.26.0" in doc["engine"]
    md = runner.invoke(app, ["validate-serving", "--runs", str(NOCACHE), "--markdown"])
    assert md.output.startswith("| half | results |")
    missing = runner.invoke(app, ["validate-serving", "--runs", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no such folder" in missing.output


def test_calibrate_engine_fits_a_profile_from_runs(tmp_path):
    runs = tmp_path / "runs"
    shutil.copytree(RUNS, runs)
    out = tmp_path / "p.yaml"
    result = runner.invoke(app, ["calibrate-engine", "--runs", str(runs), "--profile", str(out)])
    assert result.exit_code == 0, result.output
    prof = load_profile(str(out))
    assert prof.engine == "vllm" and prof.version == "0.26.0" and prof.gpu == "h200"
    assert prof.tables and "fp8" in prof.tables["linear"]
    assert prof.request_latency_s == pytest.approx(load_profile(str(PROFILE)).request_latency_s)


def test_a_closed_loop_client_waits_the_round_trip(tmp_path):
    """With request latency L a closed-loop client's next request reaches the engine L after
    its previous one ended there: one client, N requests of identical steps, the run lasts
    (N − 1)·L longer than with none, and each TTFT is L longer."""
    doc = yaml.safe_load(PROFILE.read_text())
    got = {}
    for latency in (0.0, 0.020):
        path = tmp_path / f"l{latency}.yaml"
        path.write_text(yaml.safe_dump({**doc, "request_latency_s": latency}))
        got[latency] = run_serve(LLAMA, gpu="h200-measured", concurrency=1, isl=256, osl=8,
                                 num_requests=5, engine_profile=str(path)).metrics
    a, b = got[0.0], got[0.020]
    assert b["duration_s"] - a["duration_s"] == pytest.approx(4 * 0.020, abs=1e-9)
    assert b["ttft_s"]["mean"] - a["ttft_s"]["mean"] == pytest.approx(0.020, abs=1e-9)


def test_waves_of_a_lock_step_loop_wait_for_each_other():
    """C = 16 clients of 1024/256 on one H200 fill two 8192-token prefill steps a wave; with
    the round trip a wave's clients all come back before the engine starts it, so every wave,
    not only the first, has half its requests wait one prefill step more (measured without
    prefix caching: median TTFT 285 ms, p90 395 ms; serve within 15%)."""
    report = run_serve(LLAMA, gpu="h200-measured", concurrency=16, isl=1024, osl=256,
                       num_requests=64, stagger=False, gpu_memory_utilization=0.92)
    ttft = [d.ttft for d in report.outcome.done]
    waited = sum(t > 1.5 * min(ttft) for t in ttft)
    assert waited >= 0.4 * len(ttft)  # the first wave alone would give 8 of 64
    assert report.metrics["ttft_s"]["mean"] == pytest.approx(0.281, rel=0.15)
