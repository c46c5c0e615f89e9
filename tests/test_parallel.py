"""Many GPUs: sharding arithmetic, collective formulas, per-GPU memory, and the predictions the
parallelism issue names (no GPU, no network)."""

from __future__ import annotations

import time

import pytest

from perfmodel.api import run_predict
from perfmodel.cost.collective import (collective_cost, estimate_seconds, ring_factor,
                                       table_seconds)
from perfmodel.cost.parallel import COLLECTIVE, Parallel, comm_ops, shard, stage_counts
from perfmodel.cost.parallel_predict import micro_batch
from perfmodel.cost.precision import preset
from perfmodel.cost.predict import predict
from perfmodel.cost.workload import Workload
from perfmodel.errors import WorkloadError
from perfmodel.hardware.gpu import load_gpu
from perfmodel.hardware.interconnect import Interconnect
from perfmodel.model.architectures import model_spec
from perfmodel.model.source import load_model_config


def spec_of(model: str):
    return model_spec(load_model_config(model).config)


def layer_params(spec):
    p = spec.params
    return p.attention + p.dense_mlp + p.experts + p.shared_experts


def kv_per_token(spec):
    return spec.kv_cache_elems(1)


def test_tp1_is_todays_prediction_exactly():
    spec, prec, gpu = spec_of("meta-llama/Llama-3.1-8B"), preset("bf16"), load_gpu("h100-sxm")
    w = Workload(4, 512, 64)
    assert predict(spec, prec, gpu, w, None, Parallel()) == predict(spec, prec, gpu, w)
    assert shard(spec, Parallel()) == spec


