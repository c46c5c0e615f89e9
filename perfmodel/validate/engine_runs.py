"""Read an engine's own benchmark runs: result JSONs, the server log and calibrate-engine's run.json.

A run folder holds what `perfmodel calibrate-engine` writes (run.json, server.log, results/*.json)
or what a user ran by hand: any folder with `vllm bench serve --save-result` JSON files (found
recursively) and, beside them, the server's log (`*.log` whose text holds vLLM's start-up
lines). Each result becomes a BenchRun: its workload (prompt and output tokens per request,
clients, request rate, requests) and its measured means; the log gives the effective settings
(ServerSettings), which the simulation then uses instead of the engine preset's defaults.

A result is left out of the figures, with the reason, when the benchmark says requests failed
or when the server log shows a Triton JIT compile during the point (vLLM 0.26 warns "Triton
kernel JIT compilation during inference"; the point's time then holds the compile).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from perfmodel.errors import PerfmodelError


class RunsError(PerfmodelError):
    """A runs folder that holds no benchmark result, or one that cannot be read."""


@dataclass(frozen=True)
class ServerSettings:
    """The settings a vLLM server log states (None where it does not say)."""

    version: str | None = None
    max_num_batched_tokens: int | None = None
    max_num_seqs: int | None = None
    kv_cache_tokens: int | None = None
    gpu_memory_utilization: float | None = None
    attention_backend: str | None = None
    moe_backend: str | None = None
    async_scheduling: bool | None = None
    prefix_caching: bool | None = None
    quantization: str | None = None
    kv_cache_dtype: str | None = None
    capture_sizes: tuple[int, ...] = ()
    cudagraph_mode: str | None = None
    weights_gib: float | None = None
    jit_compiles: tuple[dt.datetime, ...] = field(default=(), repr=False)
    hit_rates: tuple[tuple[dt.datetime, float], ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class BenchRun:
    """One benchmark point as measured: workload, means in seconds and tokens/s, provenance."""

    id: str
    label: str
    model: str | None
    precision: str | None
    isl: int
    osl: int
    concurrency: int | None
    request_rate: float | None
    num_requests: int
    ttft_s: float
    tpot_s: float
    output_tok_s: float
    median_ttft_s: float
    settings: ServerSettings
    excluded: str | None = None  # why this point is left out of the figures
    device: str | None = None  # the GPU's name, as run.json's nvidia-smi line gives it
    # prefix-cache hits: (fraction of prompt tokens, where it comes from): the server's counters
    # read around the point (calibrate-engine records them), else the highest rate the log
    # states during the point (vLLM's rate over its last 1,000 requests); None: neither
    prefix_hits: tuple[float, str] | None = None
    date: str | None = None  # the run's date (run.json)
    p90_ttft_s: float | None = None
    median_tpot_s: float | None = None
    burstiness: float = 1.0  # the Gamma shape of the arrivals (open loop; 1: Poisson)
    range_ratio: float = 0.0  # lengths drawn over [L·(1 − r), L·(1 + r)] (calibrate-engine's)
    prefix_len: int = 0  # prompt tokens every request of the point shares (calibrate-engine's)

    @property
    def half(self) -> str:
        """train when sha1(id) is even (the fit may read it), else test."""
        return "train" if int(hashlib.sha1(self.id.encode()).hexdigest(), 16) % 2 == 0 \
            else "test"


_PATTERNS = {
    "version": r"Initializing a V1 LLM engine \(v([^)]+)\)",
    "max_num_batched_tokens": r"max_num_batched_tokens=(\d+)",
    "kv_cache_tokens": r"GPU KV cache size: ([\d,]+) tokens",
    "gpu_memory_utilization": r"Desired GPU memory utilization is \(([\d.]+)",
    "attention_backend": r"Using (\w+) attention backend",
    "moe_backend": r"Using (\w+) (?:Unquantized )?MoE backend",
    "quantization": r"quantization=(\w+)",
    "kv_cache_dtype": r"kv_cache_dtype=(\w+)",
    "cudagraph_mode": r"'cudagraph_mode': <CUDAGraphMode\.(\w+)",
    "weights_gib": r"Model loading took ([\d.]+) GiB",
    "max_num_seqs": r"max_num_seqs['\"]?[:=] ?(\d+)",
}
_JIT = re.compile(r"(\d\d-\d\d \d\d:\d\d:\d\d) \[jit_monitor\.py:\d+\] Triton kernel JIT")
_HITS = re.compile(r"(\d\d-\d\d \d\d:\d\d:\d\d) \[loggers\.py:\d+\].*Prefix cache hit rate: "
                   r"([\d.]+)%")


def server_settings(text: str, year: int = 2026) -> ServerSettings:
    """The settings a vLLM server log states (module docstring)."""
    found: dict = {}
    for key, pattern in _PATTERNS.items():
        match = re.search(pattern, text)
        if match:
            found[key] = match.group(1)
    sizes = re.search(r"'cudagraph_capture_sizes': \[([\d, ]+)\]", text)
    numbers = {k: int(found[k].replace(",", "")) for k in
               ("max_num_batched_tokens", "kv_cache_tokens", "max_num_seqs") if k in found}
    quant = found.get("quantization")
    return ServerSettings(
        version=found.get("version"), **numbers,
        gpu_memory_utilization=float(found["gpu_memory_utilization"])
        if "gpu_memory_utilization" in found else None,
        attention_backend=found.get("attention_backend"), moe_backend=found.get("moe_backend"),
        async_scheduling=True if "Asynchronous scheduling is enabled" in text
        else False if "Asynchronous scheduling is disabled" in text else None,
        prefix_caching=True if "enable_prefix_caching=True" in text
        else False if "enable_prefix_caching=False" in text else None,
        quantization=None if quant in (None, "None") else quant,
        kv_cache_dtype=found.get("kv_cache_dtype"),
        capture_sizes=tuple(int(s) for s in sizes.group(1).split(",")) if sizes else (),
        cudagraph_mode=found.get("cudagraph_mode"),
        weights_gib=float(found["weights_gib"]) if "weights_gib" in found else None,
        jit_compiles=tuple(_when(m, year) for m in _JIT.findall(text)),
        hit_rates=tuple((_when(m, year), float(r) / 100) for m, r in _HITS.findall(text)))


def _when(stamp: str, year: int) -> dt.datetime:
    return dt.datetime.strptime(f"{year}-{stamp}", "%Y-%m-%d %H:%M:%S")


def read_runs(folder: Path | str) -> tuple[BenchRun, ...]:
    """Every benchmark result under folder (recursively), with its folder's server settings."""
    root = Path(folder)
    if not root.is_dir():
        what = "is not a folder" if root.exists() else "no such folder"
        raise RunsError(f"--runs {root}: {what}; point it at a folder of `vllm bench "
                        "serve --save-result` JSON files and the server logs")
    runs = []
    for path in sorted(root.rglob("*.json")):
        if path.name == "run.json" or path.parent.name == "model":
            continue
        doc = _load(path)
        if not isinstance(doc, dict) or "mean_tpot_ms" not in doc:
            continue
        runs.append(_bench_run(path, doc, root))
    if not runs:
        raise RunsError(f"--runs {root}: no `vllm bench serve --save-result` JSON (with "
                        "mean_tpot_ms) found under it")
    return tuple(runs)


