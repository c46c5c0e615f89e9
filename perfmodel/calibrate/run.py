"""calibrate(): measure this box and write its profile YAML. The one entry point of the package.

Order of work: resolve the device, probe which dtypes run, measure the peaks and bandwidth
(while the card is cool), the launch floor, then the tables (linear, attention, activation
quantization, elementwise, RMSNorm, strided elementwise, MoE routing, sort, grouped GEMM, whole
MoE blocks), then the rate matrix work keeps under the power limit (GPU only); assemble; write
atomically. A
progress callback (or a rich bar on stderr) names each step.
"""

from __future__ import annotations

import datetime
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import perfmodel.calibrate.attention as attention
import perfmodel.calibrate.kernels as kernels
import perfmodel.calibrate.moe as moe
import perfmodel.calibrate.moe_block as moe_block
import perfmodel.calibrate.peaks as peaks
import perfmodel.calibrate.quant as quant
import perfmodel.calibrate.tables as tables
from perfmodel.calibrate.device import (CalibrationError, DeviceInfo, datasheet_for, describe,
                                        import_torch, profile_name, resolve_device)
from perfmodel.calibrate.plan import (METHOD_VERSION, ROUTE_EXPERTS, ROUTE_TOP_K, Plan,
                                      make_plan)
from perfmodel.calibrate.profile import Measurements, build_profile, write_profile
from perfmodel.calibrate.timing import Timer
from perfmodel.outpath import check_out_path
from perfmodel.hardware.gpu import Tables
from perfmodel.hardware.sustained import Curve

Progress = Callable[[str, int, int], None]  # (current step, steps done, steps in all)


def calibrate(out: Path | None = None, quick: bool = False, device: str | None = None,
              progress: Progress | None = None, name: str | None = None) -> Path:
    """Measure `device` (default cuda:0) and write its profile; returns the path written.

    out: a .yaml path or a folder (default ./<name>.yaml); name defaults to
    <datasheet>-measured (h100-sxm-measured) or a slug of the device name.
    """
    started = time.perf_counter()
    check_out_path(out)
    torch = import_torch()
    resolved = resolve_device(device)
    if resolved != "cpu":
        torch.cuda.set_device(resolved)
    info = describe(resolved)
    check_out_path(_target(out, name or profile_name(info)), folder_ok=False)
    plan = make_plan(quick, cpu=not info.is_cuda)
    timer = make_timer(plan, info)
    torch.manual_seed(0)
    with _reporter(progress, plan.steps) as step:
        measured = measure(plan, timer, step, started)
    name = name or profile_name(info)
    data = build_profile(
        name=name, description=f"{info.name}, measured by perfmodel calibrate-gpu",
        date=datetime.date.today().isoformat(), mode=plan.mode, method_version=METHOD_VERSION,
        datasheet=datasheet_for(info.name) if info.is_cuda else None, mem_bytes=info.mem_bytes,
        environment=info.environment(), measured=measured)
    data["timing"] = _timing_note(timer)
    return write_profile(_target(out, name), data)


def make_timer(plan: Plan, info: DeviceInfo) -> Timer:
    if plan.mode == "cpu":
        return Timer(info.device, info.cache_bytes, warmup_s=0.01, rep_s=0.05,
                     point_budget_s=0.01, target_replay_s=0.002, min_samples=3, max_samples=20,
                     max_copies=64, pause_s=0.0)
    if plan.mode == "quick":
        return Timer(info.device, info.cache_bytes, point_budget_s=0.01, min_samples=3,
                     max_samples=20, rest_s=1.5)
    return Timer(info.device, info.cache_bytes, rest_s=2.0)


def measure(plan: Plan, timer: Timer, step: "_Steps", started: float) -> Measurements:
    notes: list[str] = []
    unsupported = {d: r for d in plan.linear_dtypes
                   if (r := kernels.probe(d, timer.device)) is not None}
    if "bf16" in unsupported:
        raise CalibrationError(f"bf16 matmul does not run on {timer.device}: "
                               f"{unsupported['bf16']}")
    found = {}
    for dtype in plan.peak_dtypes:
        if dtype in unsupported:
            step.skip(len(plan.peak_sizes) + 1, f"peak {dtype}: unsupported")
            continue
        found[dtype] = peaks.matmul_peak(dtype, plan, timer, step)
    bandwidth = peaks.copy_bandwidth(plan, timer, step)
    measured_tables = measure_tables(plan, timer, step, notes, unsupported)
    sustained = measure_sustained(plan, timer, step, unsupported)
    step.finish()
    return Measurements(peaks=found, bandwidth=bandwidth, tables=measured_tables,
                        unsupported=unsupported, notes=tuple(notes),
                        run_time_s=time.perf_counter() - started, sustained=sustained)


