"""`perfmodel validate --tp N`: the torch-cudagraph engine sharded over N GPUs, Megatron style.

One worker process per GPU (torch.distributed, NCCL; multicast off, calibrate/collectives.py).
Each builds the engine of the model one GPU holds (cost/parallel.shard: N/tp query heads, K/tp
KV heads, column-parallel QKV and gate/up, row-parallel o_proj and down, V/tp vocabulary) and
sets its hooks: an all-reduce after the attention output, after the MLP (or MoE), after the
vocab-parallel embedding, and an all-gather of the logits. A forward is captured in one CUDA
graph and replayed; the warm-up and replay counts are decided on rank 0 and broadcast, so every
rank runs the same collectives. A sample is the slowest rank's replay; the record keeps the
median, and per-op kernel times of rank 0 from one eager forward under the profiler.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

COMM_OPS = ("embed_all_reduce", "attn_all_reduce", "mlp_all_reduce", "moe_all_reduce",
            "lm_head_all_gather")
WARMUP_REPLAYS = 3


def _hooks(engine, world: int) -> None:
    """All-reduce (sum) after each row-parallel block and the embedding; logits all-gathered."""
    import torch
    import torch.distributed as dist

    def reduce(y: torch.Tensor) -> torch.Tensor:
        dist.all_reduce(y)
        return y

    def gather(logits: torch.Tensor) -> torch.Tensor:
        out = torch.empty((world * logits.shape[0], *logits.shape[1:]), dtype=logits.dtype, device=logits.device)
        dist.all_gather_into_tensor(out, logits.contiguous())
        return out

    engine.reduce, engine.gather = reduce, gather
    for _, attention, mlp in engine.layers:
        attention.reduce = mlp.reduce = reduce


def _lockstep_seconds(forward: Callable[[], object], device: str, world: int) -> tuple[float,
                                                                                    list[float]]:
    """(median over replays of the slowest rank, every rank's median) of one graphed forward."""
    import torch
    import torch.distributed as dist

    from perfmodel.calibrate.collectives import slowest_median
    from perfmodel.calibrate.timing import flushed_event_times
    from perfmodel.validate.measurement import replay_count
    from perfmodel.validate.timing import L2_FLUSH_BYTES, capture

    if not device.startswith("cuda"):  # the CPU dry run (gloo): eager, wall clock
        import time

        samples = []
        for _ in range(3):
            dist.barrier()
            began = time.perf_counter()
            forward()
            samples.append(time.perf_counter() - began)
        gathered: list[Any] = [None] * world
        dist.all_gather_object(gathered, samples)
        return slowest_median(gathered), [sorted(s)[1] for s in gathered]
    graph = capture(forward, device)
    flush = torch.empty(L2_FLUSH_BYTES // 4, dtype=torch.int32, device=device)
    for _ in range(WARMUP_REPLAYS):
        graph.replay()
    first = flushed_event_times(graph.replay, flush, 1)[0]
    count = [min(replay_count(first), 30)]
    dist.broadcast_object_list(count, src=0)
    samples = list(flushed_event_times(graph.replay, flush, count[0]))
    gathered: list[Any] = [None] * world
    dist.all_gather_object(gathered, samples)
    del graph
    return slowest_median(gathered), [sorted(s)[len(s) // 2] for s in gathered]


def _measure_point(engine, phase: str, batch: int, tokens: int, world: int,
                   ops: bool) -> dict[str, Any]:
    import torch

    from perfmodel.validate.measurement import ALL_OPS, attribute_kernels
    from perfmodel.validate.timing import profile_trace

    torch.manual_seed(1)
    if phase == "prefill":
        cache = engine.new_cache(batch, tokens)
        ids = torch.randint(0, engine.spec.vocab_size, (batch, tokens), device=engine.device)
        forward = lambda: engine.prefill(ids, cache)  # noqa: E731
    else:
        cache = engine.new_cache(batch, tokens, random=True)
        ids = torch.randint(0, engine.spec.vocab_size, (batch,), device=engine.device)
        forward = lambda: engine.decode(ids, cache, tokens)  # noqa: E731
    seconds, per_rank = _lockstep_seconds(forward, engine.device, world)
    record = {"phase": phase, "batch": batch, "tokens": tokens, "seconds": seconds,
              "rank_seconds": per_rank, "tp": world}
    if ops and engine.device.startswith("cuda"):
        op_seconds, op_kernels = attribute_kernels(profile_trace(forward, engine.device),
                                                   ALL_OPS + COMM_OPS)
        record.update(op_seconds=op_seconds, op_kernels=op_kernels,
                      kernels=sum(op_kernels.values()))
    return record  # the cache goes with this frame


def validate_worker(rank: int, world: int, jobs: list[dict[str, Any]], ops: bool,
                    backend: str = "nccl") -> list[dict[str, Any]]:
    """One rank: measure every job's points; records (rank 0's are the ones kept)."""
    import torch
    import torch.distributed as dist

    from perfmodel.calibrate.collectives import init_group
    from perfmodel.cost.parallel import Parallel, shard
    from perfmodel.cost.precision import preset
    from perfmodel.model.architectures import model_spec
    from perfmodel.model.source import load_model_config
    from perfmodel.validate.engine import build_engine, free_memory
    from perfmodel.validate.timing import environment, is_oom

    device = init_group(rank, world, backend)
    records = []
    try:
        for job in jobs:
            cfg = load_model_config(job["model"])
            prec = preset(job["precision"])
            local = shard(model_spec(cfg.config), Parallel(tp=world))
            points = [tuple(p) for p in job["points"]]
            torch.manual_seed(0)
            engine = build_engine(local, prec, max_batch=max(p[1] for p in points),
                                  max_context=max(p[2] for p in points), device=device)
            _hooks(engine, world)
            header = {"model": cfg.model_id, "precision": prec.name, "kv_dtype": prec.base_dtype,
                      **environment(device), "engine": "torch-cudagraph-tp"}
            for phase, batch, tokens in points:
                try:
                    records.append({**header, **_measure_point(engine, phase, batch, tokens,
                                                               world, ops)})
                except RuntimeError as error:
                    if not is_oom(error):
                        raise
                    records.append({**header, "phase": phase, "batch": batch,
                                    "tokens": tokens, "skipped": "out of device memory"})
                engine.clear_masks()
                free_memory()
                dist.barrier()
            del engine
            free_memory()
    finally:
        dist.destroy_process_group()
    return records


def measure_tp(jobs: list[dict[str, Any]], tp: int, *, ops: bool = True,
               out: Path | None = None, backend: str = "nccl") -> list[dict[str, Any]]:
    """Measure jobs [{model, precision, points: [[phase, batch, tokens], ...]}] at TP = tp;
    records (JSON lines appended to out, if given)."""
    import json

    from perfmodel.calibrate.collectives import gpu_count_error, launch, visible_gpus
    from perfmodel.errors import PerfmodelError

    if backend == "nccl" and (tp < 2 or tp > visible_gpus()):
        raise PerfmodelError(gpu_count_error("--tp", tp, visible_gpus())
                             + " (predict --tp needs none)")
    records = launch(validate_worker, tp, (jobs, ops, backend), timeout_s=300 * len(jobs))[0]
    if out is not None:
        with open(out, "a") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")
    return [r for r in records if "seconds" in r]  # out-of-memory points are noted in out


def points_for(batches: list[int], lengths: list[int], max_prefill_tokens: int
               ) -> list[list[Any]]:
    """Prefill (B, I) where B·I ≤ max_prefill_tokens, and decode (B, C = I), as validate runs."""
    points = []
    for batch in batches:
        for length in lengths:
            if batch * length <= max_prefill_tokens:
                points.append(["prefill", batch, length])
            points.append(["decode", batch, length])
    return points
