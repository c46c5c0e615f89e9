"""A custom-style all-reduce, timed as `calibrate-gpu --gpus N` times NCCL's: the stand-in for
the engines' own one-shot / two-shot kernels.

vLLM, SGLang and TensorRT-LLM all-reduce small messages with their own kernels over peer
memory instead of NCCL (facts and sources: cost/custom_allreduce.py). Their code is not here;
PyTorch's symmetric memory has kernels of the same algorithm family, which this times:
- one-shot (`torch.ops.symm_mem.one_shot_all_reduce_out`): every rank reads all n buffers over
  NVLink and reduces them itself: (n−1)·S bytes in per rank, one barrier;
- two-shot (`two_shot_all_reduce_out`, else in-place `two_shot_all_reduce_`): a reduce-scatter
  then an all-gather through the peers' buffers: 2(n−1)/n·S bytes, two barriers.
Both run on a bf16 buffer from `symm_mem.empty`, exchanged by `symm_mem.rendezvous`, sizes
1 KiB … 64 MiB (the largest the engines take a custom path for: vLLM's symmetric-memory
all-reduce at 2 GPUs on Hopper), R copies captured in one CUDA graph and timed per replay as
collectives.py does (same R and replay count on every rank, the slowest rank's median).
custom_all_reduce is the per-size minimum of the two: each engine switches between them near
their crossover.

NVLink multicast stays off (collectives.SAFE_ENV, TORCH_SYMM_MEM_DISABLE_MULTICAST=1 in every
worker); no multimem operation is ever called. Where symmetric memory is unavailable the worker
returns the reason and the command says so in one line, keeping the NCCL tables.
"""

from __future__ import annotations

import os
import time
from typing import Any

from perfmodel.calibrate.collectives import (KIB, SAFE_ENV, _time_point, init_group, launch,
                                             slowest_median)

SIZES = tuple(KIB * 4 ** i for i in range(9))  # 1 KiB … 64 MiB
QUICK_SIZES = (KIB, 64 * KIB, 4 << 20)
ALGORITHMS = ("one_shot_all_reduce", "two_shot_all_reduce")
METHOD = ("perfmodel calibrate-gpu --gpus (custom all-reduce, method 1): PyTorch symmetric-memory "
          "one-shot and two-shot all-reduce (torch.ops.symm_mem, NVLink multicast off), bf16, R "
          "copies per CUDA graph replay, slowest rank per sample, median; custom_all_reduce is "
          "their per-size minimum. A stand-in for the engines' own custom all-reduce kernels "
          "(same algorithm family, not their code)")


def custom_tables(points: list[tuple[str, int, float]]) -> dict[str, list[list[float]]]:
    """{one_shot_all_reduce, two_shot_all_reduce, custom_all_reduce: [[bytes, seconds]...]}
    from (algorithm, bytes, seconds); custom_all_reduce is the faster of the two per size."""
    tables: dict[str, list[list[float]]] = {}
    best: dict[int, float] = {}
    for name, nbytes, seconds in sorted(points, key=lambda p: (ALGORITHMS.index(p[0]), p[1])):
        tables.setdefault(name, []).append([int(nbytes), float(f"{seconds:.4g}")])
        best[nbytes] = min(best.get(nbytes, seconds), seconds)
    if best:
        tables["custom_all_reduce"] = [[b, float(f"{s:.4g}")] for b, s in sorted(best.items())]
    return tables


def _symm_calls(nbytes: int, buffer, out, group: str) -> dict[str, tuple[Any, Any]]:
    """{algorithm: (zero-argument call, the tensor its sum lands in)} on the first nbytes of the
    symmetric buffer (two-shot in place where torch has no out= variant)."""
    import torch

    n = nbytes // 2
    x, y = buffer[:n], out[:n]
    ops = torch.ops.symm_mem
    if hasattr(ops, "two_shot_all_reduce_out"):
        two = (lambda: ops.two_shot_all_reduce_out(x, "sum", group, y), y)
    else:
        two = (lambda: ops.two_shot_all_reduce_(x, "sum", group), x)
    return {"one_shot_all_reduce": (lambda: ops.one_shot_all_reduce_out(x, "sum", group, y), y),
            "two_shot_all_reduce": two}


