"""How calibrate times a kernel: do_bench for big ones, a rotating CUDA graph for small ones.

Two methods, each with a CPU fallback (time.perf_counter, torch's CPU ops being synchronous):

- `Timer.bench(fn)`: triton.testing.do_bench's method. Warm up for warmup_s, then time each run
  between CUDA events, writing over a buffer twice the L2 before each run so that no run starts
  with its inputs in L2; the samples are the per-run times (median taken later). For the peaks.
- `Timer.rotated(make, set_bytes)`: R copies of a kernel captured in ONE CUDA graph, copy i on
  buffer set i mod S, where S sets together exceed `rotation` x L2, so each copy misses L2 as a
  layer's kernel does in a real model step. The replay is timed between events and divided by
  R, so a per-kernel time includes the small gap between kernels of a graph, which is what a
  CUDA-graphed decode step sees (and not the 5-20 us of an eager launch from Python).

Raw samples come back in a `Timing`; `stats` reduces them. torch is imported inside functions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import perfmodel.calibrate.stats as stats

Kernel = Callable[[], Any]


@dataclass(frozen=True)
class Timing:
    """Raw per-kernel seconds of one measurement, and how they were taken."""

    samples: tuple[float, ...]  # seconds per kernel, one per timed run or replay
    copies: int = 1  # kernels per timed region (R)
    buffer_sets: int = 1  # distinct input sets rotated over

    @property
    def median(self) -> float:
        return stats.median(self.samples)

    @property
    def spread(self) -> stats.Spread:
        return stats.Spread.of(self.samples)


@dataclass(frozen=True)
class Timer:
    """Timing settings for one device; `cache_bytes` is its L2 (a CPU's last-level cache)."""

    device: str  # "cuda:N" or "cpu"
    cache_bytes: int
    warmup_s: float = 0.025  # do_bench warm-up
    rep_s: float = 0.1  # do_bench timed time
    point_budget_s: float = 0.025  # timed replays per table point
    target_replay_s: float = 0.001  # a replay of R copies lasts about this long
    min_samples: int = 5
    max_samples: int = 50
    max_copies: int = 256
    rotation: float = 3.0  # buffer sets span this many times the cache
    pause_s: float = 0.01  # between table shapes
    rest_s: float = 0.0  # idle before each peak measurement, so clocks start from cool

    @property
    def is_cuda(self) -> bool:
        return self.device.startswith("cuda")

    def pause(self, seconds: float | None = None) -> None:
        time.sleep(self.pause_s if seconds is None else seconds)

    def bench(self, fn: Kernel) -> Timing:
        """do_bench: warm up, flush L2 before each run, time each run; per-run seconds."""
        if not self.is_cuda:
            return _bench_cpu(fn, self)
        import torch

        flush = torch.empty(max(256 << 20, 2 * self.cache_bytes), dtype=torch.int8,
                            device=self.device)
        fn()
        estimate = _event_seconds(lambda: (flush.zero_(), fn()), 5)
        for _ in range(max(1, round(self.warmup_s / estimate))):
            fn()
        count = stats.clamp(round(self.rep_s / estimate), self.min_samples, 1000)
        return Timing(flushed_event_times(fn, flush, count))

    def rotated(self, make: Callable[[int], Kernel], set_bytes: int) -> Timing:
        """Per-kernel seconds of make(i)() replayed R times in one graph, rotating buffer sets.

        make(i) allocates buffer set i (outside the timing) and returns the kernel call on it.
        """
        sets = stats.buffer_sets(set_bytes, self.cache_bytes, self.rotation, self.max_copies)
        if not self.is_cuda:
            return _rotated_cpu(make, sets, self)
        return _rotated_cuda(make, sets, self)

    def launch(self, copies: int = 1000) -> tuple[float | None, float]:
        """(per-kernel seconds of a 1-element add replayed in a graph, per eager launch)."""
        import torch

        x = torch.randn(1, device=self.device)
        eager = _eager_launch_seconds(lambda: x.add_(1.0), copies, self.is_cuda)
        if not self.is_cuda:
            return None, eager
        timing = _graph_timing([lambda: x.add_(1.0)], copies, self)
        return timing.median, eager


def flushed_event_times(fn: Kernel, flush: Any, count: int) -> tuple[float, ...]:
    """Seconds of `count` runs of fn, each between CUDA events, L2 flushed (by zeroing `flush`,
    a buffer larger than L2) before each."""
    import torch

    starts = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    for start, end in zip(starts, ends):
        flush.zero_()
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize(flush.device)
    return tuple(s.elapsed_time(e) * 1e-3 for s, e in zip(starts, ends))


def _event_seconds(fn: Kernel, runs: int) -> float:
    """Mean seconds of fn over `runs` back-to-back calls, between CUDA events."""
    import torch

    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(runs):
        fn()
    end.record()
    torch.cuda.synchronize()
    return max(start.elapsed_time(end) * 1e-3 / runs, 1e-7)


def _rotated_cuda(make: Callable[[int], Kernel], sets: int, timer: Timer) -> Timing:
    import torch

    first = make(0)
    side = torch.cuda.Stream()  # warm up off the capture, as torch's graph docs ask
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        first()
        first()
    torch.cuda.current_stream().wait_stream(side)
    estimate = _event_seconds(first, 1)
    copies = stats.graph_copies(sets, estimate, timer.target_replay_s, timer.max_copies)
    fns = [first] + [make(i) for i in range(1, min(sets, copies))]
    return _graph_timing(fns, copies, timer)


def _graph_timing(fns: list[Kernel], copies: int, timer: Timer) -> Timing:
    """Capture copies calls (fns[i mod len]) in one graph; time replays; per-kernel seconds."""
    import torch

    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for i in range(copies):
            fns[i % len(fns)]()
    graph.replay()
    replay_s = _event_seconds(graph.replay, 1)
    count = stats.sample_count(replay_s, timer.point_budget_s, timer.min_samples,
                               timer.max_samples)
    starts = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    ends = [torch.cuda.Event(enable_timing=True) for _ in range(count)]
    for start, end in zip(starts, ends):
        start.record()
        graph.replay()
        end.record()
    torch.cuda.synchronize()
    totals = [s.elapsed_time(e) * 1e-3 for s, e in zip(starts, ends)]
    del graph
    return Timing(stats.per_call(totals, copies), copies, len(fns))


def _bench_cpu(fn: Kernel, timer: Timer) -> Timing:
    fn()
    t0 = time.perf_counter()
    fn()
    estimate = max(time.perf_counter() - t0, 1e-7)
    for _ in range(max(0, round(timer.warmup_s / estimate) - 1)):
        fn()
    samples = []
    for _ in range(stats.sample_count(estimate, timer.rep_s, timer.min_samples,
                                      timer.max_samples)):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return Timing(tuple(samples))


def _rotated_cpu(make: Callable[[int], Kernel], sets: int, timer: Timer) -> Timing:
    first = make(0)
    first()
    t0 = time.perf_counter()
    first()
    estimate = max(time.perf_counter() - t0, 1e-7)
    copies = stats.graph_copies(sets, estimate, timer.target_replay_s, timer.max_copies)
    fns = [first] + [make(i) for i in range(1, min(sets, copies))]
    count = stats.sample_count(estimate * copies, timer.point_budget_s, timer.min_samples,
                               timer.max_samples)
    totals = []
    for _ in range(count):
        t0 = time.perf_counter()
        for i in range(copies):
            fns[i % len(fns)]()
        totals.append(time.perf_counter() - t0)
    return Timing(stats.per_call(totals, copies), copies, len(fns))


def _eager_launch_seconds(fn: Kernel, launches: int, cuda: bool) -> float:
    """Median over 5 loops of `launches` eager calls from Python, per call (host-bound)."""
    import torch

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    fn()
    sync()
    loops = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(launches):
            fn()
        sync()
        loops.append((time.perf_counter() - t0) / launches)
    return stats.median(loops)