def measure_sustained(plan: Plan, timer: Timer, step: "_Steps",
                      unsupported: dict[str, str]) -> dict[str, Curve]:
    """Per dtype, the GEMM rate kept under the power limit by burst length (calibrate/power.py);
    last, as serving loads a card that has run for a while."""
    # imported here: `python -m perfmodel.calibrate.power` runs alone
    import perfmodel.calibrate.power as power

    out = {}
    for dtype in plan.sustained_dtypes if plan.sustained_bursts_s else ():
        if dtype in unsupported:
            step.skip(len(plan.sustained_bursts_s) + 1, f"sustained {dtype}: unsupported")
            continue
        out[dtype] = power.sustained_curve(dtype, timer, plan.sustained_bursts_s,
                                           plan.sustained_per_burst_s, step)
    return out


def measure_tables(plan: Plan, timer: Timer, step: "_Steps", notes: list[str],
                   unsupported: dict[str, str]) -> Tables:
    """The launch floor and every table, in plan order (linear dtypes in `unsupported` skipped;
    grouped dtypes that do not run are added to it)."""
    step("launch floor")
    graph_s, eager_s = timer.launch()
    linear = {}
    for dtype in plan.linear_dtypes:
        if dtype in unsupported:
            step.skip(len(plan.linear_ms) * len(plan.linear_kn), f"linear {dtype}: unsupported")
            continue
        linear[dtype] = tables.linear_table(dtype, plan, timer, step, notes)
    reference = (tables.attention_prefill(plan, timer, step, notes),
                 tables.attention_decode(plan, timer, step, notes))
    return Tables(
        linear=linear, attention_prefill=reference[0], attention_decode=reference[1],
        attention=reference + attention.attention_tables(plan, timer, step, notes),
        quant_in_linear=False, act_quant=quant.act_quant(plan, timer, step, notes),
        elementwise=tables.elementwise(plan, timer, step, notes),
        graph_launch_s=graph_s, eager_launch_s=eager_s,
        rmsnorm=tables.rmsnorm(plan, timer, step, notes),
        strided=tables.strided(plan, timer, step, notes),
        rope=tables.rope(plan, timer, step, notes),
        silu_mul=tables.silu_mul(plan, timer, step, notes),
        routing=moe.routing(plan, timer, step, notes),
        routing_shape=(ROUTE_EXPERTS, ROUTE_TOP_K),
        sort=moe.sort(plan, timer, step, notes),
        grouped=moe.grouped_tables(plan, timer, step, notes, unsupported),
        moe_block=moe_block.moe_block(plan, timer, step, notes))


def _timing_note(timer: Timer) -> dict:
    rotation = int(timer.rotation * timer.cache_bytes)
    if not timer.is_cuda:
        return {"peaks": "median of time.perf_counter runs after warm-up",
                "tables": f"per call, median of loops over buffer sets of >= {rotation} bytes",
                "rotation_bytes": rotation}
    return {"peaks": "do_bench-style: warm-up, L2 flushed before each run, CUDA events, median",
            "tables": "per kernel: R copies in one CUDA graph on rotating buffer sets, median "
                      "replay / R",
            "rotation_bytes": rotation}


def _target(out: Path | None, name: str) -> Path:
    if out is None:
        return Path.cwd() / f"{name}.yaml"
    out = Path(out)
    return out / f"{name}.yaml" if out.is_dir() else out


class _Steps:
    """Counts steps and reports each one to a Progress callback as it starts."""

    def __init__(self, report: Progress, total: int) -> None:
        self.report, self.total, self.done = report, total, 0

    def __call__(self, label: str) -> None:
        self.report(label, min(self.done, self.total), self.total)
        self.done += 1

    def skip(self, count: int, label: str) -> None:
        self.done += count
        self.report(label, min(self.done, self.total), self.total)

    def finish(self) -> None:
        self.done = self.total
        self.report("done", self.total, self.total)


@contextmanager
def _reporter(progress: Progress | None, total: int) -> Iterator[_Steps]:
    if progress is not None:
        yield _Steps(progress, total)
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn,
                               TimeElapsedColumn)

    columns = (TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Bar(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task("calibrate", total=total)
        yield _Steps(lambda label, done, _: bar.update(task, description=label, completed=done),
                     total)
