"""NCCL collectives through torch.distributed, as engines run them: `calibrate-gpu --gpus N`.

The command starts one worker process per GPU (torch.multiprocessing, NCCL backend). Each
worker times all-reduce, all-gather, reduce-scatter, all-to-all and send/recv over 1 KiB … 1 GiB
(bf16 buffers; bytes as nccl-tests counts them: one rank's buffer, the gathered output of an
all-gather, the input of a reduce-scatter). R copies of a collective are captured in ONE CUDA
graph, as a decode step captures its all-reduces, and each replay is timed between CUDA events;
R and the replay count depend on the size alone, so every rank runs the same iterations.
send/recv (pairs 0↔1, 2↔3, …, both directions at once) is timed eagerly, as pipeline-parallel
engines send outside their graphs. A sample is the slowest rank's; the table keeps the median.

NVLink multicast stays off in every worker (NCCL_NVLS_ENABLE=0, TORCH_SYMM_MEM_DISABLE_MULTICAST=1,
NVSHMEM_DISABLE_NVLS=1): on shared hosts it can take the GPUs out of service. The reducers are
pure and CPU-tested; the launch runs on CPU with the gloo backend (eager, wall clock).
The custom-style all-reduce timed beside these (the engines' one-/two-shot kernels' stand-in)
is calibrate/symm_allreduce.py, launched the same way.
"""

from __future__ import annotations

import datetime
import json
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from perfmodel.hardware.interconnect import COLLECTIVES

SAFE_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1",
            "NVSHMEM_DISABLE_NVLS": "1"}
KIB = 1024
SIZES = tuple(KIB * 4 ** i for i in range(11))  # 1 KiB … 1 GiB
QUICK_SIZES = tuple(KIB * 16 ** i for i in range(6))  # 1 KiB … 1 GiB, fewer points
METHOD = ("perfmodel calibrate-gpu --gpus (method 1): NCCL via torch.distributed, bf16, R copies per "
          "CUDA graph replay (send/recv eager), slowest rank per sample, median")
ELEMENT_BYTES = 2  # bf16


def copies_for(nbytes: int) -> int:
    """Collectives per graph replay: about 64 MiB of traffic, between 1 and 50 (size only)."""
    return max(1, min(50, (64 << 20) // max(nbytes, 1)))


def samples_for(nbytes: int, quick: bool = False) -> int:
    """Timed replays per point (size only, so every rank agrees)."""
    return (5 if quick else 10) if nbytes <= (256 << 20) else (3 if quick else 5)


def slowest_median(per_rank: list[list[float]]) -> float:
    """Median over samples of the slowest rank's seconds: a collective ends when all ranks do."""
    if not per_rank or any(len(s) != len(per_rank[0]) for s in per_rank) or not per_rank[0]:
        raise ValueError("every rank must report the same, non-zero number of samples")
    return float(statistics.median(max(col) for col in zip(*per_rank)))


def to_tables(points: list[tuple[str, int, float]]) -> dict[str, list[list[float]]]:
    """{collective: [[bytes, seconds], ...]} from (collective, bytes, seconds), bytes ascending."""
    tables: dict[str, list[list[float]]] = {}
    for op, nbytes, seconds in sorted(points, key=lambda p: (COLLECTIVES.index(p[0]), p[1])):
        tables.setdefault(op, []).append([int(nbytes), float(f"{seconds:.4g}")])
    return tables


def bus_bandwidth(op: str, nbytes: float, seconds: float, gpus: int) -> float:
    """nccl-tests' bus bandwidth: bytes/seconds times 2(n−1)/n (all-reduce), (n−1)/n (gathers,
    all-to-all), 1 (send/recv)."""
    factor = {"all_reduce": 2 * (gpus - 1) / gpus, "send_recv": 1.0}.get(op, (gpus - 1) / gpus)
    return nbytes / seconds * factor


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(worker, world: int, args: tuple, timeout_s: float = 900.0) -> list[Any]:
    """Run worker(rank, world, port, result_path, *args) in `world` processes; each returns a
    JSON-able value written to its result file; the list comes back in rank order."""
    import torch.multiprocessing as mp

    os.environ.update(SAFE_ENV)
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        paths = [os.path.join(folder, f"rank{r}.json") for r in range(world)]
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=_run_rank, args=(worker, r, world, port, paths[r], args))
                 for r in range(world)]
        for p in procs:
            p.start()
        deadline = time.monotonic() + timeout_s
        for p in procs:
            p.join(max(1.0, deadline - time.monotonic()))
        failed = [r for r, p in enumerate(procs) if p.exitcode != 0]
        for p in procs:
            if p.is_alive():
                p.kill()
        if failed:
            from perfmodel.calibrate.device import CalibrationError

            raise CalibrationError(f"worker ranks {failed} failed or timed out; rerun with "
                                   "PERFMODEL_DEBUG=1 and NCCL_DEBUG=WARN to see why")
        return [json.loads(Path(p).read_text()) for p in paths]


def _run_rank(worker, rank: int, world: int, port: int, path: str, args: tuple) -> None:
    os.environ.update(SAFE_ENV)
    os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)})
    result = worker(rank, world, *args)
    Path(path).write_text(json.dumps(result))


