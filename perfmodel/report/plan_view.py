"""Rich tables of sweeps and plans, and the plan's `--json` document (docs/json.md)."""

from __future__ import annotations

import math
from typing import Any, Sequence

from rich.console import Console
from rich.table import Table

from perfmodel.report.render import plain, si

Row = dict[str, Any]


def _num(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def clean(row: Row) -> Row:
    return {k: _num(v) for k, v in row.items()}


def deployment(row: Row) -> str:
    par = " ".join(f"{k.upper()}{row[k]}" for k in ("tp", "ep", "dp", "pp") if row.get(k, 1) != 1)
    if row.get("disagg"):
        par = f"disagg {row['disagg']}"
    fleet = f" {row['replicas']} replicas" if row.get("replicas", 1) != 1 else ""
    spec = f" +{row['speculative']} k{row['spec_tokens']}" if row.get("speculative") else ""
    return f"{row['gpus']}×{row['gpu']} {row['precision']}{fleet}" + (f" {par}" if par else "") \
        + spec


def _or_dash(value: Any, show: Any) -> str:
    return "—" if value is None else show(value)


def _what(key: str) -> str:
    """How the objective reads after "N% …"."""
    return {"cost_per_mtok": "cheaper per token",
            "goodput_per_gpu": "more good requests/s per GPU"}.get(key, "more tokens/s per GPU")


def _load(value: Any) -> str:
    """A concurrency or batch as a whole number, a request rate as few digits as it needs."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def points_table(rows: Sequence[Row], title: str, best: Row | None = None,
                 load: str | None = None) -> Table:
    """One line per point: deployment, load, latencies, rates, cost (when priced), SLO."""
    load = load or next((k for k in ("concurrency", "request_rate") if any(k in r for r in rows)),
                        "batch")
    priced = any(r.get("cost_per_mtok") for r in rows)
    good = any("goodput_per_gpu" in r for r in rows)
    slo = any("meets_slo" in r for r in rows)
    errors = any(r.get("error") for r in rows)
    table = Table(title=title, title_justify="left")
    names = ["deployment", {"concurrency": "conc.", "request_rate": "req/s"}.get(load, "batch"),
             "TTFT",
             "TPOT", "tok/s/GPU", "tok/s/user"] + ["good req/s/GPU", "met"] * good \
        + ["$/Mtok"] * priced + ["SLO"] * slo
    for name in names:
        table.add_column(name, justify="left" if name == "deployment" else "right",
                         no_wrap=name != "deployment")
    if errors:
        table.add_column("error", style="red", overflow="fold", ratio=1)
    for row in rows:
        head = [deployment(row), _load(row[load])]
        if row.get("error"):
            table.add_row(*head, *["—"] * (len(names) - 2), row["error"])
            continue
        cost = row.get("cost_per_mtok")
        mark = "best" if best is not None and row is best else \
            ("yes" if row.get("meets_slo") else "no")
        table.add_row(*head, si(row["ttft_s"], "s", ""), si(row["tpot_s"], "s", ""),
                      plain(row["tok_s_per_gpu"]),
                      plain(row["tok_s_per_user"]) if row["tok_s_per_user"] else "—",
                      *([_or_dash(row.get("goodput_per_gpu"), plain),
                         _or_dash(row.get("goodput_fraction"), lambda f: f"{100 * f:.0f}%")]
                        if good else []),
                      *([plain(cost) if cost else "—"] * priced), *([mark] * slo),
                      *[""] * errors)
    return table


def print_plan(result: Any, slo: Any, console: Console | None = None) -> None:
    """The Pareto front, the best point with its command, and what was searched."""
    console = console or Console()
    how = ("the serving simulation (perfmodel serve)" if result.method == "serve" else
           "static-batch predictions at batch = concurrency (perfmodel predict)")
    dropped = sum(not r["error"].startswith("concurrency") for r in result.skipped)
    console.print(f"evaluated {result.searched} points with {how}; skipped {dropped} "
                  f"deployments that do not fit or cannot run and "
                  f"{len(result.skipped) - dropped} concurrencies their memory cannot hold")
    for note in result.notes:
        console.print(f"note: {note}")
    if not result.pareto:
        reasons = dict.fromkeys(f"{deployment(r)}: {r['error']}" for r in
                                [*result.skipped, *result.rows] if r.get("error"))
        for reason in list(reasons)[:6]:
            console.print(f"  {reason}", highlight=False)
    y = {"cost_per_mtok": "cost per million tokens",
         "goodput_per_gpu": "good requests/s per GPU"}.get(result.keys[0], "tokens/s per GPU")
    load = "batch" if result.method != "serve" else \
        "request_rate" if any("request_rate" in r for r in result.rows) else "concurrency"
    console.print(points_table(result.pareto, f"Pareto front: {y} against tokens/s per user",
                               result.best, load))
    targets = ", ".join(f"{name} ≤ {si(v, 's')}" for name, v in
                        (("TTFT", slo.ttft_s), ("TPOT", slo.tpot_s)) if v is not None)
    if getattr(slo, "attainment", None) is not None:
        targets += f" for {100 * slo.attainment:g}% of requests (goodput)"
    if len(result.best_per_gpu) > 1:
        console.print(points_table([b for _, b in result.best_per_gpu if b is not None],
                                   "Best meeting the targets on each GPU type", result.best,
                                   load))
    if result.best is None:
        console.print(f"[yellow]no configuration meets {targets or 'the targets'}[/yellow]")
        return
    console.print(f"best meeting {targets or 'no target'}: {_pick(result.best)}")
    console.print(f"  {result.best['command']}", soft_wrap=True, highlight=False)
    if result.best_by_mode:
        console.print(mode_verdict(result.best_by_mode, result.keys[0]))
    _print_speculation(result, console)
    _print_margin(result, slo, console)


def mode_verdict(by_mode: Sequence[tuple[str, Row | None]], key: str) -> str:
    """Which of aggregated and disaggregated serving won, and by how much (plan --disagg)."""
    best = dict(by_mode)
    agg, dis = best.get("agg"), best.get("disagg")
    if agg is None or dis is None:
        only = "aggregated" if agg else "disaggregated" if dis else None
        return (f"only {only} layouts meet the targets" if only else
                "neither aggregated nor disaggregated layouts meet the targets")
    better = key == "cost_per_mtok" and dis[key] < agg[key] or \
        key != "cost_per_mtok" and dis[key] > agg[key]
    win, lose = (dis, agg) if better else (agg, dis)
    ratio = (lose[key] / win[key] if key == "cost_per_mtok" else win[key] / lose[key]) - 1
    what = "cheaper per token" if key == "cost_per_mtok" else "more tokens/s per GPU"
    return (f"{'disaggregated' if better else 'aggregated'} wins: {100 * ratio:.0f}% {what} "
            f"than the best {'aggregated' if better else 'disaggregated'} "
            f"({deployment(lose)} at concurrency {lose.get('concurrency')})")


def _pick(row: Row) -> str:
    """A chosen point in words: deployment, load, tokens/s per GPU and per user."""
    load = next((k for k in ("concurrency", "request_rate") if k in row), "batch")
    good = "" if row.get("goodput_per_gpu") is None else \
        (f", {plain(row['goodput_per_gpu'])} good req/s/GPU "
         f"({100 * row['goodput_fraction']:.0f}% met)")
    return (f"{deployment(row)} at {load.replace('_', ' ')} {_load(row[load])}: "
            f"{plain(row['tok_s_per_gpu'])} tok/s/GPU, "
            f"{plain(row['tok_s_per_user'])} tok/s/user{good}")


def spec_verdict(result: Any) -> str:
    """Which won, the best with speculation or the best without, and by how much."""
    from perfmodel.plan.speculate import verdict

    best = dict(result.best_by_spec)
    key = result.keys[0]
    got = verdict(result.best_by_spec, key)
    if got is None:
        only = "with" if best.get("speculative") else "without" if best.get("plain") else None
        return (f"only deployments {only} speculation meet the targets" if only else
                "no deployment meets the targets with or without speculation")
    won = got["winner"] == "speculative"
    lose = best["plain" if won else "speculative"]
    what = _what(key)
    return (f"{'speculation' if won else 'no speculation'} wins: {100 * got['gain']:.0f}% "
            f"{what} than the best {'without' if won else 'with'} it ({_pick(lose)})")


def _print_speculation(result: Any, console: Console) -> None:
    """plan --speculative: the verdict and, per deployment, the gain against its plain twin
    at each load and where it stops paying."""
    if not result.best_by_spec:
        return
    console.print(spec_verdict(result))
    rows = result.spec_crossovers
    if not rows:
        return
    load = rows[0]["load"]
    table = Table(title="Speculation against none, tokens/s per GPU at each "
                  f"{load.replace('_', ' ')} (+: it pays)", title_justify="left")
    for name in ("deployment", "gain by load", "stops paying at", "step crossover B"):
        table.add_column(name, justify="left" if name != "step crossover B" else "right",
                         overflow="fold")
    for row in rows:
        gains = " ".join(f"{_load(c)}:{100 * g:+.0f}%" for c, g in row["gain"].items())
        table.add_row(deployment({**row, "precision": row["precision"]}), gains,
                      "—" if row["crossover"] is None else _load(row["crossover"]),
                      "—" if row["step_crossover_batch"] is None
                      else str(row["step_crossover_batch"]))
    console.print(table)


def _print_margin(result: Any, slo: Any, console: Console) -> None:
    """The best's headroom on each target and, where it is under the margin, the best that
    keeps the margin on every target."""
    room = {k: v for k, v in slo.headroom(result.best).items() if v is not None}
    if not room or result.margin <= 0:
        return
    console.print("  headroom (how far the estimate may grow before it misses): " +
                  ", ".join(f"{k.upper()} {100 * v:.0f}%" for k, v in room.items()))
    pct = f"{100 * result.margin:.0f}%"
    safe = result.best_with_margin
    if safe is result.best:
        console.print(f"  it keeps the {pct} margin (--margin) on every target")
    elif safe is None:
        console.print(f"[yellow]no configuration keeps a {pct} margin (--margin) on every "
                      "target[/yellow]")
    else:
        console.print(f"with a {pct} margin on every target (--margin: serve's median TPOT error "
                      f"against real engines): {_pick(safe)}")
        console.print(f"  {safe['command']}", soft_wrap=True, highlight=False)


def plan_json(result: Any, slo: Any) -> dict[str, Any]:
    """{"method", "slo", "pareto": [points], "best": point | null, "best_headroom",
    "margin", "best_with_margin", "best_per_gpu", "best_by_mode", "speculation" (with
    --speculative only), "searched", "skipped", "notes"}: SI units, null for what does not exist."""
    targets = {"ttft_s": slo.ttft_s, "tpot_s": slo.tpot_s}
    if getattr(slo, "attainment", None) is not None:
        targets["attainment"] = slo.attainment
    return {"method": result.method, "slo": targets,
            "front_axes": list(result.keys),
            "pareto": [clean(r) for r in result.pareto],
            "best": None if result.best is None else clean(result.best),
            "best_headroom": None if result.best is None else slo.headroom(result.best),
            "margin": result.margin,
            "best_with_margin": None if result.best_with_margin is None else
            clean(result.best_with_margin),
            "best_per_gpu": {gpu: None if row is None else clean(row)
                             for gpu, row in result.best_per_gpu},
            "best_by_mode": {m: None if row is None else clean(row)
                             for m, row in result.best_by_mode} or None,
            **({"speculation": _spec_json(result)} if result.best_by_spec else {}),
            "searched": result.searched,
            "skipped": [clean(r) for r in result.skipped],
            "notes": list(result.notes)}


def _spec_json(result: Any) -> dict[str, Any]:
    """plan --speculative's block (docs/json.md): the best with and without, the verdict, and
    the per-deployment gains and crossovers."""
    from perfmodel.plan.speculate import verdict

    return {"best": {m: None if row is None else clean(row) for m, row in result.best_by_spec},
            "verdict": verdict(result.best_by_spec, result.keys[0]),
            "crossovers": [{**{k: v for k, v in r.items() if k != "gain"},
                            "gain": [{r["load"]: c, "gain": _num(g)}
                                     for c, g in r["gain"].items()]}
                           for r in result.spec_crossovers]}
