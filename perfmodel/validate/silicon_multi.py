"""validate-serving on the multi-GPU aggregated rows (TP, EP, attention DP; pp 1).

Rows: mode agg, pp 1, tp_size·attention_dp_size > 1 or moe_ep_size > 1, of a model perfmodel
builds (silicon.BUILDS: DeepSeek-R1 rows run DeepSeek-V3's bundled config, the same
architecture; "other model" counts the rest, the held-out models among them, whose rows
`held_out_rows` takes instead). Declared rules, fixed before any figure was seen:
- a row whose tp_size·attention_dp_size exceeds 8 is skipped as inconsistent: the systems are
  8-GPU HGX nodes, and those rows (tp_size 64 or attention_dp_size 64 under ids saying tp8_ep8)
  mix up their columns;
- a measurement listed twice (same engine, model, system, parallelism, quantization, lengths,
  concurrency and TPOT; the CSV holds some under two ids) counts once, the first in the file;
- only the test half (silicon.is_training false) is simulated; the training half (`train_rows`)
  joins the single-GPU training half in fitting the host overheads (silicon.fit_host_overhead);
- to keep the run near a minute, one test row in `sample` (default 4) is simulated: those whose
  sha1(id) // 2 is a multiple of sample (`--sample 1` runs every one, about 3.5 min).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable

from perfmodel.validate import silicon

NODE_GPUS = 8
SKIP_REASONS = ("other model", "inconsistent parallel columns", "duplicate measurement",
                "training half", "sampled out", "unsupported")


def _multi(row: dict[str, str]) -> bool:
    par = silicon.parallel_of(row)
    return par["tp"] * par["dp"] > 1 or par["ep"] > 1


def _aggregated(path: Path | None) -> list[dict[str, str]]:
    """Every aggregated row with pp 1, a tp_size and a quantization perfmodel runs."""
    return [r for r in silicon.csv_rows(path)
            if r["mode"] == "agg" and r["pp_size"] == "1" and r["tp_size"]
            and r["gemm_quant_mode"] in silicon.PRECISION]


def candidate_rows(path: Path | None = None) -> list[dict[str, str]]:
    """Every multi-GPU aggregated row with pp 1 and a quantization perfmodel runs."""
    return [r for r in _aggregated(path) if _multi(r)]


def _sampled(row: dict[str, str], sample: int) -> bool:
    return (int(hashlib.sha1(row["id"].encode()).hexdigest(), 16) // 2) % sample == 0


def half_or_sample(row: dict[str, str], half: str, sample: int) -> str | None:
    """The last two skip reasons every row selection shares: outside the half asked for
    ("train", "test" or "both"), or not in one row of `sample`; None: neither."""
    if half != "both" and silicon.is_training(row) != (half == "train"):
        return "training half"
    return None if _sampled(row, sample) else "sampled out"


def partition(rows: list[dict[str, str]], reasons: tuple[str, ...],
              reason_of: Callable[[dict[str, str]], str | None]
              ) -> tuple[list[dict[str, str]], dict[str, int]]:
    """(the rows reason_of keeps, how many it skipped for each of `reasons`), in row order."""
    keep, skipped = [], dict.fromkeys(reasons, 0)
    for r in rows:
        reason = reason_of(r)
        if reason:
            skipped[reason] += 1
        else:
            keep.append(r)
    return keep, skipped


def select(rows: list[dict[str, str]], sample: int = 4, half: str = "test",
           models: dict[str, str] = silicon.BUILDS
           ) -> tuple[list[dict[str, str]], dict[str, int]]:
    """(the rows to simulate, how many were skipped for each reason in SKIP_REASONS but the
    last, which simulation fills in). half "train" keeps the training half instead of the
    test half (the reason "training half" then counts the test rows left out), "both" keeps
    both; models: the model paths taken (silicon.BUILDS, or silicon.HELD_OUT)."""
    seen = set()

    def reason_of(r: dict[str, str]) -> str | None:
        par = silicon.parallel_of(r)
        key = tuple(r[k] for k in ("backend", "model_path", "system", "tp_size",
                                   "attention_dp_size", "moe_ep_size", "gemm_quant_mode", "isl",
                                   "osl", "batch_size", "silicon_tpot_ms"))
        reason = ("other model" if r["model_path"] not in models else
                  "inconsistent parallel columns" if par["tp"] * par["dp"] > NODE_GPUS else
                  "duplicate measurement" if key in seen else
                  half_or_sample(r, half, sample))
        seen.add(key)
        return reason

    return partition(rows, SKIP_REASONS, reason_of)


def train_rows(path: Path | None = None) -> list[dict[str, str]]:
    """Every training-half multi-GPU row that select's rules keep (no sampling)."""
    return select(candidate_rows(path), sample=1, half="train")[0]


def held_out_rows(path: Path | None = None) -> tuple[list[dict[str, str]], dict[str, int]]:
    """Every aggregated row (one GPU or many, pp 1, both halves) of a model in
    silicon.HELD_OUT, by select's other rules; (rows, skipped by reason)."""
    return select(_aggregated(path), sample=1, half="both", models=silicon.HELD_OUT)


def validate_multi(on_row=None, path: Path | None = None, sample: int = 4,
                   held_out: bool = False):
    """Simulate the selected test-half rows (held_out: every row of the held-out models);
    (results, skipped by reason). on_row(done, total) after each row."""
    from perfmodel.errors import PerfmodelError

    rows, skipped = held_out_rows(path) if held_out else select(candidate_rows(path), sample)
    results = []
    for i, row in enumerate(rows, 1):
        try:
            results.append(silicon.simulate_row(row))
        except PerfmodelError:
            skipped["unsupported"] += 1
        if on_row is not None:
            on_row(i, len(rows))
    return results, skipped
