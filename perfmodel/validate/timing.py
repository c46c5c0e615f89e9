"""Timing the torch-cudagraph engine: one CUDA graph per forward; kernels from the profiler.

The whole prefill (or decode step) is captured in one `torch.cuda.CUDAGraph` after a warm-up on a
side stream, and replayed with CUDA events around each replay and the L2 cache flushed before it
(as triton.testing.do_bench does). The per-op kernel times come from one more eager forward under
`torch.profiler`, each kernel charged to the innermost named region that launched it: kernel
durations are the same eagerly as in the graph, the gaps between kernels are not.
"""

from __future__ import annotations

import datetime
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable

import torch

from perfmodel.errors import WorkloadError
from perfmodel.model.spec import ModelSpec
from perfmodel.cost.precision import Precision
from perfmodel.calibrate.timing import flushed_event_times
from perfmodel.validate.engine import Engine, build_engine, free_memory
from perfmodel.validate.measurement import (ALL_OPS, PHASES, Measurement, attribute_kernels,
                                            median, replay_count)

L2_FLUSH_BYTES = 256 * 2**20
WARMUP_REPLAYS = 3
WARMUP_SECONDS = 0.25
# 2: fp8/int8 activations quantized by the precision's act_scheme, named in each record (1: fp8
# per tensor, int8 per token, unnamed; measurement.UNRECORDED_SCHEMES)
METHOD = "torch-cudagraph 2: graph replay median, L2 flushed, eager profile for per-op kernels"


def measure_prefill(engine: Engine, batch: int, tokens: int) -> Measurement:
    """TTFT without tokenizer or scheduler: B sequences of T tokens into empty caches."""
    cache = engine.new_cache(batch, tokens)
    ids = _token_ids(engine, (batch, tokens))
    return _measure(engine, "prefill", batch, tokens, lambda: engine.prefill(ids, cache))


def measure_decode(engine: Engine, batch: int, context: int) -> Measurement:
    """One ITL step: one new token for each of B sequences whose cache holds C tokens."""
    cache = engine.new_cache(batch, context, random=True)
    ids = _token_ids(engine, (batch,))
    return _measure(engine, "decode", batch, context,
                    lambda: engine.decode(ids, cache, context))


def sweep(spec: ModelSpec, precision: Precision, points: list[tuple[str, int, int]],
          device: str = "cuda", on_skip: Callable[[str], None] = print,
          on_result: Callable[[Measurement], None] | None = None) -> list[Measurement]:
    """Measure each (phase, batch, tokens) point on one engine; a shape that runs out of device
    memory is skipped with a note to on_skip, after freeing what it held."""
    for phase, _, _ in points:
        if phase not in PHASES:
            raise WorkloadError(f"unknown phase {phase!r}; use prefill or decode")
    engine = build_engine(spec, precision, max_batch=max(b for _, b, _ in points),
                          max_context=max(t for _, _, t in points), device=device)
    results = []
    for phase, batch, tokens in points:
        measure = measure_prefill if phase == "prefill" else measure_decode
        note = None
        try:
            results.append(measure(engine, batch, tokens))
        except (torch.cuda.OutOfMemoryError, RuntimeError) as error:
            if not is_oom(error):
                raise
            note = f"skipped {phase} batch={batch} tokens={tokens}: out of device memory"
        engine.clear_masks()
        free_memory()
        if note:
            on_skip(note)
        elif on_result is not None:
            on_result(results[-1])
    return results


def environment(device: str = "cuda") -> dict[str, str]:
    """Where a measurement was taken: GPU name, torch and CUDA versions, date, method."""
    name = torch.cuda.get_device_name(device) if torch.cuda.is_available() else str(device)
    return {"device_name": name, "torch": torch.__version__, "cuda": str(torch.version.cuda),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "engine": "torch-cudagraph", "method": METHOD}


def is_oom(error: BaseException) -> bool:
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def _token_ids(engine: Engine, shape: tuple[int, ...]) -> torch.Tensor:
    return torch.randint(0, engine.spec.vocab_size, shape, device=engine.device)


def _measure(engine: Engine, phase: str, batch: int, tokens: int,
             forward: Callable[[], torch.Tensor]) -> Measurement:
    if not engine.device.startswith("cuda") or not torch.cuda.is_available():
        raise WorkloadError("measuring the engine needs a CUDA GPU; run it on the GPU machine")
    if not engine.graphable:
        raise WorkloadError("torch._grouped_mm does not run here for this dtype, and the "
                            "per-expert loop that replaces it cannot be captured in a CUDA graph")
    samples = graph_samples(forward, engine.device)
    free_memory()
    op_seconds, op_kernels = attribute_kernels(profile_trace(forward, engine.device), ALL_OPS)
    return Measurement(phase=phase, batch=batch, tokens=tokens, seconds=median(samples),
                       samples=samples, op_seconds=op_seconds, kernels=sum(op_kernels.values()),
                       op_kernels=op_kernels)


def capture(forward: Callable[[], object], device: str) -> "torch.cuda.CUDAGraph":
    """forward captured in one CUDA graph, after a warm-up on a side stream."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(2):
            forward()
    torch.cuda.current_stream(device).wait_stream(side)
    torch.cuda.synchronize(device)
    free_memory()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        forward()
    return graph


def graph_samples(forward: Callable[[], object], device: str) -> tuple[float, ...]:
    """Capture forward in one CUDA graph and time its replays."""
    graph = capture(forward, device)
    try:
        return time_replays(graph.replay, device)
    finally:
        del graph


def time_replays(run: Callable[[], object], device: str) -> tuple[float, ...]:
    """Seconds of each timed call of run: warm-up, then replay_count(first) calls, each with the
    L2 cache flushed before it and CUDA events around it."""
    flush = torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device)
    began, warm = time.perf_counter(), 0
    while warm < WARMUP_REPLAYS or (time.perf_counter() - began < WARMUP_SECONDS and warm < 100):
        run()
        torch.cuda.synchronize(device)
        warm += 1
    first = flushed_event_times(run, flush, 1)[0]
    return flushed_event_times(run, flush, replay_count(first))


def profile_trace(forward: Callable[[], object], device: str) -> list[dict]:
    """The Chrome-trace events of one eager forward (after a warm-up) under torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    forward()
    torch.cuda.synchronize(device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Profiler clears events.*")
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            forward()
            torch.cuda.synchronize(device)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as handle:
            return json.load(handle).get("traceEvents", [])
