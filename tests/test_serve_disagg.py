"""Disaggregated prefill/decode (serve/disagg.py, plan --disagg, validate-serving --rows disagg):
hand-computed KV transfers, the pools' bookkeeping, a published disaggregated row, plan picking
disaggregation where it is plainly better, and the argument errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from perfmodel.cli import app
from perfmodel.errors import WorkloadError
from perfmodel.hardware.gpu import load_gpu
from perfmodel.serve import run_serve
from perfmodel.serve.disagg_layout import KvLink, Pools, kv_link, parse_pools, pools_from, \
    transfer_bytes
from perfmodel.validate import silicon

MODEL, GPU = "meta-llama/Llama-3.1-8B", "h100-sxm-measured"
# Llama-3.1-8B's KV per token in bf16: 32 layers × 8 KV heads × 128 dims × (K and V) × 2 bytes
KV_TOKEN = 32 * 8 * 128 * 2 * 2
runner = CliRunner()


def _disagg(**kw):
    args = dict(gpu=GPU, concurrency=8, isl=1024, osl=64, num_requests=40, disagg="1x1:1x1")
    return run_serve(MODEL, **{**args, **kw})


def test_compact_form_and_pool_sizes():
    assert parse_pools("2x4:1x8") == {"prefill_workers": 2, "prefill_tp": 4,
                                      "decode_workers": 1, "decode_tp": 8}
    assert parse_pools(" 2×4 : 1×8 ") == parse_pools("2x4:1x8")
    pools = pools_from("2x4:1x8", decode_dp=2)
    assert (pools.prefill_gpus, pools.decode_gpus, pools.gpus) == (8, 16, 24)
    assert pools_from(None) is None
    assert pools_from(None, decode_tp=2) == Pools(decode_tp=2)


def test_transfer_time_by_hand():
    """The busiest link carries I × max(prefill GPU's, decode GPU's) KV bytes a token: 1024
    tokens of Llama-3.1-8B from TP2 to TP1 is 1024 × 131072 bytes over the decode GPU's link;
    over a 50 GB/s network that is 1024 × 131072 / 50e9 = 2.684 ms, the limit and the
    estimate alike (no measured table)."""
    assert KV_TOKEN == 131072
    nbytes = transfer_bytes(1024, KV_TOKEN / 2, KV_TOKEN)
    assert nbytes == 1024 * 131072
    assert KvLink("network", 50e9, "stated").seconds(nbytes) == pytest.approx(
        (2.68435456e-3, 2.68435456e-3), rel=1e-12)


def test_serve_prices_the_transfer_from_the_link_tables():
    """In one node: NVLink at 450 GB/s a direction, the limit bytes / bandwidth and the estimate
    from the measured send/recv table, never below it; across nodes: the network bandwidth the
    profile states (H100's datasheet twin: 400 Gb/s per GPU), bytes / bandwidth."""
    near = _disagg().metrics["disagg"]["kv_transfer"]
    assert near["link"] == "nvlink4" and near["bandwidth"] == 450e9
    assert near["bytes_per_token"] == KV_TOKEN and near["mean_bytes"] == 1024 * KV_TOKEN
    assert near["limit_mean_s"] == pytest.approx(1024 * KV_TOKEN / 450e9, rel=1e-12)
    assert near["mean_s"] >= near["limit_mean_s"]
    far = _disagg(kv_link="network").metrics["disagg"]["kv_transfer"]
    assert far["link"] == "network" and far["bandwidth"] == 50e9
    assert far["mean_s"] == far["limit_mean_s"] == pytest.approx(1024 * KV_TOKEN / 50e9,
                                                                 rel=1e-12)
    assert "400 Gb/s" in far["source"]
    assert kv_link(load_gpu(GPU), Pools(prefill_workers=8, decode_workers=1)).kind == "network"


def test_ttft_holds_prefill_transfer_and_a_decode_step():
    """Every request's TTFT is at least its prefill alone + its transfer + one decode step (the
    limit, per request), and the run conserves requests and tokens."""
    report = _disagg(kv_link="network")
    m = report.metrics
    assert m["requests"] == 40 and len(report.outcome.done) == 40
    assert m["ttft_s"]["median"] >= m["limit"]["ttft_s"]["median"]
    assert m["tpot_s"]["mean"] >= m["limit"]["tpot_s"]["mean"]
    # the TTFT limit: prefill + transfer + a decode step; more than the transfer alone
    assert m["limit"]["ttft_s"]["mean"] > 1024 * KV_TOKEN / 50e9
    d = m["disagg"]
    assert d["layout"] == "1x1:1x1" and d["gpus"] == 2 and m["parallel"]["gpus"] == 2
    assert 0 < d["prefill"]["busy_fraction"] <= 1 and 0 < d["decode"]["busy_fraction"] <= 1


def test_more_prefill_workers_never_raise_ttft():
    """A prefill-bound deployment (long prompts, one prefill worker): a second prefill worker
    takes queueing out of TTFT."""
    one = _disagg(isl=4096, concurrency=16, num_requests=64).metrics["ttft_s"]["mean"]
    two = _disagg(isl=4096, concurrency=16, num_requests=64,
                  disagg="2x1:1x1").metrics["ttft_s"]["mean"]
    assert two < one


def test_aggregated_serving_untouched():
    """Without --disagg the run has no disagg block and the same figures as before (the
    aggregated path is not entered by the disagg code)."""
    m = run_serve(MODEL, gpu=GPU, concurrency=4, isl=256, osl=16, num_requests=8).metrics
    assert "disagg" not in m


@pytest.mark.skipif(not silicon.CSV.exists(), reason="../shared/external not beside this checkout")
def test_a_published_disaggregated_row():
    """TensorRT-LLM DeepSeek-R1 fp8 on H200, 1024/1024 at 288 clients, one prefill worker of
    attention DP 8 and nine decode workers of TP 8 (a test-half row): measured TTFT 1.371 s,
    TPOT 25.29 ms. The simulation within 20% on TPOT and 30% on TTFT, its limit below both."""
    from perfmodel.validate.silicon_disagg import simulate_row

    row = next(r for r in silicon.csv_rows()
               if r["id"].endswith("trtllm_fp8_disagg_1024x1024_c288_cfg303"))
    assert not silicon.is_training(row)
    got = simulate_row(row)
    assert got.concurrency == 288 and got.gpus == 80
    assert abs(got.tpot_error) < 0.20 and abs(got.ttft_error) < 0.30
    assert got.tpot_lim_s < got.tpot_s and got.ttft_lim_s < got.ttft_s


@pytest.mark.skipif(not silicon.CSV.exists(), reason="../shared/external not beside this checkout")
def test_disaggregated_rows_rules():
    """Rows without worker counts are the same measurements as rows with them (counted once);
    rows without a stated concurrency are left out; only the test half is kept."""
    from perfmodel.validate.silicon_disagg import disagg_rows, select_disagg

    rows, skipped = select_disagg(disagg_rows())
    assert rows and not any(silicon.is_training(r) for r in rows)
    assert all(r["prefill_num_workers"] and r["decode_num_workers"] for r in rows)
    assert skipped["concurrency unknown"] == 5 and skipped["duplicate measurement"] > 0


def test_plan_picks_disaggregation_where_prefill_interferes():
    """Llama-3.1-8B on H100, 8192-token prompts, 256 out, TPOT ≤ 12 ms: aggregated, each
    request's 8192-token prefill (about 0.2 s at the roofline) runs between the decode steps of
    the others, adding several ms to every TPOT at any concurrency; disaggregated, the decode
    worker's steps carry no prefill. Only disaggregation meets the target."""
    from perfmodel.plan.search import Slo, plan

    got = plan(MODEL, gpus=[GPU], precisions=[None], concurrencies=[8, 16, 32], isl=8192,
               osl=256, slo=Slo(tpot_s=0.012), max_gpus=2, tps=[1], workers=1, disagg=True)
    best = dict(got.best_by_mode)
    assert best["agg"] is None and best["disagg"] is not None
    assert got.best is best["disagg"] and got.best["gpus"] == 2
    assert "--disagg 1x1:1x1" in got.best["command"]


@pytest.mark.parametrize("args, says", [
    (["--disagg", "2x4"], "is not P x TPa : D x TPb"),
    (["--disagg", "1x1:1x1", "--tp", "2"], "--prefill-tp/--decode-tp"),
    (["--disagg", "1x1:1x1", "--decode-tp", "0"], "--decode-tp must be a whole number"),
    (["--disagg", "1x1:1x1", "--prefill-tp", "2"], "contradicts --disagg"),
    (["--disagg", "1x1:1x1", "--kv-link", "ib"], "--kv-link is one of"),
    (["--disagg", "1x1:1x1", "--osl", "1"], "at least 2 output tokens"),
    (["--disagg", "1x1:1x1", "--replicas", "2"], "--prefill-workers/--decode-workers"),
    (["--disagg", "1x1:1x1", "--lock-step"], "drop it with --disagg"),
    (["--disagg", "1x1:1x1", "--trace", "disagg-trace.csv"], "drop --trace"),
    (["--disagg", "1x1:1x1", "--speculative", "eagle", "--spec-tokens", "3", "--acceptance",
      "2"], "--speculative is not modelled with --disagg"),
    (["--disagg", "1x1:1x1", "--slo", "ttft=1s"], "--trace-in and --slo are not modelled"),
    (["--disagg", "1x1:1x1", "--prefix-len", "64"], "--disagg"),
    (["--kv-link", "nvlink"], "--kv-link is the link of a disaggregated deployment"),
    (["--router", "least-loaded"], "--router sends requests among replicas"),
])
def test_serve_argument_errors(args, says):
    result = runner.invoke(app, ["serve", MODEL, "--gpu", GPU, "--concurrency", "2",
                                 "--num-requests", "4", *args])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and says in result.output
    assert len(result.output.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_plan_disagg_needs_serve():
    result = runner.invoke(app, ["plan", MODEL, "--gpus", GPU, "--disagg", "--method",
                                 "predict", "--max-gpus", "2"])
    assert result.exit_code == 2 and "--disagg needs --method serve" in result.output
    result = runner.invoke(app, ["plan", MODEL, "--gpus", GPU, "--disagg", "--router",
                                 "round-robin", "--max-gpus", "2"])
    assert result.exit_code == 2 and "give one" in result.output


def test_serve_json_disagg_block():
    result = runner.invoke(app, ["serve", MODEL, "--gpu", GPU, "--concurrency", "4", "--isl",
                                 "512", "--osl", "16", "--num-requests", "8", "--disagg",
                                 "1x1:1x1", "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.output)["disagg"]
    assert set(d) == {"layout", "gpus", "prefill", "decode", "kv_transfer"}
    with pytest.raises(WorkloadError):
        Pools(prefill_workers=0)


def test_agg_or_disagg_pick_by_plans_rule():
    """The pick over a group's rows: the most tokens/s per GPU (C·O / (TTFT + (O − 1)·TPOT) /
    GPUs) among the rows meeting the TPOT target, by hand: agg 64 clients on 8 GPUs at 20 ms
    makes 64·100 / (0.5 + 99·0.02) / 8 = 322.6 tok/s/GPU; disagg 64 clients on 16 GPUs at 10 ms
    makes 64·100 / (0.5 + 0.99) / 16 = 268.5; at a 25 ms target agg wins, at 15 ms only disagg
    meets it."""
    from perfmodel.plan.disagg_check import _pick, tok_s_per_gpu
    from perfmodel.plan.search import Slo

    def sim(tpot, gpus):
        return silicon.SimulatedRow("x", "e", "v", "m", "q", "s", 100, 100, 64, False, 0.5, tpot,
                                    0.5, tpot, 0.0, 0.0, 0, 0.0, gpus)

    assert tok_s_per_gpu(64, 100, 0.5, 0.02, 8) == pytest.approx(64 * 100 / 2.48 / 8)
    agg = ({}, sim(0.02, 8), "agg")
    dis = ({k: "" for k in ("prefill_num_workers", "decode_num_workers", "prefill_tp_size",
                            "decode_tp_size", "prefill_attention_dp_size",
                            "decode_attention_dp_size", "prefill_moe_ep_size",
                            "decode_moe_ep_size")}, sim(0.01, 16), "disagg")
    dis[0].update(prefill_num_workers="1", prefill_tp_size="8", decode_num_workers="1",
                  decode_tp_size="8")
    got = _pick([agg, dis], Slo(tpot_s=0.025), measured=True)
    assert got["mode"] == "agg"
    assert got["best_tok_s_per_gpu"]["agg"] == pytest.approx(322.58, rel=1e-4)
    assert got["best_tok_s_per_gpu"]["disagg"] == pytest.approx(268.46, rel=1e-4)
    assert _pick([agg, dis], Slo(tpot_s=0.015), measured=False)["mode"] == "disagg"
