"""What plan's serving-data check (silicon_check.py) asks of any model: an oracle, and repeats.

The check's target is the measured TPOT of each group's best row, so whether that row stays a
candidate turns on the sign of the model's error on that one row. The oracle asks how many
groups a model passes that knows every row's measurement up to a relative error e ~ N(0, σ),
drawn per row and trial: it "simulates" TPOT as measured · (1 + e) and tokens/s per GPU as
measured / (1 + e) (one error moving both, as a step-time error does), and the check ranks
those exactly as it ranks perfmodel's simulation. σ = 0 passes every group by construction;
any σ > 0 leaves the best row out of about half the groups whose next candidate is more than
10% slower.

`repeats` measures the rows' own σ: the same configuration (model architecture, GPU, engine
and release, ISL/OSL, concurrency, parallelism, quantization) measured more than once.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Any, Sequence

from perfmodel.plan.silicon_rank import Row, measured_tok_s_per_gpu, rank, row_gpus


def oracle_sims(rows: Sequence[Row], sigma: float, rng: random.Random
                ) -> dict[str, dict[str, Any]]:
    """Each row's measurement with one relative error e ~ N(0, σ) on its step time, as plan's
    serve rows (silicon_rank.pick reads these keys)."""
    out = {}
    for row in rows:
        e = max(rng.gauss(0.0, sigma), -0.5)  # a step time stays positive
        tpot = float(row["silicon_tpot_ms"]) / 1e3 * (1 + e)
        out[row["id"]] = {"error": None, "tpot_s": tpot, "ttft_s": None, "gpus": row_gpus(row),
                          "tok_s_per_gpu": measured_tok_s_per_gpu(row) / (1 + e),
                          "tok_s_per_user": 1 / tpot}
    return out


def oracle_passes(rows: Sequence[Row], sigma: float, trials: int = 400, slack: float = 0.0,
                  seed: int = 0) -> list[int]:
    """Groups the check passes in each of `trials` draws of the oracle (rows as the check
    keeps them: test half, prefix-cached rows left out)."""
    rng = random.Random(seed)
    return [sum(g.passed for g in rank(rows, oracle_sims(rows, sigma, rng), slack))
            for _ in range(trials)]


def repeats(rows: Sequence[Row]) -> list[tuple[tuple, float]]:
    """(configuration, largest / smallest measured TPOT) for every configuration recorded with
    two or more different TPOTs (in one source file or several), smallest spread first."""
    from perfmodel.validate.silicon import BUILDS

    def key(row: Row) -> tuple:  # DeepSeek-R1 is DeepSeek-V3's architecture (BUILDS)
        model = BUILDS.get(row["model_path"], row["model_path"])
        return (model,) + tuple(row.get(k) or "" for k in (
            "system", "backend", "backend_version", "isl", "osl", "batch_size", "tp_size",
            "pp_size", "attention_dp_size", "moe_ep_size", "gemm_quant_mode", "moe_quant_mode"))

    seen: dict[tuple, set[float]] = defaultdict(set)
    for row in rows:  # a value copied into several files counts once
        seen[key(row)].add(round(float(row["silicon_tpot_ms"]), 6))
    spreads = [(k, max(v) / min(v)) for k, v in seen.items() if len(v) > 1]
    return sorted(spreads, key=lambda kv: kv[1])


def main() -> None:
    """Print how far repeated measurements of one configuration lie apart in the rows."""
    from perfmodel.stats import quantile
    from perfmodel.validate.silicon import csv_rows

    spreads = repeats([r for r in csv_rows() if r.get("mode", "agg") == "agg"])
    values = [s for _, s in spreads]
    print(f"{len(values)} configurations measured more than once, with different "
          f"TPOTs; largest / smallest TPOT: median {quantile(values, 0.5):.3f}, "
          f"p90 {quantile(values, 0.9):.3f}")
    for k, s in spreads:
        model, system, engine, version, isl, osl, c, tp, pp, adp, ep, gq, _ = k
        print(f"{s:6.3f}  {model} {system} {engine} {version or '?'} {isl}/{osl} C={c} "
              f"tp{tp} pp{pp} dp{adp or 1} ep{ep or 1} {gq or 'bf16'}")


if __name__ == "__main__":
    main()
