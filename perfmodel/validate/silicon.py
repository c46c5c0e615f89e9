"""Real serving measurements (../shared/external/aiconfigurator-silicon) beside our predictions.

Single-GPU, aggregated-serving rows of the models perfmodel bundles. `served` compares a row with
the static-batch prediction (at concurrency c an engine decodes at most min(c, what fits)
sequences per step; TTFT, which includes queueing, cannot beat one sequence's prefill).
`simulate_row` runs the serving simulation (perfmodel.serve) on the row's workload instead; the
rows are split into a training and a test half by sha1 of their id (`is_training`).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

from perfmodel.fitted import MIN_REQUESTS, REQUESTS_PER_CLIENT
from perfmodel.serve.engine_profile import PUBLISHED
from perfmodel.shared_data import shared_dir
from perfmodel.api import run_predict
from perfmodel.stats import quantile

CSV = shared_dir() / "external" / "aiconfigurator-silicon" / "silicon-h100-h200.csv"
MODELS = {"meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Llama-3.1-8B",
          "nvidia/Llama-3.1-8B-Instruct-FP8": "meta-llama/Llama-3.1-8B",
          "Qwen/Qwen3-32B": "Qwen/Qwen3-32B", "meta-llama/Llama-3.1-70B": "meta-llama/Llama-3.1-70B",
          "openai/gpt-oss-120b": "openai/gpt-oss-120b"}
# the multi-GPU rows add DeepSeek-R1 (DeepSeek-V3's architecture and fp8 checkpoint format)
BUILDS = {**MODELS, "deepseek-ai/DeepSeek-R1": "deepseek-ai/DeepSeek-V3",
          "deepseek-ai/DeepSeek-V3": "deepseek-ai/DeepSeek-V3"}
PRECISION = {"": "bf16", "fp8": "fp8", "fp8_block": "fp8", "nvfp4": None}  # None: the config's
# Models bundled after the host overheads were fitted (2026-11-27 11:21 UTC): no constant saw
# their rows, so every one of them, both halves, tests the simulation (`validate-serving --rows
# held-out`, docs/serving.md "Models no constant has seen"). They stay out of BUILDS so that
# neither the figures above nor a refit take them in.
HELD_OUT = {"Qwen/Qwen3-235B-A22B-FP8": "Qwen/Qwen3-235B-A22B-FP8",
            "MiniMaxAI/MiniMax-M2.5": "MiniMaxAI/MiniMax-M2.5"}


@dataclass(frozen=True)
class Served:
    """One serving row (seconds) and our prediction for it."""

    engine: str
    model: str
    quant: str
    system: str
    tpot_s: float
    ttft_s: float
    itl_limit_s: float
    ttft_limit_s: float
    itl_estimate_s: float | None


def csv_rows(path: Path | None = None) -> list[dict[str, str]]:
    """Every row of the serving CSV (none where ../shared is absent)."""
    path = path or CSV
    if not path.exists():
        return []
    with path.open() as src:
        return list(csv.DictReader(src))


def rows(path: Path | None = None) -> list[dict[str, str]]:
    return [r for r in csv_rows(path)
            if (r["mode"], r["tp_size"], r["pp_size"]) == ("agg", "1", "1")
            and r["model_path"] in MODELS and r["gemm_quant_mode"] in PRECISION]


def served(row: dict[str, str], gpus: dict[str, str], engine: str | None = None) -> Served:
    """Predict one row on gpus[row's system]: the ITL at the concurrency capped by memory,
    the TTFT of one sequence."""
    model = MODELS[row["model_path"]]
    prec = PRECISION[row["gemm_quant_mode"]]
    kw = dict(gpu=gpus[row["system"]], precision=prec, input_len=int(row["isl"]), engine=engine,
              kv_dtype="fp8" if prec == "fp8" else None)  # as serve_kwargs: fp8 KV cache
    conc, osl = int(row["batch_size"]), int(row["osl"])
    fit = run_predict(model, batch=conc, output_len=osl, **kw).prediction.memory.max_batch
    pred = run_predict(model, batch=max(1, min(conc, fit)), output_len=osl, **kw).prediction
    first = run_predict(model, batch=1, output_len=2, **kw).prediction
    return Served(row["backend"], model, row["gemm_quant_mode"] or "bf16", row["system"],
                  float(row["silicon_tpot_ms"]) / 1e3, float(row["silicon_ttft_ms"]) / 1e3,
                  pred.limit["itl_s"], first.limit["ttft_s"],
                  pred.estimate["itl_s"] if pred.estimate else None)


# --- serving simulation against the rows (perfmodel validate-serving) ------------------------

MEASURED_GPUS = {"h100_sxm": "h100-sxm-measured", "h200_sxm": "h200-measured"}


def is_training(row: dict[str, str]) -> bool:
    """The fixed split: a row trains (may fit a constant) iff sha1 of its id is even."""
    return int(hashlib.sha1(row["id"].encode()).hexdigest(), 16) % 2 == 0


def serving_rows(path: Path | None = None) -> list[dict[str, str]]:
    """Single-GPU aggregated rows: tp = pp = 1, no attention DP, no expert parallelism."""
    return [r for r in rows(path) if r["attention_dp_size"] in ("", "1")
            and r["moe_ep_size"] in ("", "0", "1")]


def num_requests_for(concurrency: int, osl: int) -> int:
    """Requests simulated per row: max(4·C, 40), cut to at most 2 M output tokens (never below
    2·C) so that the longest rows stay seconds. The rows do not say how many requests the
    benchmark sent; 4·C (the cold first wave a quarter of the requests) was chosen over 10·C
    on the training half (TTFT median |error| 38% against 57%; perfmodel/fitted.py)."""
    return max(min(max(REQUESTS_PER_CLIENT * concurrency, MIN_REQUESTS), 2_000_000 // osl),
               2 * concurrency)


@dataclass(frozen=True)
class SimulatedRow:
    """One serving row, measured, and the simulation's estimate and limit (seconds)."""

    id: str
    engine: str
    version: str
    model: str
    quant: str
    system: str
    isl: int
    osl: int
    concurrency: int
    training: bool
    ttft_s: float
    tpot_s: float
    ttft_est_s: float
    tpot_est_s: float
    ttft_lim_s: float
    tpot_lim_s: float
    preemptions: int
    prefill_load: float  # GPU share the measured request rate's cold prefills need at roofline
    gpus: int = 1

    @property
    def prefix_cached(self) -> bool:
        """The measured rate of requests needs more than the whole GPU at its roofline just to
        prefill their prompts from scratch: the benchmark reused a cached prefix."""
        return self.prefill_load > 1

    @property
    def tpot_error(self) -> float:
        return self.tpot_est_s / self.tpot_s - 1

    @property
    def ttft_error(self) -> float:
        return self.ttft_est_s / self.ttft_s - 1


def parallel_of(row: dict[str, str]) -> dict[str, int]:
    """run_serve's tp, ep, dp for a row: tp_size, moe_ep_size (0 or empty: 1) and
    attention_dp_size (empty: 1). The concurrency is batch_size per attention-DP rank."""
    ep = row["moe_ep_size"]
    return {"tp": int(row["tp_size"]), "ep": int(ep) if ep not in ("", "0") else 1,
            "dp": int(row["attention_dp_size"] or 1)}


def serve_kwargs(row: dict[str, str], gpus: dict[str, str] = MEASURED_GPUS) -> dict:
    """run_serve arguments for one row (docs/serving.md). fp8 rows run fp8 weights, activations
    and KV cache. TensorRT-LLM without chunked context must fit a whole prompt beside the
    decoders in max_num_tokens; the rows do not say what the benchmark set, so a row whose
    prompt + concurrency exceeds the 8192 default gets exactly that budget."""
    prec, par = PRECISION[row["gemm_quant_mode"]], parallel_of(row)
    conc, isl = int(row["batch_size"]) * par["dp"], int(row["isl"])
    # the rows are of releases older than any measured engine profile (configs/engines): the
    # presets fitted to them, whatever profile serve would take for the GPU today
    kw = dict(gpu=gpus[row["system"]], engine=f"{row['backend']}@{PUBLISHED}", concurrency=conc,
              isl=isl, **par,
              osl=int(row["osl"]), num_requests=num_requests_for(conc, int(row["osl"])),
              precision=prec,
              kv_dtype="fp8" if prec == "fp8" else None)
    if row["backend"] == "trtllm" and isl + conc > 8192:
        kw["max_num_batched_tokens"] = isl + conc  # a whole context beside every decoder
    return kw


def prefill_load(row: dict[str, str], schedulers: int, prefill_s: float,
                 gpus: dict[str, str] = MEASURED_GPUS) -> float:
    """The share of a scheduler's time that prefilling the row's measured request rate from
    scratch takes, each prompt alone at the roofline (prefill_s): above 1 the row is
    prefix-cached (SimulatedRow.prefix_cached)."""
    ttft, tpot = float(row["silicon_ttft_ms"]) / 1e3, float(row["silicon_tpot_ms"]) / 1e3
    rate = serve_kwargs(row, gpus)["concurrency"] / (ttft + (int(row["osl"]) - 1) * tpot)
    return rate / schedulers * prefill_s


def simulate_row(row: dict[str, str], host_overhead_s: float | None = None,
                 gpus: dict[str, str] = MEASURED_GPUS) -> SimulatedRow:
    """Serve one row's workload with its engine and compare with its measurement."""
    from perfmodel.serve import run_serve

    knobs = {} if host_overhead_s is None else {"host_overhead_s": host_overhead_s}
    kw = serve_kwargs(row, gpus)
    model = BUILDS.get(row["model_path"]) or HELD_OUT[row["model_path"]]
    report = run_serve(model, **kw, **knobs)
    r, isl, osl = report.result, int(row["isl"]), int(row["osl"])
    load = prefill_load(row, r.parallel.schedulers,
                        report.step_cost.step(0, 0, [(0, isl)], 1)[1], gpus)
    return SimulatedRow(row["id"], row["backend"], row["backend_version"] or "?",
                        model, row["gemm_quant_mode"] or "bf16",
                        row["system"], isl, osl, kw["concurrency"],
                        is_training(row), float(row["silicon_ttft_ms"]) / 1e3,
                        float(row["silicon_tpot_ms"]) / 1e3, r.ttft_s.mean, r.tpot_s.mean,
                        r.limit.ttft_s.mean, r.limit.tpot_s.mean, r.preemptions, load,
                        r.parallel.gpus)


def error_summary(results: list[SimulatedRow]) -> dict[tuple[str, str], dict]:
    """Median and p90 |error| of TPOT and TTFT per (engine, half), and over all engines; how
    many rows have a limit above their measurement. Prefix-cached rows are left out."""
    groups: dict[tuple[str, str], list[SimulatedRow]] = {}
    for r in (r for r in results if not r.prefix_cached):
        half = "train" if r.training else "test"
        for engine in (r.engine, "all"):
            groups.setdefault((engine, half), []).append(r)
    out = {}
    for key in sorted(groups, key=lambda k: (k[0] == "all", k[0], k[1] != "test")):
        rs = groups[key]
        tpot, ttft = [abs(r.tpot_error) for r in rs], [abs(r.ttft_error) for r in rs]
        out[key] = {"rows": len(rs), "tpot_median": quantile(tpot, 0.5), "tpot_p90": quantile(tpot, 0.9),
                    "ttft_median": quantile(ttft, 0.5), "ttft_p90": quantile(ttft, 0.9),
                    "limit_above": sum(r.tpot_lim_s > r.tpot_s or r.ttft_lim_s > r.ttft_s
                                       for r in rs)}
    return out


def _overhead_needed(row: dict[str, str], probe_s: float) -> tuple[str, float] | None:
    """(engine, the host overhead that makes the row's simulated TPOT its measured one), from
    the TPOT residual at zero overhead over d TPOT / d overhead; None where it cannot tell."""
    from perfmodel.errors import PerfmodelError

    try:
        zero, probe = simulate_row(row, 0.0), simulate_row(row, probe_s)
    except PerfmodelError:
        return None
    slope = (probe.tpot_est_s - zero.tpot_est_s) / probe_s
    if slope <= 0 or zero.prefix_cached:
        return None
    return row["backend"], (zero.tpot_s - zero.tpot_est_s) / slope


def fit_host_overhead(train: list[dict[str, str]], probe_s: float = 1e-3,
                      workers: int = 1, on_row=None) -> dict[str, float]:
    """Per engine, the host overhead per step that makes the median training row's TPOT match:
    each row's TPOT residual at zero overhead over d TPOT / d overhead (from a probe run),
    median over the engine's training rows, floored at 0. Training rows only; `workers`
    processes share the rows; on_row(done, total) after each row."""
    from concurrent.futures import ProcessPoolExecutor
    from contextlib import nullcontext
    from functools import partial

    need, found = partial(_overhead_needed, probe_s=probe_s), []
    with ProcessPoolExecutor(workers) if workers > 1 else nullcontext() as pool:
        for value in (pool.map(need, train, chunksize=4) if pool else map(need, train)):
            found.append(value)
            if on_row is not None:
                on_row(len(found), len(train))
    per_engine: dict[str, list[float]] = {}
    for engine, value in filter(None, found):
        per_engine.setdefault(engine, []).append(value)
    return {engine: max(0.0, quantile(values, 0.5)) for engine, values in per_engine.items()}


def validate_serving(on_row=None) -> tuple[list[SimulatedRow], int]:
    """Simulate every single-GPU aggregated row; (results, rows skipped as unsupported).
    on_row(done, total) after each row."""
    from perfmodel.errors import PerfmodelError

    results, skipped = [], 0
    todo = serving_rows()
    for row in todo:
        try:
            results.append(simulate_row(row))
        except PerfmodelError:
            skipped += 1
        if on_row is not None:
            on_row(len(results) + skipped, len(todo))
    return results, skipped
