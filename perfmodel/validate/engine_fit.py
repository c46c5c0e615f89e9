"""Compare `serve` with an engine's own benchmark runs, and fit an engine profile on them.

compare(): every BenchRun (validate/engine_runs.py) simulated with the run's workload and the
settings its server log states (memory fraction), under an engine spec or profile; ratios of
predicted to measured mean TTFT, mean TPOT and output tokens/s, and the limit's TPOT.

fit(): the two constants of an engine profile, on the training half only (sha1 of the result's
path even), from the points with one client (concurrency 1), where nothing queues and a step is
one sequence's decode:
- request_latency_s: the median over those points of measured − simulated median TTFT with no
  latency (the median, so that a request the benchmark repeated, whose prompt the prefix cache
  then holds, does not pull it);
- host_overhead_s: the per-step host time left visible: with one client every decode step
  carries one token of one request, so each point asks for measured − simulated mean TPOT
  with none; the median of those, at least 0.
Every other point, and the whole test half, only checks them.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from perfmodel.fitted import ENGINE_PROFILE_RULE
from perfmodel.validate.engine_runs import BenchRun, read_runs

if TYPE_CHECKING:
    from perfmodel.serve.result import ServeResult


@dataclass(frozen=True)
class Compared:
    """One run against its simulation: ratios predicted / measured (None where not simulated)."""

    run: BenchRun
    ttft: float
    tpot: float
    tok_s: float
    limit_tpot: float
    predicted: ServeResult
    ttft_p90: float | None = None  # predicted / measured p90 TTFT (None: not measured)
    tpot_median: float | None = None  # predicted / measured median TPOT

    @property
    def errors(self) -> tuple[float, float, float]:
        return abs(self.ttft - 1), abs(self.tpot - 1), abs(self.tok_s - 1)


def gpu_for(runs: Iterable[BenchRun], gpu: str | None) -> str:
    """The GPU profile to price runs with: --gpu, else the bundled measured profile of the
    device the runs' run.json names (NVIDIA H200 -> h200-measured)."""
    if gpu:
        return gpu
    from perfmodel.hardware.gpu import bundled_names, load_gpu
    from perfmodel.validate.engine_runs import RunsError

    names = {r.device for r in runs if r.device}
    for name in bundled_names():
        spec = load_gpu(name)
        if spec.kind == "measured" and spec.extra.get("environment", {}).get(
                "device_name") in names:
            return name
    raise RunsError("the runs do not say which GPU they ran on (run.json 'gpu'); pass --gpu")


def simulate(run: BenchRun, gpu: str, engine: str = "vllm", engine_profile: str | None = None,
             lock_step: bool = True, **knobs) -> ServeResult:
    """serve's result for this run's workload and server settings."""
    from perfmodel.serve import run_serve

    load = ({"concurrency": run.concurrency} if run.request_rate is None
            else {"request_rate": run.request_rate, "burstiness": run.burstiness})
    if run.range_ratio:
        load["range_ratio"] = run.range_ratio
    memory = run.settings.gpu_memory_utilization
    prefix = ({"prefix_len": run.prefix_len, "prefix_caching": run.settings.prefix_caching
               is not False} if run.prefix_len else {})  # a prompt = prefix + the rest
    return run_serve(run.model, gpu=gpu, engine=engine, engine_profile=engine_profile,
                     isl=run.isl - run.prefix_len, osl=run.osl, num_requests=run.num_requests,
                     **prefix,
                     precision=run.precision, stagger=not lock_step,
                     **({"gpu_memory_utilization": memory} if memory else {}),
                     **load, **knobs).result


def compare(runs: Iterable[BenchRun], gpu: str, engine: str = "vllm",
            engine_profile: str | None = None, lock_step: bool = True,
            **knobs) -> tuple[Compared, ...]:
    out = []
    for run in runs:
        m = simulate(run, gpu, engine, engine_profile, lock_step, **knobs)
        out.append(Compared(run, m.ttft_s.mean / run.ttft_s, m.tpot_s.mean / run.tpot_s,
                            m.throughput.output_tok_s / run.output_tok_s,
                            m.limit.tpot_s.mean / run.tpot_s, m,
                            _ratio(m.ttft_s.p90, run.p90_ttft_s),
                            _ratio(m.tpot_s.median, run.median_tpot_s)))
    return tuple(out)


def _ratio(predicted: float | None, measured: float | None) -> float | None:
    return None if predicted is None or not measured else predicted / measured


def summary(rows: Iterable[Compared]) -> dict:
    """Median and p90 of |error| in TTFT, TPOT and tokens/s, and the limit above measured."""
    rows = [r for r in rows if r.run.excluded is None]
    if not rows:
        return {"runs": 0}

    def stats(i: int) -> dict:
        errors = sorted(r.errors[i] for r in rows)
        return {"median": statistics.median(errors),
                "p90": errors[min(len(errors) - 1, int(0.9 * len(errors)))]}

    return {"runs": len(rows), "ttft": stats(0), "tpot": stats(1), "tok_s": stats(2),
            "limit_above": sum(r.limit_tpot > 1 for r in rows)}


@dataclass(frozen=True)
class Fit:
    host_overhead_s: float
    request_latency_s: float
    points: tuple[str, ...]  # the training results the fit read


