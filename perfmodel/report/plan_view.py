"""Rich tables of sweeps and plans, and the plan's `--json` document (docs/json.md)."""

from __future__ import annotations

import math
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table

from perfmodel.report.render import si

Row = dict[str, Any]


def _num(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def clean(row: Row) -> Row:
    return {k: _num(v) for k, v in row.items()}


def deployment(row: Row) -> str:
    par = " ".join(f"{k.upper()}{row[k]}" for k in ("tp", "ep", "dp", "pp") if row.get(k, 1) != 1)
    return f"{row['gpu']} {row['precision']}" + (f" {par}" if par else "")


def points_table(rows: Sequence[Row], title: str, best: Row | None = None) -> Table:
    """One line per point: deployment, load, latencies, rates, cost, SLO."""
    load = "concurrency" if any("concurrency" in r for r in rows) else "batch"
    table = Table(title=title, title_justify="left")
    for name in ("deployment", "GPUs", load, "TTFT", "TPOT", "tok/s/GPU", "tok/s/user",
                 "$/Mtok", "SLO"):
        table.add_column(name, justify="left" if name == "deployment" else "right",
                         no_wrap=name == "deployment")
    for row in rows:
        cost = row.get("cost_per_mtok")
        mark = "best" if best is not None and row is best else \
            ("yes" if row.get("meets_slo") else ("no" if "meets_slo" in row else ""))
        if row.get("error"):
            table.add_row(deployment(row), str(row["gpus"]), str(row[load]),
                          f"[red]{row['error']}[/red]", *[""] * 5)
            continue
        table.add_row(deployment(row), str(row["gpus"]), str(row[load]), si(row["ttft_s"], "s"),
                      si(row["tpot_s"], "s"), f"{row['tok_s_per_gpu']:.4g}",
                      f"{row['tok_s_per_user']:.4g}" if row["tok_s_per_user"] else "—",
                      f"{cost:.3g}" if cost else "—", mark)
    return table


def print_plan(result: Any, slo: Any, console: Console | None = None) -> None:
    """The Pareto front, the best point with its command, and what was searched."""
    console = console or Console()
    how = ("the serving simulation (perfmodel serve)" if result.method == "serve" else
           "static-batch predictions at batch = concurrency (perfmodel predict)")
    console.print(f"evaluated {result.searched} points with {how}; "
                  f"{len(result.skipped)} deployments skipped (do not fit or cannot run)")
    for note in result.notes:
        console.print(f"note: {note}")
    y = "cost per million tokens" if result.keys[0] == "cost_per_mtok" else "tokens/s per GPU"
    console.print(points_table(result.pareto, f"Pareto front: {y} against tokens/s per user",
                               result.best))
    targets = ", ".join(f"{name} ≤ {si(v, 's')}" for name, v in
                        (("TTFT", slo.ttft_s), ("TPOT", slo.tpot_s)) if v is not None)
    if result.best is None:
        console.print(f"[yellow]no configuration meets {targets or 'the targets'}[/yellow]")
        return
    b = result.best
    console.print(f"best meeting {targets or 'no target'}: {deployment(b)} on {b['gpus']} GPU(s) "
                  f"at {'concurrency' if 'concurrency' in b else 'batch'} "
                  f"{b.get('concurrency', b.get('batch'))}: {b['tok_s_per_gpu']:.4g} tok/s/GPU, "
                  f"{b['tok_s_per_user']:.4g} tok/s/user")
    console.print(f"  {b['command']}", soft_wrap=True, highlight=False)


def plan_json(result: Any, slo: Any) -> dict[str, Any]:
    """{"method", "slo", "pareto": [points], "best": point | null, "searched", "skipped",
    "notes"}: SI units, null for what does not exist."""
    return {"method": result.method, "slo": {"ttft_s": slo.ttft_s, "tpot_s": slo.tpot_s},
            "front_axes": list(result.keys),
            "pareto": [clean(r) for r in result.pareto],
            "best": None if result.best is None else clean(result.best),
            "searched": result.searched,
            "skipped": [clean(r) for r in result.skipped],
            "notes": list(result.notes)}
