"""How fast a compute-bound GEMM runs once the card holds it long enough to meet its power limit.

calibrate's tables time each point for ~25 ms with pauses between, so they hold a GEMM's rate at
full clock. A data-center card under sustained matrix load lowers its clock to stay within its
power limit (an H100 SXM at 700 W: 1980 MHz to ~1400, 2026-11-27), and the power controller
averages over a fraction of a second, so how much a burst of matrix work loses depends on how long
the burst is. A serving engine's prefill steps are such bursts (tens of ms to seconds).

The measurement, per dtype: the GEMM's rate by the table method (`Timer.rotated`, best of 3),
then for each burst length L a CUDA graph of GEMMs lasting about L, alternated with a graph of
memory-bound copies lasting about as long (the decode steps between prefills), for
`per_burst_s`; the GEMMs' rate over the second half over the table rate is the fraction at L
(capped at 1). perfmodel/hardware/sustained.py reads it back and interpolates it for the serving
simulation (perfmodel/serve/step_cost.py). `python -m perfmodel.calibrate.power --out F.json`
runs it alone.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

import perfmodel.calibrate.kernels as kernels
from perfmodel.calibrate.plan import BURSTS_S, QUICK_BURSTS_S
from perfmodel.calibrate.timing import Timer
from perfmodel.hardware.sustained import Curve

SHAPE = (8192, 8192, 8192)  # m, k, n: compute-bound in every dtype on every card we know
COPY_BYTES = 1 << 30


def sustained_curve(dtype: str, timer: Timer, bursts_s: Sequence[float] = BURSTS_S,
                    per_burst_s: float = 6.0, step: Callable[[str], None] = lambda _: None,
                    shape: tuple[int, int, int] = SHAPE, gap_ratio: float = 1.0) -> Curve:
    """((L, fraction), ...) for `dtype` on the timer's CUDA device; see the module docstring.
    gap_ratio: the copies between bursts last this many times the burst (1: as long)."""
    import torch

    fns, flop, table_rate = gemm_pair(dtype, shape, timer)
    step(f"sustained {dtype}: table rate")
    table = max(table_rate() for _ in range(3))
    one = flop / table
    src = torch.empty(COPY_BYTES // 4, dtype=torch.float32, device=timer.device)
    dst = torch.empty_like(src)
    copy_s = min(event_seconds(lambda: dst.copy_(src)) for _ in range(3))
    curve = []
    for burst in bursts_s:
        step(f"sustained {dtype}: bursts of {burst:g} s")
        copies = max(1, round(burst / one))
        gemm = graph_of(fns, copies)
        gap = graph_of([lambda: dst.copy_(src)], max(1, round(gap_ratio * burst / copy_s)))
        _alternate(gemm, gap, per_burst_s / 2)  # reach the controller's steady state
        rate = flop * copies / _alternate(gemm, gap, per_burst_s / 2)
        curve.append((copies * one, min(1.0, rate / table)))
        del gemm, gap
    return tuple(curve)


def gemm_pair(dtype: str, shape: tuple[int, int, int], timer: Timer
              ) -> tuple[list[Callable[[], Any]], float, Callable[[], float]]:
    """Two (m, k, n) linears of `dtype` on their own operands, the FLOPs of one, and a function
    that times them by the table method (`Timer.rotated`) and returns FLOP/s."""
    m, k, n = shape
    device = timer.device
    weights = [kernels.weight(dtype, n, k, device) for _ in range(2)]
    xs = [kernels.activation(dtype, m, k, device) for _ in range(2)]
    fns = [kernels.linear(dtype, xs[i], weights[i]) for i in range(2)]
    set_bytes = kernels.weight_bytes(dtype, n, k) + kernels.activation_bytes(dtype, m, k)
    flop = 2.0 * m * k * n
    return fns, flop, lambda: flop / timer.rotated(lambda i: fns[i % 2], set_bytes).median


def graph_of(fns: list[Callable[[], Any]], copies: int) -> Any:
    """One CUDA graph of `copies` calls, fns[i mod len] in turn, warmed up off the capture."""
    import torch

    side = torch.cuda.Stream()  # warm up off the capture, as torch's graph docs ask
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for fn in fns:
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(copies):
            fns[i % len(fns)]()
    return graph


def _alternate(gemm: Any, gap: Any, seconds: float) -> float:
    """Replay gemm then gap until `seconds` pass; mean seconds of one gemm replay."""
    import torch

    busy, count, end = 0.0, 0, time.perf_counter() + seconds
    while time.perf_counter() < end or count == 0:
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        gemm.replay()
        stop.record()
        gap.replay()
        stop.synchronize()
        busy += start.elapsed_time(stop) * 1e-3
        count += 1
    return busy / count


def event_seconds(fn: Callable[[], Any]) -> float:
    """Seconds of one call of fn (after one untimed call), between CUDA events."""
    import torch

    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    fn()
    start.record()
    fn()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) * 1e-3


def main() -> None:
    """python -m perfmodel.calibrate.power --out F.json [--dtypes bf16,fp8] [--quick]"""
    import argparse
    import json

    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--dtypes", default="bf16,fp8")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    timer = Timer("cuda:0", torch.cuda.get_device_properties(0).L2_cache_size)
    result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "curves": {}}
    for dtype in args.dtypes.split(","):
        curve = sustained_curve(dtype, timer, QUICK_BURSTS_S if args.quick else BURSTS_S,
                                3.0 if args.quick else 6.0, step=print)
        result["curves"][dtype] = [list(p) for p in curve]
        print(dtype, [(round(b, 3), round(f, 3)) for b, f in curve], flush=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
