"""Rich tables for the terminal: the prediction summary, the per-op table, models and GPUs."""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table

from perfmodel.api import Report
from perfmodel.report.render import op_rows, si, summary_rows


def print_report(report: Report, *, matmul_only: bool = False, console: Console | None = None
                 ) -> None:
    con = console or _console()
    pred = report.prediction
    w, gpu, prec, mem = pred.workload, pred.gpu, pred.precision, pred.memory
    spec = pred.spec
    con.print(f"[bold]{report.model_id}[/] on [bold]{gpu.name}[/], {prec.name}: "
              f"batch {w.batch}, {w.input_len} tokens in, {w.output_len} out")
    con.print(f"  config: {report.model_source}")
    con.print(f"  model: {spec.model_type}, {spec.num_layers} layers, "
              f"{si(spec.params.total, '')}params ({si(spec.params.active, '')}active)")
    con.print(f"  precision: {prec.label}; from {prec.source}")
    con.print(f"  gpu: {gpu.description}; {gpu.provenance}")
    con.print(f"  estimate: {report.estimate.note}")
    summary = Table(title="Prediction", title_justify="left", box=box.SIMPLE_HEAD)
    for col in ("metric", "limit (roofline)", f"estimate ({report.estimate.engine})"):
        summary.add_column(col, justify="right" if col != "metric" else "left")
    for row in summary_rows(pred):
        summary.add_row(*row)
    con.print(summary)
    fit = "fits" if mem.fits else "[red]does NOT fit[/]"
    con.print(f"memory: weights {si(mem.weights_bytes, 'B')}, KV {si(mem.kv_bytes_per_token, 'B')}"
              f"/token, KV at B·(I+O) {si(mem.kv_bytes, 'B')}: {fit} in {si(mem.gpu_bytes, 'B')}; "
              f"max batch at these lengths {mem.max_batch}")
    for phase in (pred.prefill, pred.decode):
        if phase is None:
            continue
        title = "prefill (TTFT)" if phase.name == "prefill" else \
            "decode step (ITL, mean over the steps)"
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
        for col in ("op", "count", "FLOP", "bytes", "FLOP/B", "bound", "limit", "estimate",
                    "share"):
            table.add_column(col, justify="left" if col in ("op", "bound") else "right",
                             no_wrap=True)
        for row in op_rows(phase, matmul_only):
            table.add_row(*row, style="cyan" if row[5] == "compute" else None)
        con.print(table)
    for warning in report.warnings:
        con.print(f"[yellow]warning:[/] {warning}")


def _console() -> Console:
    """A console at least 110 columns wide, so the op table never wraps when piped."""
    con = Console()
    return con if con.width >= 110 else Console(width=110)


def print_models(console: Console | None = None) -> None:
    from perfmodel.model.architectures import model_spec
    from perfmodel.model.source import bundled_models, load_model_config

    con = console or _console()
    table = Table(title="Bundled models (configs/models)", title_justify="left")
    for col in ("id", "type", "layers", "params", "active"):
        table.add_column(col)
    for model_id in bundled_models():
        spec = model_spec(load_model_config(model_id).config)
        table.add_row(model_id, spec.model_type, str(spec.num_layers),
                      si(spec.params.total, ""), si(spec.params.active, ""))
    con.print(table)


def print_gpus(console: Console | None = None) -> None:
    from perfmodel.hardware.gpu import bundled_names, load_gpu

    con = console or _console()
    table = Table(title="Bundled GPU profiles (configs/gpus)", title_justify="left")
    for col in ("name", "kind", "bf16", "fp8", "int8", "bandwidth", "memory", "source"):
        table.add_column(col)
    specs = {name: load_gpu(name) for name in bundled_names()}
    for name, gpu in specs.items():
        sheet = specs.get(gpu.datasheet or "")

        def cell(value, ref, unit):
            text = si(value, unit)
            return f"{text} ({100 * value / ref:.0f}%)" if value and ref else text

        table.add_row(
            name, gpu.kind,
            *(cell(gpu.peak(d), sheet.peak(d) if sheet else None, "FLOP/s")
              for d in ("bf16", "fp8", "int8")),
            cell(gpu.mem_bandwidth, sheet.mem_bandwidth if sheet else None, "B/s"),
            si(gpu.mem_bytes, "B"),
            f"measured {gpu.date}" if gpu.kind == "measured" else "datasheet")
    con.print(table)
    con.print("measured profiles show (% of their datasheet profile); sources in each YAML "
              "and docs/gpus.md.")


def print_points(points, *, json_out: bool = False, ops: bool = False,
                 console: Console | None = None) -> None:
    """perfmodel validate's output: predicted limit and estimate beside each measurement."""
    import dataclasses
    import json

    if json_out:
        print(json.dumps([dataclasses.asdict(p) for p in points], indent=1))
        return
    con = console or _console()
    table = Table(title="predicted vs measured (torch-cudagraph engine)", title_justify="left",
                  box=box.SIMPLE_HEAD)
    for col in ("model", "prec", "phase", "B", "tokens", "limit", "estimate", "measured",
                "est. error", "limit/meas."):
        table.add_column(col, justify="left" if col in ("model", "prec", "phase") else "right")
    for p in points:
        err = "—" if p.estimate_error is None else f"{100 * p.estimate_error:+.1f}%"
        table.add_row(p.model, p.precision, p.phase, str(p.batch), str(p.tokens),
                      si(p.limit_s, "s"), si(p.estimate_s, "s"), si(p.measured_s, "s"), err,
                      f"{p.limit_ratio:.2f}")
    con.print(table)
    if ops:
        for p in points:
            t = Table(title=f"{p.model} {p.precision} {p.phase} B={p.batch} tokens={p.tokens}",
                      title_justify="left", box=box.SIMPLE_HEAD)
            for col in ("op", "limit", "estimate", "measured kernels"):
                t.add_column(col, justify="left" if col == "op" else "right")
            for name, lim, est, meas in p.ops:
                t.add_row(name, si(lim, "s"), si(est, "s"), si(meas, "s"))
            con.print(t)
