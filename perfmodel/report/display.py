"""Rich tables for the terminal: the prediction summary, the per-op table, models and GPUs."""

from __future__ import annotations

from typing import Mapping, Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from perfmodel.api import GpuSpec, ModelSpec, Report
from perfmodel.report.render import op_rows, params, plain, si, summary_rows


def print_report(report: Report, *, matmul_only: bool = False, console: Console | None = None
                 ) -> None:
    con = console or _console()
    pred = report.prediction
    w, gpu, prec, mem = pred.workload, pred.gpu, pred.precision, pred.memory
    spec = pred.spec
    con.print(f"[bold]{report.model_id}[/] on [bold]{gpu.name}[/], {prec.name}: "
              f"batch {w.batch}, {w.input_len} tokens in, {w.output_len} out")
    if report.warnings:  # first, where they are seen: the op tables below run to ~60 rows
        con.print(_labelled([("[yellow]warning[/]", w) for w in report.warnings]))
    con.print(_labelled([
        ("config", report.model_source),
        ("model", f"{spec.model_type}, {spec.num_layers} layers, {params(spec.params.total)} "
                  f"params ({params(spec.params.active)} active)"),
        ("precision", f"{prec.label}; from {prec.source}"),
        ("gpu", f"{gpu.description}; {gpu.provenance}"),
        ("estimate", report.estimate.note)], indent=2))
    summary = _table("Prediction")
    for col in ("metric", "limit (roofline)", f"estimate ({report.estimate.engine})"):
        summary.add_column(col, justify="right" if col != "metric" else "left")
    for row in summary_rows(pred):
        summary.add_row(*row)
    con.print(summary)
    fit = "fits" if mem.fits else "[red]does NOT fit[/]"
    con.print(_labelled([("memory", f"weights {si(mem.weights_bytes, 'B')}, KV "
                          f"{si(mem.kv_bytes_per_token, 'B')}/token, KV at B·(I+O) "
                          f"{si(mem.kv_bytes, 'B')}: {fit} in {si(mem.gpu_bytes, 'B')}; max batch "
                          f"at these lengths {mem.max_batch}")]))
    for phase in (pred.prefill, pred.decode):
        if phase is not None:
            con.print(_op_table(phase, matmul_only), soft_wrap=True)
    if not matmul_only:
        con.print("share: of the limit, which sums the matmul and attention ops; +x%: a fusable "
                  "elementwise op, outside the limit (a fused engine hides it)", style="dim")


def _labelled(rows: list[tuple[str, str]], indent: int = 0) -> Table:
    """'label: text' lines whose text wraps under itself, not under the label."""
    grid = Table.grid(padding=(0, 1, 0, 0))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")  # a long URL folds instead of being cut
    for label, text in rows:
        grid.add_row(f"{' ' * indent}{label}:", text)
    return grid


OP_COLUMNS = ("op", "count", "FLOP", "bytes", "FLOP/B", "bound", "limit", "estimate", "share")
LEFT = {0, 5}  # op and bound; the numbers are right-justified
WIDTH = 80  # every table fits 80 columns


NARROW_FIRST = (1, 2, 3, 6, 7, 4, 5, 0)  # gaps (after column i) that become one space first


def _fit_widths(widths: list[int]) -> tuple[list[int], list[int]]:
    """Column widths and the gaps after each column (the last 0) for a table of at most WIDTH
    columns: two spaces, narrowed to one where it is too wide (between the numbers first); if
    it is still too wide, the op column gives up the rest and long names are cut with an
    ellipsis."""
    gaps = [2] * (len(widths) - 1) + [0]
    for i in NARROW_FIRST:
        if sum(widths) + sum(gaps) <= WIDTH:
            break
        gaps[i] = 1
    over = sum(widths) + sum(gaps) - WIDTH
    return ([max(widths[0] - over, 8)] + widths[1:] if over > 0 else widths), gaps


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


def _op_table(phase, matmul_only: bool) -> Text:
    """One phase's ops, 80 columns wide at most (_fit_widths); a label line opens each layer
    group. Laid out here in the shape of _table's borderless table (two spaces between columns,
    one rule under the header) as one Text: rich's Table measures every cell again, which cost a
    DeepSeek-V3 prediction half of its 0.3 s."""
    title = "prefill (TTFT)" if phase.name == "prefill" else "decode step (ITL, mean over the steps)"
    rows = op_rows(phase, matmul_only)
    widths = [max([len(col)] + [len(cells[i]) for _, cells in rows]
                  + ([len(g) + 1 for g, _ in rows] if i == 0 else []))
              for i, col in enumerate(OP_COLUMNS)]
    widths, gaps = _fit_widths(widths)

    def line(cells) -> str:
        cells = (_cut(cells[0], widths[0]), *cells[1:])
        return "".join((c.ljust(w) if i in LEFT else c.rjust(w)) + " " * g
                       for i, (c, w, g) in enumerate(zip(cells, widths, gaps))).rstrip()

    text = Text(no_wrap=True)
    text.append(title + "\n", style="italic")
    text.append(line(OP_COLUMNS) + "\n", style="bold")
    text.append("─" * (sum(widths) + sum(gaps)) + "\n")
    group = ""
    for row_group, cells in rows:
        if row_group != group:
            text.append("\n")
            if row_group:
                text.append(f"{_cut(row_group, WIDTH - 1)}:\n", style="dim italic")
            group = row_group
        text.append(line(cells) + "\n", style="cyan" if cells[5] == "compute" else "")
    text.rstrip()
    return text


