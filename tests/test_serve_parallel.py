"""perfmodel serve on many GPUs: one GPU unchanged, sharded KV pools, dp·pp schedulers, tokens
conserved, the multi-GPU validation rows' rules, CLI."""

from __future__ import annotations

import csv
import hashlib
import json

import pytest
from typer.testing import CliRunner

from perfmodel.api import resolve_precision
from perfmodel.cli import app
from perfmodel.cost.ops import forward_ops
from perfmodel.cost.parallel import Parallel
from perfmodel.hardware.gpu import load_gpu
from perfmodel.model.architectures import model_spec
from perfmodel.model.source import load_model_config
from perfmodel.serve import run_serve
from perfmodel.serve.kv import kv_plan
from perfmodel.serve.ranks import layout
from perfmodel.serve.step_cost import StepCost
from perfmodel.validate import silicon
from perfmodel.validate.silicon_multi import select

MODEL, MOE, GPU = "meta-llama/Llama-3.1-8B", "Qwen/Qwen3-30B-A3B", "h100-sxm-measured"
runner = CliRunner()


def _kv(tp: int):
    return run_serve(MODEL, gpu=GPU, engine="vllm", concurrency=2, num_requests=2, isl=64,
                     osl=4, tp=tp).kv


def test_one_gpu_is_the_unsharded_model_and_its_step_cost():
    """tp = ep = dp = pp = 1: the model itself, forward_ops, the plain KV pool, and a step cost
    equal to one built straight from forward_ops (today's one-GPU numbers exactly)."""
    report = run_serve(MODEL, gpu=GPU, engine="vllm", concurrency=4, num_requests=8, isl=256,
                       osl=16)
    cfg = load_model_config(MODEL)
    spec, gpu = model_spec(cfg.config, cfg.where), load_gpu(GPU)
    prec = resolve_precision(cfg.config, None, None, None, gpu)
    lay = layout(spec, prec, gpu, Parallel())
    assert lay.local is spec and lay.forward is forward_ops and lay.schedulers == 1
    assert report.kv == kv_plan(spec, prec, gpu, report.facts)
    cost = report.step_cost
    plain = StepCost(spec, prec, gpu, cost.estimator, max_tokens=cost.ms[-1],
                     max_seqs=cost.bs[-1], capture_sizes=tuple(cost.capture),
                     pad_mixed=cost.pad_mixed, host_overhead_s=cost.host_overhead_s)
    for args in ((8, 8 * 300, [], 8), (3, 900, [(0, 200)], 4), (0, 0, [(128, 64)], 1)):
        assert cost.step(*args) == plain.step(*args)
    t = report.metrics["throughput"]
    assert t["output_tok_s_per_gpu"] == t["output_tok_s"]
    assert report.metrics["parallel"] == {"tp": 1, "pp": 1, "ep": 1, "dp": 1, "gpus": 1,
                                          "schedulers": 1}


