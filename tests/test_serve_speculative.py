"""serve --speculative: the verification step against the step cost of the same tokens as
prefill chunks, k = 0 against today's simulation, TPOT against hand-summed steps, the drafter's
weights against a hand count, the crossover's direction, and the argument errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from perfmodel.cli import app
from perfmodel.serve import run_serve
from perfmodel.serve.metrics import metrics
from perfmodel.serve.requests import make_arrivals
from perfmodel.serve.simulate import simulate
from perfmodel.serve.speculative import Speculation, SpeculativeStep, crossover
from perfmodel.serve.step_cost import StepCost

MODEL, GPU = "meta-llama/Llama-3.1-8B", "h100-sxm-measured"
runner = CliRunner()


def _padded_everywhere(cost: StepCost) -> StepCost:
    """The same model, GPU and tables with CUDA-graph padding on mixed steps too, so a step of
    prefill chunks pads as a decode step does."""
    return StepCost(_spec(), _prec(), cost.gpu, cost.estimator,
                    max_tokens=cost.ms[-1], max_seqs=cost.bs[-1],
                    capture_sizes=tuple(cost.capture), pad_mixed=True,
                    host_overhead_s=cost.host_overhead_s)


def _spec():
    from perfmodel.model.architectures import model_spec
    from perfmodel.model.source import load_model_config

    cfg = load_model_config(MODEL)
    return model_spec(cfg.config, cfg.where)


def _prec():
    from perfmodel.api import resolve_precision
    from perfmodel.hardware.gpu import load_gpu
    from perfmodel.model.source import load_model_config

    return resolve_precision(load_model_config(MODEL).config, None, None, None, load_gpu(GPU))


@pytest.mark.parametrize("batch, context, k", [(1, 1000, 3), (8, 513, 1), (64, 2048, 4)])
def test_verification_step_is_k_plus_1_tokens_per_sequence(batch, context, k):
    """With no drafter (ngram) the step of B decoders at context L each, k drafts, is the step
    of B prefill chunks of k + 1 new tokens over L − 1 cached ones, sampling all (k + 1)·B
    rows: matmuls at M = (k + 1)·B, attention of k + 1 queries over each cache."""
    report = run_serve(MODEL, gpu=GPU, concurrency=1, num_requests=1, isl=64, osl=4)
    cost = _padded_everywhere(report.step_cost)
    spec = SpeculativeStep(cost, None, Speculation("ngram", k, 1.5))
    got = spec.step(batch, batch * context, (), batch)
    want = cost.step(0, 0, [(context - 1, k + 1)] * batch, (k + 1) * batch)
    assert got == pytest.approx(want, rel=1e-12)
    assert got[0] > cost.step(batch, batch * context, (), batch)[0]  # more work than plain


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_k0_a1_is_the_plain_simulation(engine):
    """k = 0 drafts and a = 1 (the checker refuses it from users; the machinery takes it):
    every step and every metric equal today's simulation's."""
    report = run_serve(MODEL, gpu=GPU, engine=engine, concurrency=8, num_requests=40,
                       isl=700, osl=90)
    cost, facts, kv = report.step_cost, report.facts, report.kv
    arrivals = make_arrivals(concurrency=None, request_rate=30.0, isl=700, osl=90,
                             num_requests=60, lengths=None, seed=1)
    plain = simulate(arrivals, facts, kv.blocks, kv.block_size, cost)
    spec = simulate(arrivals, facts, kv.blocks, kv.block_size,
                    SpeculativeStep(cost, None, Speculation("ngram", 0, 1.0)))
    assert spec.itl == plain.itl and spec.trace == plain.trace
    assert metrics(spec, 1) == metrics(plain, 1)


def test_tpot_is_step_time_over_acceptance_for_one_sequence():
    """One request alone, a = 2, O − 1 = 64 outputs after the first: 32 verification steps,
    the j-th at context L = I + 1 + 2j; TPOT = their sum / 64 = mean step / a."""
    isl, osl, a = 300, 65, 2.0
    report = run_serve(MODEL, gpu=GPU, concurrency=1, num_requests=1, isl=isl, osl=osl,
                       speculative="eagle", spec_tokens=3, acceptance=a)
    cost = report.step_cost
    steps = [cost.step(1, isl + 1 + 2 * j, (), 1)[0] for j in range(32)]
    assert report.metrics["tpot_s"]["mean"] == pytest.approx(sum(steps) / (osl - 1))
    assert report.metrics["tpot_s"]["mean"] == pytest.approx(sum(steps) / 32 / a)
    assert report.metrics["steps"] == 1 + 32


def test_eagle_head_weights_and_kv_are_one_llama_layer():
    """Llama-3.1-8B's EAGLE head: one decoder layer of D 4096, 32 query and 8 KV heads of 128,
    F 14336: 4096·(4096 + 2·1024) + 4096·4096 + 3·4096·14336 + 2·4096 = 218,112,000 weights,
    bf16; its KV, 2·8·128 values a token, joins the pool's bytes per token."""
    plain = run_serve(MODEL, gpu=GPU, concurrency=4, num_requests=8, isl=256, osl=16)
    spec = run_serve(MODEL, gpu=GPU, concurrency=4, num_requests=8, isl=256, osl=16,
                     speculative="eagle", spec_tokens=2, acceptance=2.0)
    layer = 4096 * (4096 + 2 * 1024) + 4096 * 4096 + 3 * 4096 * 14336 + 2 * 4096
    assert layer == 218_112_000
    assert spec.metrics["speculative"]["drafter_weights_bytes"] == 2 * layer
    assert spec.kv.bytes_per_token == plain.kv.bytes_per_token + 2 * 8 * 128 * 2
    assert spec.kv.blocks < plain.kv.blocks


