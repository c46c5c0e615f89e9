"""perfmodel serve with the real op model: hand-worked steps, engine facts, CLI, speed."""

from __future__ import annotations

import csv
import json
import time

import pytest
from typer.testing import CliRunner

from perfmodel.cli import app
from perfmodel.errors import PerfmodelError
from perfmodel.serve import run_serve
from perfmodel.serve.engines import engine_facts, sglang, vllm_capture_sizes
from perfmodel.serve.requests import make_arrivals

MODEL, GPU = "meta-llama/Llama-3.1-8B", "h100-sxm-measured"
runner = CliRunner()


def _cost(report):
    return report.step_cost


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_one_request_alone_is_one_prefill_step(engine):
    """TTFT of a lone request = the step cost of its whole prompt (overhead included); its
    limit = the roofline of that step."""
    report = run_serve(MODEL, gpu=GPU, engine=engine, concurrency=1, num_requests=1, isl=512,
                       osl=4, host_overhead_s=2e-3)
    cost = _cost(report)
    est, lim = cost.step(0, 0, [(0, 512)], 1)
    assert report.metrics["ttft_s"]["mean"] == pytest.approx(est)
    assert report.metrics["limit"]["ttft_s"]["mean"] == pytest.approx(lim)
    decode = [cost.step(1, 512 + k, [], 1)[0] for k in range(1, 4)]
    assert report.metrics["e2e_s"]["mean"] == pytest.approx(est + sum(decode))
    assert est > lim + 2e-3 * 0.99


def test_decode_steps_pad_to_captured_graph_sizes():
    """vLLM pads a 9-sequence decode step to its captured size 16: the per-token ops cost as
    many as for 16 sequences, while the limit counts 9."""
    report = run_serve(MODEL, gpu=GPU, concurrency=1, num_requests=1, osl=2)
    cost = _cost(report)
    assert 16 in vllm_capture_sizes() and 9 not in vllm_capture_sizes()
    assert cost.linear(9, padded=True)[0] == pytest.approx(cost.linear(16, padded=False)[0])
    assert cost.linear(9, padded=True)[1] == pytest.approx(cost.linear(9, padded=False)[1])


def test_engine_defaults_follow_the_cited_rules():
    """SGLang on an 80 GB H100 (81559 MiB): reserved 512 + 1.5·8192 + 2·256 + 1024/8 = 13440
    MiB, (81559 − 13440) / 81559 = 0.835; on 8 H200s (143771 MiB, TP8): 512 + 12288 + 2·512 +
    1024 = 14848, 0.897; DP8 attention over the same 8 (SGLang's tp_size 8, dp 8): + 3·512·8 +
    1.5·512·8 = 33280, 0.769. vLLM on ≥ 70 GiB: max_num_seqs 1024, 8192 batched tokens;
    TensorRT-LLM: 0.9 of free memory."""
    h100, h200 = 81559 * 1024 ** 2, 143771 * 1024 ** 2
    facts = sglang(h100)
    assert (facts.memory_fraction, facts.max_num_batched_tokens, max(facts.capture_sizes)) == \
        (0.835, 8192, 256)
    assert engine_facts("sglang", h200, tp=8).memory_fraction == 0.897
    assert max(engine_facts("sglang", h200, tp=8).capture_sizes) == 512
    assert engine_facts("sglang", h200, dp=8).memory_fraction == 0.769
    facts = engine_facts("vllm", 85e9)
    assert (facts.max_num_seqs, facts.max_num_batched_tokens, facts.block_size) == \
        (1024, 8192, 16)
    assert engine_facts("trtllm", 85e9).memory_fraction == 0.9
    with pytest.raises(PerfmodelError, match="--engine"):
        engine_facts("tgi", 85e9)


def test_kv_pool_is_memory_minus_weights_over_bytes_per_token():
    """Llama-3.1-8B bf16 (16.06 GB of weights, 128 KiB of KV a token) under SGLang on H100."""
    report = run_serve(MODEL, gpu=GPU, engine="sglang", concurrency=1, num_requests=1, osl=2)
    kv = report.kv
    assert kv.bytes_per_token == 32 * 8 * 128 * 2 * 2
    expected = (85017493504 * report.facts.memory_fraction - kv.weights_bytes) // kv.bytes_per_token
    assert kv.tokens == expected