def fit(runs: Iterable[BenchRun], gpu: str, engine: str = "vllm@published",
        engine_profile: str | None = None) -> Fit:
    """The module docstring's rule, on the training half's one-client points, simulated under
    `engine` or a provisional profile (its settings and tables, its two constants at 0)."""
    from perfmodel.validate.engine_runs import RunsError

    points = [r for r in runs if r.half == "train" and r.excluded is None
              and r.concurrency == 1 and r.request_rate is None]
    if not points:
        raise RunsError("no training point with one client (concurrency 1) to fit on; add "
                        "ISL:OSL:1:N points")
    latency = statistics.median(
        r.median_ttft_s - simulate(r, gpu, engine, engine_profile,
                                   host_overhead_s=0.0).ttft_s.median for r in points)
    host = statistics.median(
        r.tpot_s - simulate(r, gpu, engine, engine_profile,
                            host_overhead_s=0.0).tpot_s.mean for r in points)
    return Fit(max(host, 0.0), max(latency, 0.0), tuple(r.id for r in points))



def _common(values: Iterable, what: str):
    """The one value every run's log states (None where none states it)."""
    found = {v for v in values if v is not None}
    if len(found) > 1:
        from perfmodel.validate.engine_runs import RunsError
        raise RunsError(f"the runs' server logs disagree on {what} ({sorted(map(str, found))}); "
                        "fit one engine configuration per --runs folder")
    return found.pop() if found else None


def profile_document(runs: tuple[BenchRun, ...], folder: Path, gpu: str) -> dict:
    """The engine profile YAML's content (serve/engine_profile.py) fitted on these runs."""
    import json

    from perfmodel.hardware.gpu import load_gpu
    from perfmodel.serve.engine_profile import gpu_key

    spec = load_gpu(gpu)
    kept = [r for r in runs if r.excluded is None]
    s = [r.settings for r in runs]
    versions = _common((x.version for x in s), "the engine version")
    kernels = folder / "engine-kernels.json"
    kernel_doc = json.loads(kernels.read_text()) if kernels.is_file() else {}
    settings = {
        "max_num_batched_tokens": _common((x.max_num_batched_tokens for x in s), "the budget"),
        "memory_fraction": _common((x.gpu_memory_utilization for x in s), "the memory fraction"),
        "capture_sizes": list(_common((x.capture_sizes or None for x in s), "graph sizes") or ()),
        "chunked_prefill": True, "block_size": 16,
        "attention_backend": _common((x.attention_backend for x in s), "attention"),
        "moe_backends": sorted({x.moe_backend for x in s if x.moe_backend}),
        "async_scheduling": _common((x.async_scheduling for x in s), "async scheduling"),
        "prefix_caching": _common((x.prefix_caching for x in s), "prefix caching"),
        "cudagraph_mode": _common((x.cudagraph_mode for x in s), "the CUDA-graph mode"),
        "kv_cache_tokens": {r.label: r.settings.kv_cache_tokens for r in runs},
    }
    doc = {
        "engine": "vllm", "version": versions, "gpu": gpu_key(spec),
        "device_name": _common((r.device for r in runs), "the GPU"),
        "date": max((r.date for r in runs if r.date), default=""),
        "source": "perfmodel calibrate-engine: fitted on the training half of the runs",
        "settings": settings, "host_overhead_s": 0.0, "request_latency_s": 0.0,
        "tables": kernel_doc.get("tables"),
        "kernels": {k: kernel_doc.get(k) for k in ("engine", "version", "device_name", "date",
                                                   "torch", "method", "notes")}
        if kernel_doc else None,
        "runs": folder.as_posix()}
    provisional = _provisional(doc)
    try:
        result = fit(runs, gpu, engine="vllm", engine_profile=provisional)
    finally:
        Path(provisional).unlink()
    doc.update({
        "host_overhead_s": round(result.host_overhead_s, 7),
        "request_latency_s": round(result.request_latency_s, 6),
        "fit": {"gpu_profile": spec.name,
                "rule": ENGINE_PROFILE_RULE,
                "train": list(result.points),
                "test": sorted(r.id for r in kept if r.half == "test"),
                "left_out": {r.id: r.excluded for r in runs if r.excluded}}})
    order = ("engine", "version", "gpu", "device_name", "date", "source", "settings",
             "host_overhead_s", "request_latency_s", "fit", "tables", "kernels", "runs")
    return {k: doc[k] for k in order}


def _provisional(doc: dict) -> str:
    """doc (constants at 0) as a temporary profile file for the fit's simulations."""
    import tempfile

    import yaml

    handle = tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="perfmodel-fit-",
                                         delete=False)
    with handle:
        yaml.safe_dump(doc, handle)
    return handle.name


def write_profile(folder: Path | str, out: Path | str, gpu: str) -> str:
    """Fit and write the engine profile of the runs in folder; a line saying what was written."""
    import yaml

    folder = Path(folder)
    runs = read_runs(folder)
    doc = profile_document(runs, folder, gpu)
    text = yaml.safe_dump(doc, sort_keys=False, width=100, default_flow_style=None)
    Path(out).write_text("# Written by `perfmodel calibrate-engine --profile`; see "
                         "docs/serving.md, 'Engine profiles'.\n" + text, encoding="utf-8")
    return (f"wrote {out}: {doc['engine']} {doc['version']} on {doc['device_name']}, "
            f"host overhead {doc['host_overhead_s'] * 1e3:.3g} ms/step, request latency "
            f"{doc['request_latency_s'] * 1e3:.3g} ms, from {len(runs)} results")