def _open_buffer(largest: int, device: str):
    """(symmetric bf16 buffer, plain output buffer, group name), or raises with the reason."""
    import torch
    import torch.distributed as dist
    import torch.distributed._symmetric_memory as symm_mem

    if os.environ.get("TORCH_SYMM_MEM_DISABLE_MULTICAST") != "1":
        raise RuntimeError("TORCH_SYMM_MEM_DISABLE_MULTICAST is not 1; refusing to run")
    group = dist.group.WORLD.group_name
    enable = getattr(symm_mem, "enable_symm_mem_for_group", None)
    if enable is not None:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            enable(group)
    buffer = symm_mem.empty(largest // 2, dtype=torch.bfloat16, device=device)
    symm_mem.rendezvous(buffer, group)
    return buffer, torch.empty_like(buffer), group


def custom_worker(rank: int, world: int, sizes: list[int], quick: bool) -> dict[str, Any]:
    """One rank: {"rows": [[algorithm, bytes, [seconds per sample on every rank]]...]} or
    {"error": reason} where symmetric memory does not run here."""
    import torch
    import torch.distributed as dist

    os.environ.update(SAFE_ENV)
    device = init_group(rank, world, "nccl")
    torch.manual_seed(rank)
    rows: list[list[Any]] = []
    try:
        reason = None
        try:
            buffer, out, group = _open_buffer(max(sizes), device)
        except Exception as exc:  # noqa: BLE001 - any failure means "unavailable here"
            reason = f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0][:200]}"
        reasons: list[Any] = [None] * world
        dist.all_gather_object(reasons, reason)  # every rank stops if one cannot run it
        if any(reasons):
            return {"error": next(r for r in reasons if r)}
        for nbytes in sizes:
            for name, (call, _) in _symm_calls(nbytes, buffer, out, group).items():
                buffer.normal_()  # fresh random data, never zeros
                dist.barrier()
                samples = _time_point(call, "all_reduce", nbytes, device, quick)
                gathered: list[Any] = [None] * world
                dist.all_gather_object(gathered, samples)
                rows.append([name, nbytes, gathered])
    finally:
        dist.destroy_process_group()
    return {"rows": rows, "backend": _backend(device)}


def _backend(device: str) -> str:
    try:
        import torch.distributed._symmetric_memory as symm_mem

        return str(symm_mem.get_backend(device))
    except Exception:  # noqa: BLE001 - older torch has no get_backend
        return "unknown"


def measure_custom_allreduce(gpus: int, quick: bool = False) -> dict[str, Any]:
    """{"tables": {...}, "method", "run_time_s", "backend"} or {"unavailable": reason}."""
    started = time.perf_counter()
    sizes = list(QUICK_SIZES if quick else SIZES)
    from perfmodel.calibrate.device import CalibrationError

    try:
        results = launch(custom_worker, gpus, (sizes, quick), timeout_s=300)
    except CalibrationError as exc:
        return {"unavailable": str(exc)}
    errors = [r["error"] for r in results if "error" in r]
    if errors:
        return {"unavailable": errors[0]}
    rows = results[0]["rows"]
    points = [(name, nbytes, slowest_median(per_rank)) for name, nbytes, per_rank in rows]
    return {"tables": custom_tables(points), "method": METHOD, "backend": results[0]["backend"],
            "run_time_s": time.perf_counter() - started}


def check_sum(rank: int, world: int, nbytes: int) -> dict[str, Any]:
    """Worker for the GPU test: {algorithm: ‖result − sum‖ / ‖sum‖} of one-shot and two-shot
    against the float64 sum of every rank's random bf16 buffer (each rank draws all ranks'
    data from the same seeds); the output is poisoned with NaN first."""
    import torch
    import torch.distributed as dist

    device = init_group(rank, world, "nccl")
    try:
        buffer, out, group = _open_buffer(nbytes, device)
        n = nbytes // 2
        inputs = [torch.randn(n, generator=torch.Generator().manual_seed(r))
                  .to(torch.bfloat16).to(device) for r in range(world)]
        want = torch.stack(inputs).double().sum(0)
        errors = {}
        for name, (call, result) in _symm_calls(nbytes, buffer, out, group).items():
            buffer[:n].copy_(inputs[rank])
            out.fill_(float("nan"))  # poison: every element must be written
            dist.barrier()
            call()
            torch.cuda.synchronize()
            errors[name] = float(((result.double() - want).norm() / want.norm()).item())
    finally:
        dist.destroy_process_group()
    return errors