def test_mtp_head_of_deepseek_v3_is_a_moe_layer():
    """DeepSeek-V3's MTP module (num_nextn_predict_layers 1) is a MoE layer: the drafter
    step costs more than no drafter, and its weights are one routed layer's (256 experts)."""
    report = run_serve("deepseek-ai/DeepSeek-V3", gpu="h200-measured", tp=8, concurrency=8,
                       num_requests=16, isl=512, osl=16, speculative="mtp", spec_tokens=1,
                       acceptance=1.8)
    cost = report.step_cost
    assert cost.draft is not None
    bare = SpeculativeStep(cost.target, None, cost.spec)
    assert cost.step(8, 8 * 600, (), 8)[0] > bare.step(8, 8 * 600, (), 8)[0]
    # one MoE layer of 256 experts of 3·7168·2048 fp8 weights over 8 GPUs ≈ 1.4 GB a GPU
    assert report.metrics["speculative"]["drafter_weights_bytes"] == pytest.approx(
        256 * 3 * 7168 * 2048 / 8, rel=0.1)


def test_crossover_moves_to_smaller_batches_as_acceptance_falls():
    """The speedup a·t_plain/t_spec is below 1 from a smaller batch when fewer drafts are
    accepted; with every draft accepted it pays at batch 1."""
    found = []
    for a in (1.3, 1.6, 2.0):
        report = run_serve(MODEL, gpu=GPU, concurrency=1, num_requests=1, isl=1024, osl=8,
                           speculative="ngram", spec_tokens=3, acceptance=a)
        found.append(report.metrics["speculative"]["crossover_batch"])
        first = report.metrics["speculative"]["per_batch"][0]
        assert first["batch"] == 1 and first["speedup"] == pytest.approx(
            a * first["plain_step_s"] / first["step_s"])
    assert None not in found[:2] and found[0] < found[1]
    assert found[2] is None or found[2] > found[1]
    full = run_serve(MODEL, gpu=GPU, concurrency=1, num_requests=1, isl=1024, osl=8,
                     speculative="ngram", spec_tokens=3, acceptance=4.0)
    assert full.metrics["speculative"]["per_batch"][0]["speedup"] > 1


def test_crossover_reports_every_run_below_one():
    report = run_serve(MODEL, gpu=GPU, concurrency=1, num_requests=1, isl=1024, osl=8)
    spec = SpeculativeStep(report.step_cost, None, Speculation("ngram", 3, 1.4))
    got = crossover(report.step_cost, spec, 1028.0, 300)
    below = got["below_one"]
    assert below and below[0][0] == got["crossover_batch"]
    rows = {r["batch"]: r["speedup"] for r in got["per_batch"]}
    assert rows[got["crossover_batch"]] < 1 <= rows.get(got["crossover_batch"] - 1, 1)


