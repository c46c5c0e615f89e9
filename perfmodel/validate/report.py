"""docs/validation.md and docs/roofline-*.svg from the measured JSON lines in docs/data/.

    python -m perfmodel.validate.report        # rewrites docs/validation.md and the plots

Every number in the report is recomputed here from the raw measurements and the bundled
profiles, so the tables cannot drift from the code that predicts them.
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from pathlib import Path

from perfmodel.hardware.gpu import load_gpu
from perfmodel.cost.ops import forward_ops
from perfmodel.report.render import si
from perfmodel.shared_data import shared_dir
from perfmodel.validate.compare import (Point, compare, default_gpu_profile, read_records,
                                        spec_and_precision, summarize)

ROOT = Path(__file__).resolve().parent.parent.parent
DATA = ROOT / "docs" / "data"
SHARED_LEAN = shared_dir() / "validation" / "h100-lean-engine-llama-3.1-8b-bf16.jsonl"


def shared_lean_records(path: Path = SHARED_LEAN) -> list[dict]:
    """The independent lean engine's Llama-3.1-8B measurements, as validate records."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        records.append({"model": "meta-llama/Llama-3.1-8B", "precision": r["prec"],
                        "kv_dtype": "bf16", "device_name": "NVIDIA H100 80GB HBM3",
                        "phase": r["phase"], "batch": r["b"],
                        "tokens": r["T"] if r["phase"] == "prefill" else r["C"],
                        "seconds": r["ms"] / 1e3, "op_seconds": {}})
    return records


def points_table(points: list[Point]) -> list[str]:
    rows = ["| model | prec | phase | B | tokens | limit | estimate | measured | est. error | "
            "limit / measured |", "|---|---|---|---|---|---|---|---|---|---|"]
    for p in points:
        err = "—" if p.estimate_error is None else f"{100 * p.estimate_error:+.1f}%"
        rows.append(f"| {p.model} | {p.precision} | {p.phase} | {p.batch} | {p.tokens} | "
                    f"{si(p.limit_s, 's')} | {si(p.estimate_s, 's')} | {si(p.measured_s, 's')} "
                    f"| {err} | {p.limit_ratio:.2f} |")
    return rows


def summary_rows(groups: dict[str, list[Point]]) -> list[str]:
    rows = ["| set | points | median abs. error | p90 abs. error | worst | limit beaten |",
            "|---|---|---|---|---|---|"]
    for name, points in groups.items():
        s = summarize(points)
        rows.append(f"| {name} | {s.points} | {100 * s.median_abs_error:.1f}% | "
                    f"{100 * s.p90_abs_error:.1f}% | {100 * s.worst_error:+.1f}% | "
                    f"{s.limit_beaten} |")
    return rows


def roofline_svg(points: list[Point], gpu, title: str) -> str:
    """Each measured op as a point: FLOP/byte against achieved FLOP/s, under the roofline."""
    dots = []
    for p in points:
        spec, prec = spec_and_precision(p.model, p.precision)
        new = p.tokens if p.phase == "prefill" else 1
        totals: dict[str, tuple[float, float, str]] = {}  # layer kinds of one name summed
        for op in forward_ops(spec, prec, p.phase, p.batch, new, p.tokens):
            flops, nbytes, _ = totals.get(op.name, (0.0, 0.0, op.kind))
            totals[op.name] = (flops + op.count * op.flops, nbytes + op.count * op.bytes, op.kind)
        measured = {name: seconds for name, _, _, seconds in p.ops}
        for name, (flops, nbytes, kind) in totals.items():
            if measured.get(name) and flops > 0 and nbytes > 0:
                dots.append((flops / nbytes, flops / measured[name], kind))
    w, h, pad = 640, 420, 60
    x0, x1, y0, y1 = -2.0, 5.0, 9.0, 16.0  # log10 axes: FLOP/B and FLOP/s

    def xy(intensity, rate):
        x = pad + (math.log10(intensity) - x0) / (x1 - x0) * (w - 2 * pad)
        y = h - pad - (math.log10(rate) - y0) / (y1 - y0) * (h - 2 * pad)
        return x, y

    colors = {"matmul": "#1f77b4", "grouped_matmul": "#9467bd", "attention": "#d62728",
              "elementwise": "#2ca02c"}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
           f'font-family="sans-serif" font-size="11">',
           f'<text x="{pad}" y="20" font-size="13">{title}</text>']
    peak, bw = gpu.peak("bf16"), gpu.mem_bandwidth
    line = [xy(10 ** (x0 + i * (x1 - x0) / 200), min(peak, bw * 10 ** (x0 + i * (x1 - x0) / 200)))
            for i in range(201)]
    out.append('<polyline fill="none" stroke="black" points="'
               + " ".join(f"{x:.1f},{y:.1f}" for x, y in line) + '"/>')
    for intensity, rate, kind in dots:
        x, y = xy(min(max(intensity, 10 ** x0), 10 ** x1), min(max(rate, 10 ** y0), 10 ** y1))
        out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colors[kind]}" '
                   'fill-opacity="0.6"/>')
    for i in range(int(x0), int(x1) + 1):
        x, _ = xy(10 ** i, 1e9)
        out.append(f'<text x="{x:.0f}" y="{h - pad + 15}" text-anchor="middle">1e{i}</text>')
    for j in range(int(y0), int(y1) + 1):
        _, y = xy(1, 10 ** j)
        out.append(f'<text x="{pad - 5}" y="{y:.0f}" text-anchor="end">1e{j}</text>')
    out.append(f'<text x="{w / 2}" y="{h - 15}" text-anchor="middle">FLOP per byte</text>')
    out.append(f'<text x="15" y="{h / 2}" transform="rotate(-90 15 {h / 2})" '
               'text-anchor="middle">achieved FLOP/s (measured kernel time)</text>')
    for k, (kind, color) in enumerate(colors.items()):
        out.append(f'<circle cx="{w - 150}" cy="{40 + 15 * k}" r="4" fill="{color}"/>'
                   f'<text x="{w - 140}" y="{44 + 15 * k}">{kind}</text>')
    out.append("</svg>")
    return "\n".join(out)


def render() -> dict[Path, str]:
    """Every file the report writes (docs/validation.md, docs/roofline-*.svg) and its content,
    computed from the raw measurements; nothing is written."""
    records = read_records(sorted(DATA.glob("validation-*.jsonl")))
    by_device: dict[str, list[Point]] = defaultdict(list)
    gpus = {}
    for r in records:
        name = default_gpu_profile(r["device_name"])
        gpus.setdefault(name, load_gpu(name))
        by_device[name].append(compare(r, gpus[name]))
    copy = ROOT / "tests" / "data" / SHARED_LEAN.name  # the same 14 points, for a fresh clone
    lean = [compare(r, load_gpu("h100-sxm-measured"))
            for r in shared_lean_records() or shared_lean_records(copy)]
    from perfmodel.validate.report_text import DOC, END, START, render_report

    files = {ROOT / "docs" / f"roofline-{name}.svg":
             roofline_svg(points, gpus[name], f"ops of every validated point, {name}")
             for name, points in by_device.items()}
    text = DOC.read_text() if DOC.exists() else f"# Validation\n\n{START}\n{END}\n"
    files[DOC] = render_report(by_device, lean, points_table, summary_rows, text)
    return files


def main() -> int:
    for path, text in render().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