def test_poisson_arrivals_are_seeded_and_inf_sends_all_at_once():
    a = make_arrivals(concurrency=None, request_rate=10.0, isl=8, osl=8, num_requests=50,
                      lengths=None, seed=3)
    b = make_arrivals(concurrency=None, request_rate=10.0, isl=8, osl=8, num_requests=50,
                      lengths=None, seed=3)
    assert a == b and a.requests[-1].arrival == pytest.approx(5, rel=0.5)
    inf = make_arrivals(concurrency=None, request_rate=float("inf"), isl=8, osl=8,
                        num_requests=5, lengths=None, seed=0)
    assert {r.arrival for r in inf.requests} == {0.0}
    with pytest.raises(PerfmodelError, match="exactly one"):
        make_arrivals(concurrency=2, request_rate=1.0, isl=8, osl=8, num_requests=5,
                      lengths=None, seed=0)
    with pytest.raises(PerfmodelError, match="--num-requests must be a whole number ≥ 1, not 0"):
        make_arrivals(concurrency=2, request_rate=None, isl=8, osl=8, num_requests=0,
                      lengths=None, seed=0)  # 0 is not "the default"


def test_lengths_file(tmp_path):
    path = tmp_path / "lengths.jsonl"
    path.write_text('{"input_len": 100, "output_len": 5}\n{"input_len": 300, "output_len": 9}\n')
    report = run_serve(MODEL, gpu=GPU, concurrency=2, lengths=str(path))
    assert report.metrics["requests"] == 2
    assert sorted((d.isl, d.osl) for d in report.outcome.done) == [(100, 5), (300, 9)]
    path.write_text('{"input_len": -1, "output_len": 5}\n')
    with pytest.raises(PerfmodelError, match="line 1"):
        run_serve(MODEL, gpu=GPU, concurrency=2, lengths=str(path))


def test_limit_never_above_estimate_and_more_load_more_throughput():
    low = run_serve(MODEL, gpu=GPU, concurrency=4, num_requests=40).metrics
    high = run_serve(MODEL, gpu=GPU, concurrency=32, num_requests=160).metrics
    for m in (low, high):
        for key in ("ttft_s", "tpot_s", "e2e_s"):
            assert m["limit"][key]["mean"] <= m[key]["mean"]
    assert high["throughput"]["output_tok_s"] > low["throughput"]["output_tok_s"]
    assert high["tpot_s"]["mean"] > low["tpot_s"]["mean"]


def test_thousand_requests_at_concurrency_64_are_fast():
    """docs/benchmark.md: under 0.5 s on a 2-core box; a generous bound here."""
    run_serve(MODEL, gpu=GPU, concurrency=64, num_requests=10)  # tables built once
    start = time.process_time()  # this process's CPU time: not the neighbours' load
    run_serve(MODEL, gpu=GPU, concurrency=64, num_requests=1000)
    assert time.process_time() - start < 2.0