def _load(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError):
        return None


def _run_folder(path: Path, root: Path) -> Path:
    """The nearest folder above a result that holds run.json or a server log."""
    for parent in path.parents:
        if (parent / "run.json").exists() or any(parent.glob("*.log")):
            return parent
        if parent == root:
            break
    return path.parent


def _bench_run(path: Path, doc: dict, root: Path) -> BenchRun:
    folder = _run_folder(path, root)
    manifest = _load(folder / "run.json") or {}
    logs = [p for p in sorted(folder.glob("*.log")) if p.name != "bench.log"]
    text = "\n".join(p.read_text(errors="replace") for p in logs)
    settings = server_settings(text)
    n = int(doc.get("completed") or 0)
    isl = round(doc["total_input_tokens"] / n) if n else 0
    osl = round(doc["total_output_tokens"] / n) if n else 0
    rate = doc.get("request_rate")
    rate = None if rate in (None, "inf") or math.isinf(float(rate)) else float(rate)
    serve_args = " ".join(manifest.get("serve_args", []))
    precision = "fp8" if "fp8" in serve_args or settings.quantization == "fp8" else None
    excluded = None
    if doc.get("failed"):
        excluded = f"{doc['failed']} requests failed"
    elif _during(settings.jit_compiles, doc):
        excluded = "a Triton JIT compile during the point (server log)"
    label = manifest.get("label") or folder.name
    hits = None
    if doc.get("prefix_cache_queries"):
        hits = (doc.get("prefix_cache_hits", 0) / doc["prefix_cache_queries"], "counters")
    else:
        rates = [r for when, r in settings.hit_rates if _during((when,), doc, after_s=10)]
        hits = (max(rates), "log") if rates else None
    rel = path.relative_to(root).as_posix()
    return BenchRun(id=rel, label=label, model=manifest.get("model"), precision=precision,
                    isl=isl, osl=osl, concurrency=doc.get("max_concurrency"),
                    request_rate=rate, num_requests=n, ttft_s=doc["mean_ttft_ms"] / 1e3,
                    tpot_s=doc["mean_tpot_ms"] / 1e3, output_tok_s=doc["output_throughput"],
                    median_ttft_s=doc.get("median_ttft_ms", doc["mean_ttft_ms"]) / 1e3,
                    settings=settings,
                    excluded=excluded,
                    device=str(manifest.get("gpu") or "").split(",")[0].strip() or None,
                    date=manifest.get("date"), prefix_hits=hits,
                    p90_ttft_s=_ms(doc.get("p90_ttft_ms")),
                    median_tpot_s=_ms(doc.get("median_tpot_ms")),
                    burstiness=float(doc.get("burstiness") or 1.0),
                    range_ratio=float(doc.get("random_range_ratio") or 0.0),
                    prefix_len=_prefix_len(path, doc))


def _ms(value) -> float | None:
    return None if value is None else float(value) / 1e3


def _prefix_len(path: Path, doc: dict) -> int:
    """The point's shared prefix (--random-prefix-len): the result's random_prefix_len, which
    calibrate-engine adds to it, else the `.pP` option in the point's tag that names the file
    (perfmodel/calibrate/engine_bench.py BenchPoint.tag), else 0."""
    value = doc.get("random_prefix_len")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return int(value)
    match = re.search(r"\.p(\d+)(?=\.|$)", path.stem)
    return int(match.group(1)) if match else 0


def _during(moments: tuple[dt.datetime, ...], doc: dict, after_s: float = 0.0) -> bool:
    """A moment inside the point's run: [date − duration − 5 s, date + after_s] (vllm bench's
    `date` is its end, %Y%m%d-%H%M%S; the server logs its rates every 10 s)."""
    try:
        end = dt.datetime.strptime(doc["date"], "%Y%m%d-%H%M%S")
    except (KeyError, ValueError):
        return False
    start = end - dt.timedelta(seconds=float(doc.get("duration", 0)) + 5)
    end += dt.timedelta(seconds=after_s)
    return any(start <= m <= end for m in moments)
