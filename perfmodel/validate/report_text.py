"""The generated part of docs/validation.md (between its two marker lines); prose stays put."""

from __future__ import annotations

from pathlib import Path

from perfmodel.validate.silicon import Served
from perfmodel.stats import quantile
from perfmodel.validate.compare import Point

ROOT = Path(__file__).resolve().parent.parent.parent
DOC = ROOT / "docs" / "validation.md"
START, END = "<!-- generated: start -->", "<!-- generated: end -->"


def serving_rows() -> list[str]:
    """Single-GPU serving rows of real engines against our limit and `tuned` estimate."""
    from perfmodel.validate.silicon import CSV, rows, served

    if not CSV.exists():
        return ["(../shared/external/aiconfigurator-silicon not found)"]
    measured = {"h100_sxm": "h100-sxm-measured", "h200_sxm": "h200-measured"}
    stats: dict[tuple[str, str], list[Served]] = {}
    for row in rows():
        s = served(row, measured, engine="tuned")
        stats.setdefault((s.engine, f"{s.model} {s.quant} {s.system}"), []).append(s)
    table = ["| engine | model, precision, GPU | rows | limit / TPOT (min–max) | "
             "tuned estimate / TPOT (median) |", "|---|---|---|---|---|"]
    for (engine, what), group in sorted(stats.items()):
        lim = [s.itl_limit_s / s.tpot_s for s in group]
        est = [s.itl_estimate_s / s.tpot_s for s in group if s.itl_estimate_s is not None]
        med = f"{quantile(est, 0.5):.2f}" if est else "—"
        table.append(f"| {engine} | {what} | {len(group)} | {min(lim):.2f}–{max(lim):.2f} | "
                     f"{med} |")
    return table


def both_engines(by_device: dict[str, list[Point]], lean: list[Point]) -> list[str]:
    """Where our engine and the lean engine measured the same point: both times."""
    ours = {(p.model, p.precision, p.phase, p.batch, p.tokens): p
            for p in by_device.get("h100-sxm-measured", [])}
    rows = ["| model | prec | phase | B | tokens | our engine | lean engine | lean / ours |",
            "|---|---|---|---|---|---|---|---|"]
    for p in lean:
        mine = ours.get((p.model, p.precision, p.phase, p.batch, p.tokens))
        if mine is not None:
            rows.append(f"| {p.model} | {p.precision} | {p.phase} | {p.batch} | {p.tokens} | "
                        f"{1e3 * mine.measured_s:.2f} ms | {1e3 * p.measured_s:.2f} ms | "
                        f"{p.measured_s / mine.measured_s:.2f} |")
    return rows if len(rows) > 2 else []


def _moe(point: Point) -> bool:
    return "A3B" in point.model or "Mixtral" in point.model


def splice(text: str, body: list[str]) -> str:
    """text with the lines between its START and END marker lines replaced by body; every line
    outside them kept as it is."""
    if text.count(START) != 1 or text.count(END) != 1 or text.index(START) > text.index(END):
        raise ValueError(f"{DOC.name} needs one {START!r} line and, after it, one {END!r} line "
                         "around its generated part")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    return head + START + "\n" + "\n".join(body) + "\n" + END + tail


def render_report(by_device: dict[str, list[Point]], lean: list[Point], points_table,
                  summary_rows, text: str) -> str:
    """text (docs/validation.md) with its generated part computed anew from the points."""
    groups = {"H100 and H200, all": [p for points in by_device.values() for p in points]}
    for precision in ("fp8", "int8", "int4"):
        chosen = [p for p in groups["H100 and H200, all"] if p.precision == precision]
        if chosen:
            groups[f"H100 and H200, {precision}"] = chosen
    groups["H100 and H200, MoE"] = [p for p in groups["H100 and H200, all"] if _moe(p)]
    for name, points in by_device.items():
        groups[f"{name}, all"] = points
        for phase in ("prefill", "decode"):
            groups[f"{name}, {phase}"] = [p for p in points if p.phase == phase]
        moe = [p for p in points if _moe(p)]
        if moe:
            groups[f"{name}, MoE"] = moe
            groups[f"{name}, dense"] = [p for p in points if p not in moe]
    if lean:
        groups["independent lean engine, Llama-3.1-8B, H100"] = lean
    everything = [p for points in by_device.values() for p in points]
    worst = sorted((p for p in everything if p.estimate_error is not None),
                   key=lambda p: -abs(p.estimate_error))[:12]
    body = ["## Summary (estimate of the `torch-cudagraph` engine against measured)", "",
            *summary_rows(groups), "",
            "## The largest errors", "", *points_table(worst), "",
            "## The independent lean engine (`../shared/validation/`)", "",
            *both_engines(by_device, lean), "", *points_table(lean), "",
            "## Real serving engines (`../shared/external/aiconfigurator-silicon/`)", "",
            "Single-GPU aggregated serving; the batch is the concurrency, capped at what fits "
            "in memory. TPOT includes any prefill the engine mixed into decode steps.", "",
            *serving_rows(), ""]
    for name, points in by_device.items():
        body += [f"## Every measured point, {name}", "", *points_table(points), "",
                 f"![roofline]({'roofline-' + name}.svg)", ""]
    return splice(text, body)