@pytest.mark.parametrize("args, words", [
    (["--speculative", "eagle", "--spec-tokens", "0", "--acceptance", "1"], ["--spec-tokens"]),
    (["--speculative", "eagle", "--spec-tokens", "2", "--acceptance", "3.5"], ["--acceptance"]),
    (["--speculative", "eagle", "--spec-tokens", "2", "--acceptance", "0.9"], ["--acceptance"]),
    (["--speculative", "medusa", "--spec-tokens", "2", "--acceptance", "2"], ["medusa"]),
    (["--speculative", "mtp", "--spec-tokens", "2", "--acceptance", "2"], ["no MTP layers"]),
    (["--speculative", "eagle", "--spec-tokens", "2"], ["--acceptance"]),
    (["--spec-tokens", "2"], ["--speculative"]),
    (["--speculative", "draft-model", "--spec-tokens", "2", "--acceptance", "2"],
     ["--draft-model"]),
])
def test_argument_errors_are_one_line(args, words):
    result = runner.invoke(app, ["serve", MODEL, "--gpu", GPU, "--concurrency", "2", *args])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for word in words:
        assert word in lines[0]


def test_cli_json_and_text():
    args = ["serve", MODEL, "--gpu", GPU, "--concurrency", "4", "--num-requests", "8",
            "--speculative", "draft-model", "--draft-model", "meta-llama/Llama-3.2-1B",
            "--spec-tokens", "4", "--acceptance", "2.6"]
    doc = json.loads(runner.invoke(app, [*args, "--json"]).output)
    spec = doc["speculative"]
    assert (spec["method"], spec["spec_tokens"], spec["acceptance"]) == ("draft-model", 4, 2.6)
    assert "Llama-3.2-1B" in spec["drafter"] and spec["per_batch"][0]["batch"] == 1
    text = runner.invoke(app, args).output
    assert "speculative draft-model" in text and "speedup" in text


def _spec_run(tmp_path, k=3, method="eagle", draft="/tmp/models/head"):
    """A runs folder as calibrate-engine writes it, with a speculative server log: two metrics
    lines inside the point's window and one an hour before it."""
    folder = tmp_path / "eagle-run"
    (folder / "results").mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"model": MODEL, "gpu": "NVIDIA H200"}))
    log = [
        "(EngineCore pid=1) INFO 12-04 05:00:00 [core.py:93] Initializing a V1 LLM engine "
        "(v0.26.0) with config: model='/tmp/models/x', speculative_config=SpeculativeConfig("
        f"method='{method}', model='{draft}', num_spec_tokens={k}), tokenizer='x'",
        "(APIServer pid=2) INFO 12-04 04:00:00 [metrics.py:99] SpecDecoding metrics: Mean "
        "acceptance length: 3.00, Accepted: 999 tokens, Drafted: 999 tokens",
    ] + [f"(APIServer pid=2) INFO 12-04 05:10:{s} [metrics.py:99] SpecDecoding metrics: Mean "
         f"acceptance length: {m}, Accepted throughput: 1.00 tokens/s, Drafted throughput: "
         f"1.00 tokens/s, Accepted: {a} tokens, Drafted: {d} tokens, Per-position acceptance "
         "rate: 0.5, 0.3, 0.2, Avg Draft acceptance rate: 40.0%"
         for s, m, a, d in (("10", "2.20", 600, 1500), ("20", "2.33", 400, 900))]
    (folder / "server.log").write_text("\n".join(log))
    doc = {"date": "20261204-051025", "duration": 30.0, "completed": 8, "failed": 0,
           "max_concurrency": 1, "request_rate": "inf", "total_input_tokens": 8 * 512,
           "total_output_tokens": 8 * 256, "mean_ttft_ms": 20.0, "median_ttft_ms": 20.0,
           "mean_tpot_ms": 4.0, "mean_itl_ms": 7.8, "output_throughput": 200.0}
    (folder / "results" / "p.json").write_text(json.dumps(doc))
    return folder


def test_spec_runs_read_the_acceptance_of_the_point_and_price_it(tmp_path):
    """k = 3; inside the point 1,000 accepted of 2,400 drafted tokens = 800 drafts: vLLM's
    mean acceptance 1 + 1000/800 = 2.25 (the line an hour before is not counted); serve runs
    the point at that a."""
    from perfmodel.validate.spec_runs import compare, spec_log

    folder = _spec_run(tmp_path)
    log = spec_log((folder / "server.log").read_text())
    assert (log.method, log.draft, log.k, len(log.lines)) == ("eagle", "/tmp/models/head", 3, 3)
    (point,) = compare(folder, GPU)
    assert point.acceptance == pytest.approx(2.25) and point.excluded is None
    want = run_serve(MODEL, gpu=GPU, concurrency=1, num_requests=8, isl=512, osl=256,
                     stagger=False, speculative="eagle", spec_tokens=3, acceptance=2.25)
    assert point.tpot_pred_s == pytest.approx(want.metrics["tpot_s"]["mean"])
    assert (point.tpot_s, point.itl_s) == (4e-3, 7.8e-3)


