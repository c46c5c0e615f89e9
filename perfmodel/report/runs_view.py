"""`validate-serving --runs`: serve against an engine's own benchmark runs, as a table, Markdown or
JSON (docs/serving.md, "Engine profiles"). Pure rendering of validate/engine_fit.py's records."""

from __future__ import annotations

from typing import Any, Iterable


def _point(r) -> str:
    load = f"C={r.concurrency}" if r.request_rate is None else f"{r.request_rate:g}/s"
    prefix = f" (prefix {r.prefix_len})" if r.prefix_len else ""
    return f"{r.isl}/{r.osl}{prefix} {load}"


def _hits(r) -> str:
    if r.prefix_hits is None:
        return ""
    share, source = r.prefix_hits
    return f"{share:.0%}" + (" (log)" if source == "log" else "")


def runs_markdown(summaries: dict[str, dict]) -> list[str]:
    """One row per half: results, then median / p90 |error| of TTFT, TPOT and tokens/s."""
    lines = ["| half | results | TPOT median / p90 | output tok/s median / p90 | TTFT median "
             "/ p90 | limit above measured |", "|---|---|---|---|---|---|"]
    for half, s in summaries.items():
        if not s.get("runs"):
            lines.append(f"| {half} | 0 | | | | |")
            continue
        cells = [f"{s[k]['median']:.1%} / {s[k]['p90']:.1%}" for k in ("tpot", "tok_s", "ttft")]
        lines.append(f"| {half} | {s['runs']} | {' | '.join(cells)} | {s['limit_above']} |")
    return lines


def print_runs(rows: Iterable[Any], summaries: dict[str, dict], note: str) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table("run", "point", "half", "TTFT ms meas / est", "TPOT ms meas / est",
                  "tok/s meas / est", "cache hits", "left out")
    for c in rows:
        r, m = c.run, c.predicted
        table.add_row(r.label, _point(r), r.half,
                      f"{r.ttft_s * 1e3:.0f} / {m.ttft_s.mean * 1e3:.0f}",
                      f"{r.tpot_s * 1e3:.2f} / {m.tpot_s.mean * 1e3:.2f}",
                      f"{r.output_tok_s:.0f} / {m.throughput.output_tok_s:.0f}",
                      _hits(r), r.excluded or "")
    console.print(table)
    for line in runs_markdown(summaries):
        console.print(line, markup=False)
    console.print(note, markup=False)


def runs_json(rows: Iterable[Any], summaries: dict[str, dict], note: str) -> dict:
    return {"runs": [{"id": c.run.id, "label": c.run.label, "model": c.run.model,
                      "precision": c.run.precision, "isl": c.run.isl, "osl": c.run.osl,
                      "concurrency": c.run.concurrency, "request_rate": c.run.request_rate,
                      "num_requests": c.run.num_requests, "half": c.run.half,
                      "prefix_len": c.run.prefix_len,
                      "prefix_cache_hits": None if c.run.prefix_hits is None else
                      {"fraction": c.run.prefix_hits[0], "source": c.run.prefix_hits[1]},
                      "excluded": c.run.excluded,
                      "measured": {"ttft_s": c.run.ttft_s, "tpot_s": c.run.tpot_s,
                                   "output_tok_s": c.run.output_tok_s},
                      "predicted": {"ttft_s": c.predicted.ttft_s.mean,
                                    "tpot_s": c.predicted.tpot_s.mean,
                                    "output_tok_s": c.predicted.throughput.output_tok_s,
                                    "limit_tpot_s": c.predicted.limit.tpot_s.mean}}
                     for c in rows],
            "summary": summaries, "engine": note}