def init_group(rank: int, world: int, backend: str) -> str:
    """Join the process group; the device this rank uses ("cuda:rank" or "cpu")."""
    import torch
    import torch.distributed as dist

    device = "cpu"
    if backend == "nccl":
        torch.cuda.set_device(rank)
        device = f"cuda:{rank}"
    kwargs = {"device_id": torch.device(device)} if backend == "nccl" else {}
    dist.init_process_group(backend, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=300), **kwargs)
    return device


def _collective(op: str, nbytes: int, world: int, rank: int, device: str):
    """A zero-argument call of collective `op` on fresh random bf16 buffers of nbytes."""
    import torch
    import torch.distributed as dist

    n = nbytes // ELEMENT_BYTES
    make = lambda elems: torch.randn(elems, dtype=torch.bfloat16, device=device)  # noqa: E731
    if op == "all_reduce":
        x = make(n)
        return lambda: dist.all_reduce(x)
    if op == "all_gather":
        out, x = make(n), make(n // world)
        return lambda: dist.all_gather_into_tensor(out, x)
    if op == "reduce_scatter":
        x, out = make(n), make(n // world)
        return lambda: dist.reduce_scatter_tensor(out, x)
    if op == "all_to_all":
        x, out = make(n), make(n)
        return lambda: dist.all_to_all_single(out, x)
    x, y, peer = make(n), make(n), rank ^ 1
    if peer >= world:
        return lambda: None
    return lambda: [w.wait() for w in dist.batch_isend_irecv(
        [dist.P2POp(dist.isend, x, peer), dist.P2POp(dist.irecv, y, peer)])]


def _time_point(fn, op: str, nbytes: int, device: str, quick: bool) -> list[float]:
    """Per-collective seconds of each timed replay (graph) or call (send/recv, CPU)."""
    import torch
    import torch.distributed as dist

    count = samples_for(nbytes, quick)
    for _ in range(3):
        fn()
    if not device.startswith("cuda"):
        out = []
        for _ in range(count):
            dist.barrier()
            began = time.perf_counter()
            fn()
            out.append(time.perf_counter() - began)
        return out
    torch.cuda.synchronize()
    copies = 1 if op == "send_recv" else copies_for(nbytes)
    run = fn
    if op != "send_recv":
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(copies):
                fn()
        run = graph.replay
    for _ in range(3):
        run()
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    for start, end in zip(starts, ends):
        start.record()
        run()
        end.record()
    torch.cuda.synchronize()
    return [s.elapsed_time(e) * 1e-3 / copies for s, e in zip(starts, ends)]


def collectives_worker(rank: int, world: int, backend: str, sizes: list[int], ops: list[str],
                       quick: bool) -> list[list[Any]]:
    """One rank: [[op, bytes, [seconds per sample on every rank]], ...] (rank 0's is full)."""
    import torch
    import torch.distributed as dist

    device = init_group(rank, world, backend)
    torch.manual_seed(rank)
    rows = []
    try:
        for op in ops:
            for nbytes in sizes:
                samples = _time_point(_collective(op, nbytes, world, rank, device), op, nbytes,
                                      device, quick)
                gathered: list[Any] = [None] * world
                dist.all_gather_object(gathered, samples)
                rows.append([op, nbytes, gathered])
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
    finally:
        dist.destroy_process_group()
    return rows


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def gpu_count_error(flag: str, asked: int, visible: int) -> str:
    """Why `asked` GPUs cannot run here, worded for how many this box shows (none, one, some)."""
    if visible == 0:
        return (f"{flag} {asked} needs at least 2 CUDA GPUs and torch sees none here; run it on "
                "a multi-GPU box")
    if asked < 2:
        return f"{flag} {asked}: collectives need at least 2 GPUs; pass 2 to {max(visible, 2)}"
    if visible == 1:
        return (f"{flag} {asked} needs {asked} CUDA GPUs and torch sees one here; run it on a "
                "multi-GPU box")
    return (f"{flag} {asked} needs {asked} CUDA GPUs and torch sees {visible} here; pass 2 to "
            f"{visible}, or run it on a bigger box")


def measure_collectives(gpus: int | None = None, quick: bool = False, backend: str = "nccl",
                        ops: tuple[str, ...] = COLLECTIVES) -> dict[str, Any]:
    """{"gpus": n, "tables": {op: [[bytes, seconds]...]}, "bus_bandwidth": ..., environment}."""
    from perfmodel.calibrate.device import CalibrationError

    world = gpus or visible_gpus()
    if backend == "nccl" and (world < 2 or world > visible_gpus()):
        raise CalibrationError(gpu_count_error("--gpus", world, visible_gpus()))
    sizes = list(QUICK_SIZES if quick else SIZES)
    if backend != "nccl":
        sizes = [s for s in sizes if s <= (1 << 20)]
    started = time.perf_counter()
    rows = launch(collectives_worker, world, (backend, sizes, list(ops), quick),
                  timeout_s=300)[0]
    points = [(op, nbytes, slowest_median(per_rank)) for op, nbytes, per_rank in rows]
    best = {op: max(bus_bandwidth(op, b, s, world) for o, b, s in points if o == op)
            for op in ops}
    return {"gpus": world, "method": METHOD, "tables": to_tables(points), "best_bus_bandwidth": best,
            "run_time_s": time.perf_counter() - started}
