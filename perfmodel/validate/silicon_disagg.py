"""validate-serving on the disaggregated rows (mode disagg) of
../shared/external/aiconfigurator-silicon.

Each row gives the prefill pool (`prefill_num_workers`, `prefill_tp_size`,
`prefill_attention_dp_size`, `prefill_moe_ep_size`) and the decode pool (the same `decode_*`
columns), isl, osl, and the mean TTFT and TPOT measured. Declared rules, fixed before any figure
was seen (perfmodel/validate/silicon_multi.py's, and):
- the concurrency is `silicon_concurrency` of the row's source column; a row without it is
  skipped ("concurrency unknown": `decode_batch_size` × workers × DP, which matches it in every
  row that has both, puts the Qwen3-32B rows' measured TPOT below the roofline of their decode
  batch, so it is not their concurrency);
- a row with no worker counts (the 2026-03/04 DeepSeek-R1 files) is the same measurement as a
  row that states them (same engine, model, GPU, lengths, concurrency, TTFT and TPOT to 1 µs:
  every one checked is), so it counts as a duplicate of that row; one with no such twin is
  skipped ("workers unknown");
- EP 0 or empty is 1; pp is 1 in every row;
- the rows' split is silicon.is_training's (sha1 of the id); only the test half enters the error
  figures, and nothing is fitted here: the engines' presets (host overheads fitted on the
  aggregated training rows) run as they are;
- the KV transfer is NVLink when both pools fit one 8-GPU node, else the network (serve/disagg.py).

plan/disagg_check.py compares plan's agg-or-disagg pick with the measurements'.
"""

from __future__ import annotations

import re
from pathlib import Path

from perfmodel.validate import silicon
from perfmodel.validate.silicon_multi import half_or_sample, partition

SKIP_REASONS = ("other model", "concurrency unknown", "workers unknown",
                "duplicate measurement", "training half", "sampled out", "unsupported")


def _size(value: str) -> int:
    return int(value) if value not in ("", "0") else 1


def concurrency_of(row: dict[str, str]) -> int | None:
    """The row's concurrency (silicon_concurrency of its source), or None."""
    found = re.search(r"silicon_concurrency=(\d+)", row["silicon_data_source"])
    return int(found.group(1)) if found else None


def _measurement(row: dict[str, str]) -> tuple:
    return (row["backend"], silicon.BUILDS.get(row["model_path"], row["model_path"]),
            row["system"], row["gemm_quant_mode"], row["isl"], row["osl"], concurrency_of(row),
            round(float(row["silicon_ttft_ms"]), 3), round(float(row["silicon_tpot_ms"]), 3))


def pools_of(row: dict[str, str]) -> dict[str, int]:
    """run_serve's pool sizes for a row."""
    out = {}
    for pool in ("prefill", "decode"):
        out[f"{pool}_workers"] = _size(row[f"{pool}_num_workers"])
        out[f"{pool}_tp"] = _size(row[f"{pool}_tp_size"])
        out[f"{pool}_dp"] = _size(row[f"{pool}_attention_dp_size"])
        out[f"{pool}_ep"] = _size(row[f"{pool}_moe_ep_size"])
    return out


def gpus_of(row: dict[str, str]) -> int:
    p = pools_of(row)
    return sum(p[f"{k}_workers"] * p[f"{k}_tp"] * p[f"{k}_dp"] for k in ("prefill", "decode"))


def disagg_rows(path: Path | None = None) -> list[dict[str, str]]:
    """Every disaggregated row with a quantization perfmodel runs."""
    return [r for r in silicon.csv_rows(path)
            if r["mode"] == "disagg" and r["gemm_quant_mode"] in silicon.PRECISION]


def select_disagg(rows: list[dict[str, str]], sample: int = 1, half: str = "test"
                  ) -> tuple[list[dict[str, str]], dict[str, int]]:
    """(rows to simulate, skipped by reason): a model perfmodel builds, each measurement once,
    the test half (half "train" or "both" otherwise), one row in `sample`."""
    seen = set()
    stated = {_measurement(r) for r in rows if r["prefill_num_workers"]
              and r["decode_num_workers"]}

    def reason_of(r: dict[str, str]) -> str | None:
        key = _measurement(r)
        unstated = not (r["prefill_num_workers"] and r["decode_num_workers"])
        reason = ("other model" if r["model_path"] not in silicon.BUILDS else
                  "concurrency unknown" if concurrency_of(r) is None else
                  "duplicate measurement" if key in seen or unstated and key in stated else
                  "workers unknown" if unstated else half_or_sample(r, half, sample))
        seen.add(key)
        return reason

    return partition(rows, SKIP_REASONS, reason_of)


def serve_kwargs(row: dict[str, str], gpus: dict[str, str] = silicon.MEASURED_GPUS) -> dict:
    """run_serve arguments for a disaggregated row (fp8 rows: fp8 weights and KV cache, as
    silicon.serve_kwargs)."""
    from perfmodel.errors import WorkloadError

    if row["system"] not in gpus:
        raise WorkloadError(f"no GPU profile is mapped to the rows' system {row['system']!r}")
    prec = silicon.PRECISION[row["gemm_quant_mode"]]
    conc, osl = concurrency_of(row), int(row["osl"])
    return dict(gpu=gpus[row["system"]], engine=f"{row['backend']}@{silicon.PUBLISHED}",
                concurrency=conc, isl=int(row["isl"]), osl=osl,
                num_requests=silicon.num_requests_for(conc, osl), precision=prec,
                kv_dtype="fp8" if prec == "fp8" else None, **pools_of(row))


def simulate_row(row: dict[str, str]) -> silicon.SimulatedRow:
    """Serve one disaggregated row's workload and compare with its measurement."""
    from perfmodel.serve import run_serve

    kw = serve_kwargs(row)
    r = run_serve(silicon.BUILDS[row["model_path"]], **kw).result
    return silicon.SimulatedRow(
        row["id"], row["backend"], row["backend_version"] or "?",
        silicon.BUILDS[row["model_path"]], row["gemm_quant_mode"] or "bf16", row["system"],
        int(row["isl"]), int(row["osl"]), kw["concurrency"], silicon.is_training(row),
        float(row["silicon_ttft_ms"]) / 1e3, float(row["silicon_tpot_ms"]) / 1e3,
        r.ttft_s.mean, r.tpot_s.mean, r.limit.ttft_s.mean, r.limit.tpot_s.mean,
        r.preemptions, 0.0, r.disagg.gpus)


def run_rows(rows, simulate, on_row=None):
    from perfmodel.errors import PerfmodelError

    results, failed = [], 0
    for i, row in enumerate(rows, 1):
        try:
            results.append((row, simulate(row)))
        except PerfmodelError:
            failed += 1
        if on_row is not None:
            on_row(i, len(rows))
    return results, failed


def validate_disagg(on_row=None, path: Path | None = None, sample: int = 1):
    """Simulate the selected test-half disaggregated rows; (results, skipped by reason)."""
    rows, skipped = select_disagg(disagg_rows(path), sample)
    done, skipped["unsupported"] = run_rows(rows, simulate_row, on_row)
    return [r for _, r in done], skipped
