"""Rendering of `perfmodel serve` and `perfmodel validate-serving`: rich summary, trace CSV,
progress bar, validation tables. Imported by the CLI only (rich is imported here, not in the
simulation)."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:
    from perfmodel.serve.result import EngineProfileRef, Fleet, Goodput, PrefixCacheUse, \
        ServeResult, SloTargets, Speculative, Workload


class LazyProgress:
    """A rich progress bar on stderr that appears only once a run has taken over a second."""

    def __init__(self, label: str):
        self.label, self.start, self.bar, self.task = label, time.monotonic(), None, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            if time.monotonic() - self.start < 1.0:
                return
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task(self.label, total=total)
        self.bar.update(self.task, completed=done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def write_trace(path: Path, trace: Sequence[tuple]) -> None:
    """One CSV line per engine step: end time (s), decoders, prefill tokens, KV blocks used
    (and, from a fleet, the replica that ran it)."""
    with Path(path).open("w", newline="") as f:
        out = csv.writer(f)
        head = ["time_s", "decode_seqs", "prefill_tokens", "kv_blocks_used"]
        out.writerow(head + ["replica"] if trace and len(trace[0]) == 5 else head)
        out.writerows((f"{row[0]:.6f}", *row[1:]) for row in trace)


def duration(x: float | None, seconds: bool | None = None) -> str:
    """A latency for the table: in ms below 10 s (one decimal), in s from there: 85.4 ms,
    9876.5 ms, 52.5 s; seconds True or False forces the unit (one row's)."""
    if x is None:
        return "—"
    return f"{x:.1f} s" if (x >= 10 if seconds is None else seconds) else f"{x * 1e3:.1f} ms"


def durations(values: Sequence[float | None]) -> list[str]:
    """One table row's latencies in one unit: s when its largest is 10 s or more, else ms."""
    largest = max((v for v in values if v is not None), default=0.0)
    return [duration(v, largest >= 10) for v in values]


def print_serve(result: ServeResult, warnings: Sequence[str]) -> None:
    """The rich summary of one serve run (serve/result.py)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    r, w = result, result.workload
    load = f"concurrency {w.concurrency}" if w.concurrency else \
        f"request rate {w.request_rate or 'inf'}/s"
    load += " (clients in lock-step)" if w.lock_step else ""
    lengths = f"{w.isl} in / {w.osl} out" if w.isl else "lengths from file"
    load, lengths = workload_text(w, load, lengths)
    console.print(f"[bold]{r.model}[/] on {r.gpu}, {r.engine}, {r.precision}")
    warm = f" (the first {w.warmup} warm-up, left out of the latencies)" if w.warmup else ""
    console.print(f"{w.num_requests} requests{warm}, {load}, {lengths}; "
                  f"{r.steps} engine steps")
    par = r.parallel
    if r.disagg:
        from perfmodel.report.disagg_view import disagg_lines

        for line in disagg_lines(r.disagg):
            console.print(line)
    elif par.gpus > 1:
        label = "+".join(f"{k.upper()}{getattr(par, k)}" for k in ("tp", "pp", "ep", "dp")
                         if getattr(par, k) > 1)
        console.print(f"{label} on {par.gpus} GPUs: {par.schedulers} scheduler(s), the "
                      "fullest simulated; KV cache and latencies per scheduler, throughput all")
    if r.fleet:
        _print_fleet(console, r.fleet)
    table = Table("latency")
    for col in ("mean", "median", "p90", "p99", "limit (mean)"):
        table.add_column(col, justify="right")
    for name, s, lim in (("TTFT", r.ttft_s, r.limit.ttft_s.mean),
                         ("TPOT", r.tpot_s, r.limit.tpot_s.mean), ("ITL", r.itl_s, None),
                         ("E2E", r.e2e_s, r.limit.e2e_s.mean)):
        table.add_row(name, *durations((s.mean, s.median, s.p90, s.p99, lim)))
    console.print(table)
    t, kv = r.throughput, r.kv_cache
    console.print(f"throughput {t.requests_s:.2f} req/s, {t.output_tok_s:.0f} output tok/s "
                  f"({t.output_tok_s_per_gpu:.0f} per GPU, "
                  f"{t.output_tok_s_per_user or 0:.1f} per user)")
    console.print(f"KV cache {kv.tokens} tokens ({kv.blocks} blocks of {kv.block_size}),"
                  f" peak use {kv.peak_fraction:.0%}; preemptions {r.preemptions}; "
                  f"host overhead {r.host_overhead_s * 1e3:.2f} ms/step")
    if r.prefix_cache:
        console.print(prefix_line(r.prefix_cache, w))
    power = r.power_limit
    note = r.estimate_note
    if power:  # calibrate/power.py: the rate matrix work keeps under the card's power limit
        note += (f"; power limit of the profile ({power.dtype}: "
                 f"{power.fraction[0]:.2f} of the table rate at "
                 f"{power.burst_s[0] * 1e3:.0f} ms of matrix work, "
                 f"{power.fraction[-1]:.2f} at {power.burst_s[-1]:g} s)")
    if r.goodput:
        for line in goodput_lines(r.goodput):
            console.print(line)
    if r.speculative:
        print_speculative(console, r.speculative)
    console.print(f"[dim]{note}[/]")
    console.print(f"[dim]{engine_source(r.engine, r.engine_profile, r.request_latency_s)}[/]")
    for line in warnings:
        console.print(f"[yellow]warning:[/] {line}")


def prefix_line(cache: PrefixCacheUse, workload: Workload) -> str:
    """One line on the shared prefixes and what the prefix cache saved."""
    plen, k = workload.options.get("prefix_len"), workload.options.get("num_prefixes")
    what = (f"{k} prefix{'es' if k != 1 else ''} of {plen} tokens before the prompts"
            if plen else "prefixes from the lengths file")
    if not cache.enabled:
        return f"{what}; prefix caching off: every prompt prefilled whole"
    return (f"{what}: prefix cache hit rate {cache.hit_rate or 0:.1%} "
            f"({cache.cached_tokens:,} of {cache.prompt_tokens:,} prompt tokens not "
            f"prefilled, hits in steps of {cache.granularity_tokens}); evicted "
            f"{cache.evicted_tokens:,} cached tokens")


def workload_text(w: Workload, load: str, lengths: str) -> tuple[str, str]:
    """The load and lengths phrases with the workload options of docs/serving.md, "Workloads"."""
    if "burstiness" in w.options:
        b = w.options["burstiness"]
        load += f", Gamma arrivals of burstiness {'inf' if b is None else f'{b:g}'}"
    drawn = w.options.get("lengths")
    if drawn and drawn["dist"] != "fixed":
        spread = (f"±{drawn['range_ratio']:g}" if drawn["dist"] == "uniform"
                  else f"CV {drawn['cv']:g}")
        lengths = f"{drawn['dist']} lengths ({spread}) around {lengths}"
    trace = w.options.get("trace_in")
    if trace:
        load = (f"trace {trace['path']} replayed at {trace['speedup']:g}× "
                f"({trace['span_s']:.1f} s of arrivals)")
        lengths = f"mean {trace['mean_isl']:.0f} in / {trace['mean_osl']:.0f} out"
    return load, lengths


def goodput_lines(good: Goodput) -> list[str]:
    """One line for the run's goodput and one per SLO class."""
    def targets(t: SloTargets) -> str:
        return ", ".join(f"{k[:-2].upper()} ≤ {v * 1e3:g} ms" for k, v in t.to_dict().items()
                         if v is not None)

    lines = [f"goodput {good.requests_s or 0:.2f} req/s: {good.met} of {good.requests} "
             f"requests met their SLO ({good.fraction or 0:.0%})"]
    for name, c in good.classes.items():
        lines.append(f"  {name}: {c.met}/{c.requests} met {targets(c.targets)} "
                     f"({c.fraction:.0%}), {c.requests_s or 0:.2f} req/s")
    return lines


def _print_fleet(console, fleet: Fleet) -> None:
    """One line for a fleet and one per replica (up to 8 shown)."""
    shared = f", {fleet.replicas_per_gpu} a GPU" if fleet.replicas_per_gpu > 1 else ""
    console.print(f"{fleet.replicas} replicas on {fleet.gpus} GPUs{shared}, "
                  f"router {fleet.router}; KV cache and latencies per replica, throughput "
                  "all")
    for k, r in enumerate(fleet.per_replica[:8]):
        console.print(f"  replica {k}: {r.requests} requests, {r.output_tokens} output "
                      f"tokens, busy {r.busy_fraction or 0:.0%}, peak KV "
                      f"{r.peak_kv_fraction:.0%}")
    if len(fleet.per_replica) > 8:
        console.print(f"  … {len(fleet.per_replica) - 8} more in --json")


def print_speculative(console, spec: Speculative) -> None:
    """The speculative decoding lines of serve: the drafter, the speedup per decode step
    against batch size and where it stops paying."""
    from rich.table import Table

    host = spec.draft_overhead_s
    console.print(f"speculative {spec.method}: k = {spec.spec_tokens} drafts per step, "
                  f"acceptance a = {spec.acceptance:g} tokens per step; drafter: "
                  f"{spec.drafter}" + (f", {host * 1e3:g} ms host time a pass" if host
                                       else ""))
    table = Table("batch", "step ms (spec)", "step ms (plain)", "speedup",
                  title=f"decode steps at context {spec.context_tokens:.0f}")
    for row in spec.per_batch:
        table.add_row(str(row.batch), f"{row.step_s * 1e3:.2f}",
                      f"{row.plain_step_s * 1e3:.2f}", f"{row.speedup:.2f}×")
    console.print(table)
    cross, below = spec.crossover_batch, spec.below_one
    runs = ", ".join(f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in below)
    console.print(f"speculation stops paying at batch {cross} (speedup below 1 at batches "
                  f"{runs})" if cross else
                  f"speculation pays at every batch up to {spec.per_batch[-1].batch}")


def engine_source(engine: str, profile: EngineProfileRef | None, latency: float | None) -> str:
    """Where the engine's settings and constants came from (docs/serving.md, "Engine
    profiles")."""
    if profile is None:
        return (f"{engine}: the preset fitted to published rows of older releases "
                "(docs/serving.md); a measured profile: --engine-profile or configs/engines/")
    from pathlib import Path

    return (f"{engine}: the {profile.engine} {profile.version} profile measured on "
            f"{profile.gpu} {profile.date} ({Path(profile.path).name}); request "
            f"latency {(latency or 0) * 1e3:.1f} ms; --engine {engine}@published for the "
            "published-row preset")


def markdown_table(summary: dict[str, Any]) -> list[str]:
    """The validate-serving error table as Markdown (docs/serving.md)."""
    lines = ["| engine | half | rows | TPOT median abs err | TPOT p90 | TTFT median | TTFT p90 | "
             "limit above measured |", "|---|---|---|---|---|---|---|---|"]
    for (engine, half), s in summary.items():
        lines.append(f"| {engine} | {half} | {s['rows']} | {s['tpot_median']:.0%} | "
                     f"{s['tpot_p90']:.0%} | {s['ttft_median']:.0%} | {s['ttft_p90']:.0%} | "
                     f"{s['limit_above']} |")
    return lines


def print_validation(results, summary: dict[str, Any], skipped: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table("engine", "model", "quant", "GPU", "I/O", "C", "half", "TTFT ms meas/est/lim",
                  "TPOT ms meas/est/lim")
    for r in results:
        table.add_row(r.engine, r.model.split("/")[-1], r.quant, r.system, f"{r.isl}/{r.osl}",
                      str(r.concurrency), "train" if r.training else "test",
                      f"{r.ttft_s * 1e3:.0f} / {r.ttft_est_s * 1e3:.0f} / {r.ttft_lim_s * 1e3:.0f}",
                      f"{r.tpot_s * 1e3:.1f} / {r.tpot_est_s * 1e3:.1f} / "
                      f"{r.tpot_lim_s * 1e3:.1f}")
    console.print(table)
    for line in markdown_table(summary):
        console.print(line, markup=False)
    cached = sum(r.prefix_cached for r in results)
    console.print(f"left out of the errors: {cached} rows whose measured request rate needs more "
                  "than the GPU's roofline to prefill from scratch (a cached prefix)")
    if skipped:
        console.print(f"skipped {skipped} rows (model or precision not supported)")