@pytest.mark.parametrize("tp", [2, 4, 8])
def test_dense_tp_shards_sum_to_the_whole(tp):
    spec = spec_of("meta-llama/Llama-3.1-70B")  # N 64, K 8, F 28672, V 128256
    local = shard(spec, Parallel(tp=tp))
    attn = local.layers[0][0].attention
    assert (attn.num_heads, attn.num_kv_heads) == (64 // tp, 8 // tp)
    assert local.layers[0][0].mlp.intermediate_size * tp == 28672
    assert layer_params(local) * tp == layer_params(spec)  # no biases: exact
    assert local.params.embedding * tp == spec.params.embedding
    assert kv_per_token(local) * tp == kv_per_token(spec)


def test_kv_heads_replicate_when_tp_exceeds_them():
    spec = spec_of("Qwen/Qwen3-30B-A3B")  # K = 4
    local = shard(spec, Parallel(tp=8))
    assert local.layers[0][0].attention.num_kv_heads == 1
    assert kv_per_token(local) * 8 == 2 * kv_per_token(spec)  # each KV head held twice


def test_mla_latent_cache_is_whole_on_every_gpu():
    spec = spec_of("deepseek-ai/DeepSeek-V3")
    local = shard(spec, Parallel(tp=8))
    assert kv_per_token(local) == kv_per_token(spec)
    assert local.layers[-1][0].attention.num_heads == 16


@pytest.mark.parametrize("par", [Parallel(tp=4), Parallel(tp=4, ep=4), Parallel(tp=2, ep=2),
                                 Parallel(tp=1, dp=4, ep=4)])
def test_experts_split_by_width_or_whole(par):
    spec = spec_of("Qwen/Qwen3-30B-A3B")  # E 128, k 8, F 768
    local = shard(spec, par)
    mlp = local.layers[0][0].mlp
    assert mlp.num_experts == 128 // par.ep
    assert mlp.intermediate_size == 768 * par.ep // par.stage_gpus
    assert local.params.experts * par.stage_gpus == spec.params.experts
    assert mlp.top_k * par.ep == 8 * par.dp  # local pairs = B·T·k/ep over the stage's tokens


@pytest.mark.parametrize("kwargs, needle", [
    (dict(tp=3), "query heads"), (dict(tp=0), "whole number"), (dict(dp=2), "--ep 2"),
    (dict(tp=2, ep=3), "must divide the 2 GPUs")])
def test_bad_splits_name_the_fix(kwargs, needle):
    with pytest.raises(WorkloadError, match=needle):
        shard(spec_of("Qwen/Qwen3-30B-A3B"), Parallel(**kwargs))


def test_ep_on_a_dense_model_is_refused():
    with pytest.raises(WorkloadError, match="drop --ep"):
        shard(spec_of("meta-llama/Llama-3.1-8B"), Parallel(tp=2, ep=2))


def test_ring_factors_and_the_link_limit_by_hand():
    assert ring_factor("all_reduce", 2) == 1.0 and ring_factor("all_reduce", 4) == 1.5
    assert ring_factor("all_gather", 4) == 0.75 and ring_factor("send_recv", 8) == 1.0
    spec, prec = spec_of("meta-llama/Llama-3.1-70B"), preset("bf16")
    ops = comm_ops(spec, Parallel(tp=2), prec, "decode", 8, 1)
    by_name = {op.name: op for op in ops}
    assert by_name["attn_all_reduce"].bytes == 8 * 8192 * 2  # M·D·2 bytes
    assert by_name["attn_all_reduce"].count == 80 and by_name["mlp_all_reduce"].count == 80
    assert by_name["lm_head_all_gather"].bytes == 8 * 128256 * 2
    cost = collective_cost(by_name["attn_all_reduce"], load_gpu("h100-sxm"), False)
    # 80 all-reduces of 131072 bytes, 2(2−1)/2 = 1 byte sent per byte, 450 GB/s per direction
    assert cost.limit_s == pytest.approx(80 * 131072 / 450e9)
    assert cost.compute_s == 0 and cost.estimate_s is None


def test_dp_ep_launches_all_to_all_of_the_routed_copies():
    spec, prec = spec_of("deepseek-ai/DeepSeek-V3"), preset("fp8")
    ops = comm_ops(spec, Parallel(dp=8, ep=8), prec, "decode", 4, 1)
    dispatch = next(op for op in ops if op.name == "moe_dispatch")
    assert dispatch.bytes == 4 * 8 * 7168 * 1  # B·k·D, fp8 activations (DeepEP)
    assert dispatch.count == 58 and dispatch.weight_dtype == "all_to_all"
    assert not any(op.name.endswith("all_reduce") for op in ops)  # attention is not split


def test_table_interpolation_by_hand():
    table = ((1000.0, 1e-5), (4000.0, 2e-5))
    assert table_seconds(table, 10.0) == 1e-5  # the latency floor
    assert table_seconds(table, 2000.0) == pytest.approx(1e-5 * 2 ** 0.5)  # log-log
    assert table_seconds(table, 8000.0) == pytest.approx(4e-5)  # the last bandwidth
    link = Interconnect("nvlink4", 4.5e11, "test", {4: {"all_reduce": table}})
    # 8 GPUs from the 4 measured: floor + (t − floor)·(2·7/8)/(2·3/4)
    assert estimate_seconds(link, "all_reduce", 8, 4000.0) == pytest.approx(
        1e-5 + 1e-5 * (14 / 8) / 1.5)


def test_measured_all_reduce_within_10pct_of_the_independent_timing():
    """The profile's table against torchrun's own timing on the same 4× H200 box."""
    import json
    from pathlib import Path

    path = Path(__file__).parent.parent / "docs/data/parallel/allreduce-check-h200x4-2026-11-27.jsonl"
    link = load_gpu("h200-measured").interconnect
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert {(r["gpus"], r["bytes"]) for r in rows} == {
        (n, b) for n in (2, 4) for b in (4096, 1 << 20, 64 << 20)}
    for row in rows:
        ours = estimate_seconds(link, "all_reduce", row["gpus"], row["bytes"])
        assert abs(ours / row["seconds"] - 1) < 0.10, row


def test_pipeline_stages_and_micro_batches():
    assert stage_counts(80, 3) == [27, 27, 26]
    assert micro_batch(8, Parallel(pp=4)) == 2 and micro_batch(2, Parallel(pp=4)) == 1
    spec, prec, gpu = spec_of("meta-llama/Llama-3.1-70B"), preset("bf16"), load_gpu("h100-sxm")
    w = Workload(8, 1024, 64)
    one = predict(spec, prec, gpu, w, None, Parallel(tp=2))
    two = predict(spec, prec, gpu, w, None, Parallel(tp=2, pp=2))
    assert two.memory.weights_bytes < 0.55 * one.memory.weights_bytes
    sends = [c for c in two.prefill.costs if c.op.name == "pp_send_recv"]
    assert sends and sends[0].op.count == 1
    # TTFT: the same layers plus the send; ITL: a micro-batch of 4 instead of 8 sequences
    assert two.prefill.limit_s > one.prefill.limit_s
    assert two.decode.limit_s < one.decode.limit_s


@pytest.mark.parametrize("model, gpu, precision, kwargs", [
    ("meta-llama/Llama-3.1-70B", "h100-sxm-measured", "bf16", dict(tp=2)),
    ("deepseek-ai/DeepSeek-V3", "h200-measured", "fp8", dict(tp=8)),
    ("deepseek-ai/DeepSeek-V3", "h200-measured", "fp8", dict(dp=8, ep=8)),
    ("openai/gpt-oss-120b", "h100-sxm-measured", None, dict()),
    ("openai/gpt-oss-120b", "h100-sxm-measured", None, dict(tp=2)),
    ("openai/gpt-oss-120b", "h100-sxm-measured", None, dict(tp=4)),
])
def test_named_predictions_fit_are_estimated_and_fast(model, gpu, precision, kwargs):
    from perfmodel.report.render import to_json

    run_predict("Qwen/Qwen3-4B-Instruct-2507", gpu=gpu)  # caches warm, as in one CLI process
    began = time.process_time()  # CPU time: a loaded CI box must not fail a fast prediction
    report = run_predict(model, gpu=gpu, precision=precision, batch=16, **kwargs)
    doc = to_json(report.prediction, model_id=report.model_id, model_source="",
                  estimate_note="")
    assert time.process_time() - began < 0.3
    assert doc and report.prediction.memory.fits
    est = report.prediction.estimate
    assert est is not None and est["itl_s"] >= report.prediction.limit["itl_s"]
    if kwargs:
        assert any(c.op.kind == COLLECTIVE for c in report.prediction.decode.costs)


def test_more_tp_never_adds_weight_per_gpu():
    spec, prec, gpu = spec_of("openai/gpt-oss-120b"), preset("bf16"), load_gpu("h100-sxm")
    w = Workload(8, 1024, 64)
    weights = [predict(spec, prec, gpu, w, None, Parallel(tp=n)).memory.weights_bytes
               for n in (1, 2, 4, 8)]
    assert weights == sorted(weights, reverse=True)


def test_cli_predict_tp_json_and_errors():
    import json

    from typer.testing import CliRunner

    from perfmodel.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["predict", "Qwen/Qwen3-30B-A3B", "--gpu", "h100-sxm-measured",
                                 "--tp", "2", "--ep", "2", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["parallel"] == {"tp": 2, "pp": 1, "ep": 2, "dp": 1, "gpus": 2}
    bad = runner.invoke(app, ["predict", "Qwen/Qwen3-30B-A3B", "--tp", "3"])
    assert bad.exit_code == 2 and "query heads" in bad.output
    assert "Traceback" not in bad.output
