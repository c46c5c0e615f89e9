"""The generated part of docs/validation.md (between its two marker lines); prose stays put."""

from __future__ import annotations

import csv
from pathlib import Path

from perfmodel.validation import Point, quantile

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "validation.md"
START, END = "<!-- generated: start -->", "<!-- generated: end -->"
SILICON = ROOT.parent / "shared" / "external" / "aiconfigurator-silicon" / "silicon-h100-h200.csv"
SERVED = {"meta-llama/Llama-3.1-8B-Instruct": "meta-llama/Llama-3.1-8B",
          "nvidia/Llama-3.1-8B-Instruct-FP8": "meta-llama/Llama-3.1-8B",
          "Qwen/Qwen3-32B": "Qwen/Qwen3-32B", "meta-llama/Llama-3.1-70B": "meta-llama/Llama-3.1-70B",
          "openai/gpt-oss-120b": "openai/gpt-oss-120b"}
QUANT = {"": "bf16", "fp8": "fp8", "fp8_block": "fp8", "nvfp4": None}


def serving_rows() -> list[str]:
    """Single-GPU serving rows of real engines against our limit and `tuned` estimate."""
    if not SILICON.exists():
        return ["(../shared/external/aiconfigurator-silicon not found)"]
    from perfmodel.api import run_predict

    stats: dict[tuple[str, str], list[tuple[float, float | None]]] = {}
    for r in csv.DictReader(SILICON.open()):
        if (r["mode"], r["tp_size"], r["pp_size"]) != ("agg", "1", "1") \
                or r["model_path"] not in SERVED or r["gemm_quant_mode"] not in QUANT:
            continue
        gpu = {"h100_sxm": "h100-sxm-measured", "h200_sxm": "h200-measured"}[r["system"]]
        kw = dict(gpu=gpu, precision=QUANT[r["gemm_quant_mode"]], input_len=int(r["isl"]),
                  output_len=int(r["osl"]), engine="tuned")
        fit = run_predict(SERVED[r["model_path"]], batch=int(r["batch_size"]), **kw)
        batch = max(1, min(int(r["batch_size"]), fit.prediction.memory.max_batch))
        pred = run_predict(SERVED[r["model_path"]], batch=batch, **kw).prediction
        tpot = float(r["silicon_tpot_ms"]) / 1e3
        est = pred.estimate["itl_s"] if pred.estimate else None
        key = (r["backend"], f"{SERVED[r['model_path']]} {r['gemm_quant_mode'] or 'bf16'} "
                             f"{r['system']}")
        stats.setdefault(key, []).append((pred.limit["itl_s"] / tpot,
                                          None if est is None else est / tpot))
    rows = ["| engine | model, precision, GPU | rows | limit / TPOT (min–max) | "
            "tuned estimate / TPOT (median) |", "|---|---|---|---|---|"]
    for (engine, what), values in sorted(stats.items()):
        lim = [v[0] for v in values]
        est = [v[1] for v in values if v[1] is not None]
        med = f"{quantile(est, 0.5):.2f}" if est else "—"
        rows.append(f"| {engine} | {what} | {len(values)} | {min(lim):.2f}–{max(lim):.2f} | "
                    f"{med} |")
    return rows


def write_report(by_device: dict[str, list[Point]], lean: list[Point], points_table,
                 summary_rows) -> None:
    groups = {}
    for name, points in by_device.items():
        groups[f"{name}, all"] = points
        for phase in ("prefill", "decode"):
            groups[f"{name}, {phase}"] = [p for p in points if p.phase == phase]
        moe = [p for p in points if "A3B" in p.model or "Mixtral" in p.model]
        if moe:
            groups[f"{name}, MoE"] = moe
            groups[f"{name}, dense"] = [p for p in points if p not in moe]
    if lean:
        groups["independent lean engine, Llama-3.1-8B, H100"] = lean
    body = ["## Summary (estimate of the `torch-cudagraph` engine against measured)", "",
            *summary_rows(groups), "",
            "## The independent lean engine (`../shared/validation/`)", "",
            *points_table(lean), "",
            "## Real serving engines (`../shared/external/aiconfigurator-silicon/`)", "",
            "Single-GPU aggregated serving; the batch is the concurrency, capped at what fits "
            "in memory. TPOT includes any prefill the engine mixed into decode steps.", "",
            *serving_rows(), ""]
    for name, points in by_device.items():
        body += [f"## Every measured point, {name}", "", *points_table(points), "",
                 f"![roofline]({'roofline-' + name}.svg)", ""]
    text = DOC.read_text() if DOC.exists() else f"# Validation\n\n{START}\n{END}\n"
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    DOC.write_text(head + START + "\n" + "\n".join(body) + "\n" + END + tail)