def test_cli_json_schema_and_trace(tmp_path):
    trace = tmp_path / "steps.csv"
    result = runner.invoke(app, ["serve", MODEL, "--gpu", GPU, "--engine", "sglang",
                                 "--concurrency", "8", "--num-requests", "24", "--isl", "256",
                                 "--osl", "16", "--json", "--trace", str(trace)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    for key in ("ttft_s", "tpot_s", "itl_s", "e2e_s"):
        assert set(doc[key]) == {"mean", "median", "p90", "p99"}
    assert set(doc["throughput"]) == {"requests_s", "output_tok_s", "output_tok_s_per_gpu",
                                      "output_tok_s_per_user"}
    assert doc["requests"] == 24 and doc["engine"] == "sglang"
    rows = list(csv.reader(trace.open()))
    assert rows[0] == ["time_s", "decode_seqs", "prefill_tokens", "kv_blocks_used"]
    assert len(rows) == doc["steps"] + 1
    assert sum(int(r[2]) for r in rows[1:]) == 24 * 256


def test_cli_summary_and_errors():
    ok = runner.invoke(app, ["serve", MODEL, "--gpu", GPU, "--request-rate", "inf",
                             "--num-requests", "20", "--osl", "8"])
    assert ok.exit_code == 0 and "TPOT" in ok.output
    for args, text in ((["--concurrency", "4", "--tp", "3"], "--tp 3"),
                       (["--concurrency", "4", "--request-rate", "2"], "exactly one"),
                       (["--concurrency", "4", "--engine", "tgi"], "--engine"),
                       (["--concurrency", "4", "--max-num-seqs", "0"], "max-num-seqs"),
                       (["--concurrency", "4", "--host-overhead", "-1ms"], "duration")):
        bad = runner.invoke(app, ["serve", MODEL, "--gpu", GPU, *args])
        assert bad.exit_code == 2 and text in bad.output, (args, bad.output)
        assert "Traceback" not in bad.output


def test_prompt_filling_the_token_budget_is_warned_and_serialised():
    """TensorRT-LLM without chunked context: an 8192-token prompt fills max_num_tokens 8192, so
    it waits until no request decodes: one request at a time, whatever the concurrency."""
    kw = dict(gpu="h200-measured", engine="trtllm", concurrency=8, isl=8192, osl=64,
              num_requests=16)
    alone = run_serve("meta-llama/Llama-3.1-8B", **kw)
    assert any("token budget" in w for w in alone.warnings)
    assert alone.metrics["kv_cache"]["peak_blocks_used"] * 32 <= 8192 + 64 + 32
    roomy = run_serve("meta-llama/Llama-3.1-8B", max_num_batched_tokens=8192 + 8, **kw)
    assert not any("token budget" in w for w in roomy.warnings)
    assert roomy.metrics["throughput"]["output_tok_s"] > \
        2 * alone.metrics["throughput"]["output_tok_s"]


def test_warmup_leaves_the_cold_wave_out_of_the_latencies_only():
    """--warmup N: the first N requests load the engine but are not measured. A cold first
    wave of 32 long prompts queues behind one another; measured after it, TTFT is far lower,
    the throughput and ITL (the whole run's) are the same, and the limit stays below."""
    kw = dict(gpu=GPU, engine="vllm", concurrency=32, isl=4096, osl=64, num_requests=128)
    cold, warm = run_serve(MODEL, **kw).metrics, run_serve(MODEL, warmup=64, **kw).metrics
    assert cold["requests"] == 128 and warm["requests"] == 64
    assert warm["workload"]["warmup"] == 64 and cold["workload"]["warmup"] == 0
    assert warm["ttft_s"]["mean"] < 0.5 * cold["ttft_s"]["mean"]
    assert warm["throughput"]["output_tok_s"] == cold["throughput"]["output_tok_s"]
    assert warm["itl_s"] == cold["itl_s"]
    for key in ("ttft_s", "tpot_s", "e2e_s"):
        assert warm["limit"][key]["mean"] <= warm[key]["mean"]


def test_warmup_must_leave_requests_to_measure():
    with pytest.raises(PerfmodelError, match="--warmup"):
        run_serve(MODEL, gpu=GPU, concurrency=4, num_requests=8, warmup=8)
    result = runner.invoke(app, ["serve", MODEL, "--gpu", GPU, "--concurrency", "4",
                                 "--num-requests", "8", "--warmup", "-1"])
    assert result.exit_code == 2 and "--warmup" in result.output


def test_cli_host_overhead_is_added_to_every_step():
    """--host-overhead replaces the fitted per-step host time: 5 ms more a step is about 5 ms
    more TPOT (every decode step carries it), and the JSON reports it in seconds."""
    docs = []
    for value in ("0", "5ms"):
        out = runner.invoke(app, ["serve", MODEL, "--gpu", GPU, "--concurrency", "4",
                                  "--num-requests", "8", "--osl", "16", "--host-overhead",
                                  value, "--json"])
        assert out.exit_code == 0, out.output
        docs.append(json.loads(out.output))
    assert [d["host_overhead_s"] for d in docs] == [0.0, 0.005]
    extra = docs[1]["tpot_s"]["mean"] - docs[0]["tpot_s"]["mean"]
    assert 0.0045 < extra < 0.0075  # one 5 ms per decode step, give or take the schedule


def test_lock_step_keeps_the_prefills_out_of_the_decode_window():
    """--lock-step: the 4 clients stay together, so every wave's prompts (4 × 1024 tokens, one
    SGLang prefill batch) run before its decode steps and no prefill lands inside a request's
    decode window: TPOT is the mean decode step (ITL). Staggered clients drift apart, their
    prompts land between others' tokens, and TPOT exceeds the ITL; each wave's prompts arrive
    together in lock-step and queue, so its TTFT is the longer."""
    docs = []
    for flag in ("--lock-step", None):
        args = ["serve", MODEL, "--gpu", GPU, "--engine", "sglang", "--concurrency", "4",
                "--isl", "1024", "--osl", "64", "--num-requests", "32", "--json"]
        out = runner.invoke(app, args + ([flag] if flag else []))
        assert out.exit_code == 0, out.output
        docs.append(json.loads(out.output))
    lock, drift = docs
    text = runner.invoke(app, ["serve", MODEL, "--gpu", GPU, "--concurrency", "4",
                               "--num-requests", "8", "--lock-step"]).output
    assert "concurrency 4 (clients in lock-step)" in text
    assert lock["workload"]["lock_step"] and not drift["workload"]["lock_step"]
    assert lock["tpot_s"]["mean"] == pytest.approx(lock["itl_s"]["mean"], rel=1e-9)
    assert drift["tpot_s"]["mean"] > 1.05 * drift["itl_s"]["mean"]
    assert lock["ttft_s"]["mean"] > drift["ttft_s"]["mean"]