def _table(title: str) -> Table:
    """A borderless table with one rule under the header and 2 spaces between columns."""
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False,
                 padding=(0, 1, 0, 0), pad_edge=False)


def _console() -> Console:
    """The terminal's width (COLUMNS, else 80 when piped): every table here fits 80 columns."""
    return Console()


def print_models(models: Sequence[tuple[str, ModelSpec]], console: Console | None = None
                 ) -> None:
    """The bundled models (api.bundled_model_specs): id, type, layers, parameters."""
    con = console or _console()
    table = _table("Bundled models (configs/models)")
    for col in ("id", "type", "layers", "params", "active"):
        table.add_column(col, no_wrap=True, justify="left" if col in ("id", "type") else "right")
    for model_id, spec in models:
        table.add_row(model_id, spec.model_type, str(spec.num_layers),
                      params(spec.params.total), params(spec.params.active))
    con.print(table)


def print_gpus(specs: Mapping[str, GpuSpec], console: Console | None = None) -> None:
    """Bundled profiles (api.bundled_gpu_specs), names whole (users type them); a measured
    profile's second line gives each figure in % of its datasheet profile. Fits 80 columns."""
    con = console or _console()
    table = _table("Bundled GPU profiles (configs/gpus); dense peaks")
    table.add_column("name", no_wrap=True)
    for col in ("bf16\nTFLOP/s", "fp8\nTFLOP/s", "int8\nTOP/s", "fp4\nTFLOP/s", "memory\nTB/s",
                "memory\nGB"):
        table.add_column(col, justify="right", no_wrap=True)
    table.add_column("source", no_wrap=True)
    for name, gpu in specs.items():
        sheet = specs.get(gpu.datasheet or "")
        pairs = [(gpu.peak(d), sheet.peak(d) if sheet else None, 1e12)
                 for d in ("bf16", "fp8", "int8", "fp4")]
        pairs.append((gpu.mem_bandwidth, sheet.mem_bandwidth if sheet else None, 1e12))
        cells = [_gpu_cell(value, ref, scale) for value, ref, scale in pairs]
        table.add_row(name, *cells, plain(gpu.mem_bytes / 1e9),
                      f"measured\n{gpu.date}" if gpu.kind == "measured" else "datasheet")
    con.print(table)
    con.print("A measured profile's second line: % of its datasheet profile. Sources in each "
              "YAML and docs/gpus.md.")


def _gpu_cell(value: float | None, ref: float | None, scale: float) -> str:
    """A rate in units of `scale`, and below it the share of the datasheet's (if any)."""
    if not value:
        return "—"
    return plain(value / scale) + (f"\n({100 * value / ref:.0f}%)" if ref else "")


def print_points(points, *, json_out: bool = False, ops: bool = False,
                 console: Console | None = None) -> None:
    """perfmodel validate's output: predicted limit and estimate beside each measurement."""
    import dataclasses
    import json

    if json_out:
        print(json.dumps([dataclasses.asdict(p) for p in points], indent=1))
        return
    con = console or _console()
    runs = {(p.model, p.precision) for p in points}
    shared = len(runs) == 1  # one validate run: one model, one precision, named in the title
    title = "predicted vs measured (torch-cudagraph)"
    table = _table(f"{' '.join(next(iter(runs)))}: {title}" if shared else title)
    for col in ((() if shared else ("model", "prec")) +
                ("phase", "B", "tokens", "limit", "estimate", "measured", "est. error",
                 "limit/meas.")):
        table.add_column(col, no_wrap=shared,
                         justify="left" if col in ("model", "prec", "phase") else "right")
    for p in points:
        err = "—" if p.estimate_error is None else f"{100 * p.estimate_error:+.1f}%"
        table.add_row(*(() if shared else (p.model, p.precision)), p.phase, str(p.batch),
                      str(p.tokens), si(p.limit_s, "s"), si(p.estimate_s, "s"),
                      si(p.measured_s, "s"), err, f"{p.limit_ratio:.2f}")
    con.print(table)
    if ops:
        for p in points:
            t = _table(f"{p.model} {p.precision} {p.phase} B={p.batch} tokens={p.tokens}")
            for col in ("op", "limit", "estimate", "measured kernels"):
                t.add_column(col, justify="left" if col == "op" else "right")
            for name, lim, est, meas in p.ops:
                t.add_row(name, si(lim, "s"), si(est, "s"), si(meas, "s"))
            con.print(t)