def test_a_log_without_speculation_is_not_a_spec_run():
    from perfmodel.validate.spec_runs import spec_log

    assert spec_log("INFO Initializing a V1 LLM engine (v0.26.0) with config: "
                    "speculative_config=None, tokenizer='x'") is None


def test_spec_runs_of_a_draft_model_need_its_config_here(tmp_path):
    """tools/vllm_h200.sh stage 6 serves a Llama-3.2-1B-shaped draft from /tmp/draft on the
    GPU machine: without --draft-model the comparison says so in one line (exit 2), with it
    the point is priced with that draft."""
    from perfmodel.validate.spec_runs import compare, main

    folder = _spec_run(tmp_path, method="draft_model", draft="/nonexistent/draft")
    assert main([str(folder), "--gpu", GPU]) == 2
    (point,) = compare(folder, GPU, draft_model="meta-llama/Llama-3.2-1B")
    assert point.method == "draft-model" and point.tpot_pred_s > 0


def test_draft_overhead_is_host_time_per_drafter_pass():
    """--draft-overhead h adds k·h to a decode step with a model drafter (its first pass and
    k − 1 more), h to an ngram step (one lookup), and nothing to the limit."""
    report = run_serve(MODEL, gpu=GPU, concurrency=1, num_requests=1, isl=256, osl=8,
                       speculative="eagle", spec_tokens=3, acceptance=2.0)
    cost, h = report.step_cost, 2e-3
    timed = SpeculativeStep(cost.target, cost.draft, Speculation("eagle", 3, 2.0, None, h))
    for b in (1, 16):
        plain, more = cost.step(b, b * 300, (), b), timed.step(b, b * 300, (), b)
        assert more[0] - plain[0] == pytest.approx(3 * h) and more[1] == plain[1]
    ngram = SpeculativeStep(cost.target, None, Speculation("ngram", 3, 2.0))
    ngram_h = SpeculativeStep(cost.target, None, Speculation("ngram", 3, 2.0, None, h))
    assert ngram_h.step(4, 1200, (), 4)[0] - ngram.step(4, 1200, (), 4)[0] == pytest.approx(h)
    assert ngram_h.step(0, 0, [(0, 256)], 1) == ngram.step(0, 0, [(0, 256)], 1)


@pytest.mark.parametrize("args", [["--draft-overhead", "2ms"],
                                  ["--speculative", "ngram", "--spec-tokens", "2",
                                   "--acceptance", "2", "--draft-overhead", "2s"]])
def test_draft_overhead_errors(args):
    result = runner.invoke(app, ["serve", MODEL, "--gpu", GPU, "--concurrency", "2", *args])
    assert result.exit_code == 2 and result.output.startswith("error: --draft-overhead")


def test_vllm_runs_draft_model_speculation_synchronously():
    """vLLM 0.26 turns async scheduling off for draft-model speculation: the profile's
    synchronous host time goes on every step and drafter pass, with a warning; EAGLE keeps
    the asynchronous 0 ms; a user's --host-overhead / --draft-overhead win."""
    from perfmodel.serve import run_serve

    kw = dict(gpu="h200-measured", engine="vllm", concurrency=4, isl=512, osl=32,
              num_requests=8, spec_tokens=3, acceptance=2.0)
    draft = run_serve("meta-llama/Llama-3.1-8B", speculative="draft-model",
                      draft_model="meta-llama/Llama-3.2-1B", **kw)
    assert draft.metrics["host_overhead_s"] == pytest.approx(0.00123)
    assert draft.metrics["speculative"]["draft_overhead_s"] == pytest.approx(0.00123)
    assert any("async scheduling off" in w for w in draft.warnings)
    eagle = run_serve("meta-llama/Llama-3.1-8B", speculative="eagle", **kw)
    assert eagle.metrics["host_overhead_s"] == 0.0
    assert not any("async scheduling off" in w for w in eagle.warnings)
    given = run_serve("meta-llama/Llama-3.1-8B", speculative="draft-model",
                      draft_model="meta-llama/Llama-3.2-1B", draft_overhead_s=0.0,
                      host_overhead_s=0.0005, **kw)
    assert given.metrics["host_overhead_s"] == 0.0005
    assert given.metrics["speculative"]["draft_overhead_s"] == 0.0