def test_tp2_kv_pool_per_gpu():
    """TP2 halves the KV bytes a token takes on each GPU (8 KV heads → 4) and about halves the
    weights, so each GPU's pool holds more than twice the tokens of one GPU's; past 8 GPUs the
    one remaining KV head is replicated (tp 16 stores what tp 8 stores)."""
    one, two = _kv(1), _kv(2)
    assert two.bytes_per_token == one.bytes_per_token / 2
    assert two.weights_bytes == pytest.approx(one.weights_bytes / 2, rel=0.02)
    assert two.tokens == int(two.pool_bytes // (two.bytes_per_token * two.block_size)) * 16
    assert two.tokens > 2 * one.tokens
    assert two.tokens == pytest.approx(2 * two.pool_bytes / one.bytes_per_token, rel=1e-3)
    assert _kv(16).bytes_per_token == _kv(8).bytes_per_token == one.bytes_per_token / 8


def test_tp2_decode_is_faster_but_collectives_keep_it_above_half():
    """Each GPU streams half the weights, but two all-reduces a layer cost time: the TPOT
    falls, by less than 2×; per GPU throughput at the same load falls."""
    kw = dict(gpu=GPU, engine="vllm", concurrency=16, num_requests=32, isl=256, osl=32)
    one, two = run_serve(MODEL, **kw).metrics, run_serve(MODEL, tp=2, **kw).metrics
    assert one["tpot_s"]["mean"] / 2 < two["tpot_s"]["mean"] < one["tpot_s"]["mean"]
    assert two["limit"]["tpot_s"]["mean"] <= two["tpot_s"]["mean"]
    t = two["throughput"]
    assert t["output_tok_s_per_gpu"] == pytest.approx(t["output_tok_s"] / 2)


def test_attention_dp_ranks_conserve_tokens(tmp_path):
    """DP2+EP2: rank 0 gets requests 0, 2, 4, … (C/2 clients); its trace prefills exactly
    their prompts, and the deployment's throughput is both ranks' over 2 GPUs."""
    trace = tmp_path / "t.csv"
    result = runner.invoke(app, ["serve", MOE, "--gpu", GPU, "--engine", "sglang",
                                 "--concurrency", "8", "--num-requests", "20", "--isl", "128",
                                 "--osl", "8", "--dp", "2", "--ep", "2", "--json",
                                 "--trace", str(trace)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["parallel"]["schedulers"] == 2 and doc["parallel"]["gpus"] == 2
    assert doc["requests"] == 10 and doc["workload"]["num_requests"] == 20
    rows = list(csv.reader(trace.open()))[1:]
    assert sum(int(r[2]) for r in rows) == 10 * 128
    t = doc["throughput"]
    assert t["output_tok_s"] == pytest.approx(10 * 8 / doc["duration_s"] * 2)
    assert t["output_tok_s_per_gpu"] == pytest.approx(t["output_tok_s"] / 2)


def test_pipeline_micro_batches_share_each_gpus_pool():
    """PP2: two schedulers; each GPU holds half the layers' KV, shared by both micro-batches."""
    kw = dict(gpu=GPU, engine="vllm", concurrency=8, num_requests=16, isl=128, osl=8)
    pp2 = run_serve(MODEL, pp=2, **kw)
    one = run_serve(MODEL, **kw)
    assert pp2.metrics["parallel"]["schedulers"] == 2 and pp2.metrics["requests"] == 8
    assert pp2.kv.bytes_per_token == one.kv.bytes_per_token / 2
    whole = int(pp2.kv.pool_bytes // (pp2.kv.bytes_per_token * pp2.kv.block_size))
    assert pp2.kv.blocks == whole // 2


def test_parallel_errors_name_the_fix():
    for args, text in ((["--tp", "3"], "--tp 3"), (["--dp", "2"], "--ep"),
                       (["--ep", "2"], "experts")):
        bad = runner.invoke(app, ["serve", MODEL, "--gpu", GPU, "--concurrency", "4", *args])
        assert bad.exit_code == 2 and text in bad.output, (args, bad.output)
        assert "Traceback" not in bad.output


def _row(id_, **kw):
    base = dict(id=id_, backend="vllm", model_path="meta-llama/Llama-3.1-70B", system="h200_sxm",
                mode="agg", isl="1024", osl="128", gemm_quant_mode="fp8", batch_size="8",
                tp_size="2", pp_size="1", attention_dp_size="1", moe_ep_size="1",
                silicon_tpot_ms="10", silicon_ttft_ms="100")
    return {**base, **kw}


def test_multi_gpu_rows_rules():
    """Other models (here a held-out one), > 8 GPUs (mixed-up columns), duplicates and
    training rows are left out by the declared rules; concurrency is batch_size per
    attention-DP rank. The held-out model's rows, both halves, are what held_out_rows takes."""
    test_ids = [f"r{i}" for i in range(40) if not silicon.is_training({"id": f"r{i}"})]
    rows = [_row(test_ids[0]), _row(test_ids[1], model_path="Qwen/Qwen3-235B-A22B-FP8"),
            _row(test_ids[2], tp_size="64"), _row(test_ids[3]),
            _row(next(f"t{i}" for i in range(99) if silicon.is_training({"id": f"t{i}"})),
                 tp_size="4")]
    keep, skipped = select(rows, sample=1)
    assert [r["id"] for r in keep] == [test_ids[0]]
    assert skipped == {"other model": 1, "inconsistent parallel columns": 1,
                       "duplicate measurement": 1, "training half": 1, "sampled out": 0,
                       "unsupported": 0}
    held, held_skipped = select(rows, sample=1, half="both", models=silicon.HELD_OUT)
    assert [r["id"] for r in held] == [test_ids[1]] and held_skipped["other model"] == 4
    assert not set(silicon.HELD_OUT) & set(silicon.BUILDS)  # no fit or figure takes them in
    train_id = rows[-1]["id"]
    keep, skipped = select(rows, sample=1, half="train")  # the fit's rows: the other half
    assert [r["id"] for r in keep] == [train_id] and skipped["training half"] == 1
    dp = _row("x", tp_size="1", attention_dp_size="8", moe_ep_size="8", batch_size="32",
              model_path="deepseek-ai/DeepSeek-R1")
    assert silicon.parallel_of(dp) == {"tp": 1, "ep": 8, "dp": 8}
    assert silicon.serve_kwargs(dp)["concurrency"] == 256
    assert silicon.parallel_of(_row("y", moe_ep_size="0")) == {"tp": 2, "ep": 1, "dp": 1}


def test_validate_serving_multi_option_errors(tmp_path, monkeypatch):
    """Bad flags are named before the data is looked for (here: as on a fresh clone, none)."""
    monkeypatch.setattr(silicon, "CSV", tmp_path / "absent.csv")
    for args, text in ((["--rows", "both"], "--rows"), (["--sample", "0"], "--sample")):
        bad = runner.invoke(app, ["validate-serving", *args])
        assert bad.exit_code == 2 and text in bad.output, (args, bad.output)


def test_cli_summary_names_the_deployment():
    ok = runner.invoke(app, ["serve", MODEL, "--gpu", GPU, "--tp", "2", "--concurrency", "4",
                             "--num-requests", "8", "--osl", "8"])
    assert ok.exit_code == 0, ok.output
    assert "TP2 on 2 GPUs" in ok.output and "TPOT" in ok.output


def test_fitted_overhead_reproduces_the_row():
    """The overhead the fit takes from one row (residual over d TPOT / d overhead) makes that
    row's simulated TPOT its measured one; the per-engine median of one row is that value."""
    row = _row("fit", silicon_tpot_ms="40", osl="64", batch_size="4", backend_version="0.12.0")
    engine, need = silicon._overhead_needed(row, 1e-3)
    assert engine == "vllm" and need > 0
    assert abs(silicon.simulate_row(row, need).tpot_est_s / 0.040 - 1) < 0.03
    assert silicon.fit_host_overhead([row]) == {"vllm": need}


def test_validate_multi_reports_progress(tmp_path):
    """validate-serving's progress bar is fed (done, total) after every simulated row."""
    from perfmodel.validate.silicon_multi import validate_multi

    ids = [f"p{i}" for i in range(99) if not silicon.is_training({"id": f"p{i}"})
           and int(hashlib.sha1(f"p{i}".encode()).hexdigest(), 16) // 2 % 4 == 0][:2]
    rows = [_row(i, backend_version="0.12.0", osl="16", batch_size=str(2 + n))
            for n, i in enumerate(ids)]  # different measurements, not duplicates
    path = tmp_path / "rows.csv"
    with path.open("w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)
    seen = []
    results, _ = validate_multi(on_row=lambda done, total: seen.append((done, total)), path=path)
    assert len(results) == 2 and seen == [(1, 2), (2, 2)]


def test_held_out_rows_simulate_both_halves(tmp_path):
    """--rows held-out: every row of a held-out model, a training-half one too (no constant
    saw either), with the held-out model's own bundled config."""
    from perfmodel.validate.silicon_multi import validate_multi

    train = next(f"h{i}" for i in range(99) if silicon.is_training({"id": f"h{i}"}))
    test = next(f"h{i}" for i in range(99) if not silicon.is_training({"id": f"h{i}"}))
    rows = [_row(i, model_path="Qwen/Qwen3-235B-A22B-FP8", gemm_quant_mode="fp8_block",
                 tp_size="4", moe_ep_size="4", osl="16", batch_size=str(2 + n),
                 backend="trtllm", backend_version="1.0.0rc3", silicon_tpot_ms="1000",
                 silicon_ttft_ms="10000")
            for n, i in enumerate((train, test))] + [_row("other", tp_size="2")]
    path = tmp_path / "rows.csv"
    with path.open("w", newline="") as f:
        out = csv.DictWriter(f, fieldnames=list(rows[0]))
        out.writeheader()
        out.writerows(rows)
    results, skipped = validate_multi(path=path, held_out=True)
    assert [r.id for r in results] == [train, test] and skipped["other model"] == 1
    assert {r.model for r in results} == {"Qwen/Qwen3-235B-A22B-FP8"}
    assert all(r.tpot_lim_s <= r.tpot_est_s < r.tpot_s for r in results)


def test_moe_with_one_expert_per_gpu_serves():
    """Mixtral's 8 experts over DP8 + EP8 leave one expert per GPU, which every local token
    reaches twice (top-2): it is read once a step and holds all the rank's pairs."""
    from perfmodel.serve import run_serve

    report = run_serve("mistralai/Mixtral-8x7B-v0.1", gpu=GPU, engine="vllm", concurrency=16,
                       num_requests=32, isl=256, osl=8, tp=1, ep=8, dp=8)
    assert report.metrics["tpot_s"]["mean"] > 0 and report.metrics["parallel"]["gpus"] == 8
