"""Serving metrics from a simulation: latency distributions, throughput, KV use (SI units).

TTFT = first token − arrival (queueing included); TPOT = (E2E − TTFT) / (O − 1) per request;
ITL = the gap before each token after the first, i.e. the step time, once per decoder in the
step; E2E = last token − arrival. Each as mean, median, p90, p99 (linear interpolation between
order statistics, numpy's default; ITL weighted by decoders per step). Throughput counts output
tokens over the whole run (first arrival to last token), per GPU and per user (1 / mean TPOT).
"""

from __future__ import annotations

import math
from collections import Counter
from itertools import starmap
from operator import itemgetter, mul
from typing import Any, Sequence

from perfmodel.serve.simulate import Outcome


def weighted_quantile(pairs: Sequence[tuple[float, int]], q: float) -> float:
    """The q-quantile of values each repeated `weight` times (the lower order statistic)."""
    return _weighted_quantiles(sorted(pairs), (q,))[0]


def _weighted_quantiles(ordered: Sequence[tuple[float, int]], qs: Sequence[float]
                        ) -> list[float]:
    """weighted_quantile at each of the ascending qs, over pairs already sorted, in one pass."""
    total = sum(w for _, w in ordered)
    out, seen, k = [], 0, 0
    for value, weight in ordered:
        seen += weight
        while k < len(qs) and seen > qs[k] * (total - 1):
            out.append(value)
            k += 1
        if k == len(qs):
            return out
    return out + [ordered[-1][0]] * (len(qs) - k)


def _quantile_sorted(ordered: Sequence[float], q: float) -> float:
    """stats.quantile over values already sorted (the same arithmetic)."""
    pos = q * (len(ordered) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (pos - lo) * (ordered[hi] - ordered[lo])


def summary(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "median": None, "p90": None, "p99": None}
    ordered = sorted(values)  # once, for the three quantiles
    return {"mean": sum(values) / len(values), "median": _quantile_sorted(ordered, 0.5),
            "p90": _quantile_sorted(ordered, 0.9), "p99": _quantile_sorted(ordered, 0.99)}


def _grouped_quantiles(groups: Sequence[tuple[tuple[float, int], int]], total: int,
                       qs: Sequence[float]) -> list[float]:
    """_weighted_quantiles over sorted ((value, weight), repeats) groups of like pairs: the
    same values (a quantile that a group's pairs cross is that group's value)."""
    out, seen, k = [], 0, 0
    for (value, weight), repeats in groups:
        seen += weight * repeats
        while k < len(qs) and seen > qs[k] * (total - 1):
            out.append(value)
            k += 1
        if k == len(qs):
            return out
    return out + [groups[-1][0][0]] * (len(qs) - k)


def itl_summary(pairs: Sequence[tuple[float, int]]) -> dict[str, float | None]:
    if not pairs:
        return summary([])
    total = sum(map(itemgetter(1), pairs))
    # like steps recur (remembered step times): count them, then sort the distinct ones
    median, p90, p99 = _grouped_quantiles(sorted(Counter(pairs).items()), total,
                                          (0.5, 0.9, 0.99))
    return {"mean": sum(starmap(mul, pairs)) / total,
            "median": median, "p90": p90, "p99": p99}


def metrics(out: Outcome, gpus: int) -> dict[str, Any]:
    """The JSON-ready metrics of one run (docs/json.md, `perfmodel serve --json`); "limit" holds
    the roofline clock of the same schedule until run_serve replaces it with the bounds."""
    done = out.done
    tpot = [d.tpot for d in done if d.tpot is not None]
    tokens = sum(d.osl for d in done)
    mean_tpot = sum(tpot) / len(tpot) if tpot else None
    return {
        "requests": len(done),
        "ttft_s": summary([d.ttft for d in done]),
        "tpot_s": summary(tpot),
        "itl_s": itl_summary(out.itl),
        "e2e_s": summary([d.e2e for d in done]),
        "limit": {"ttft_s": summary([d.ttft_lim for d in done]),
                  "tpot_s": summary([d.tpot_lim for d in done if d.tpot_lim is not None]),
                  "e2e_s": summary([d.e2e_lim for d in done])},
        "throughput": {
            "requests_s": len(done) / out.duration if out.duration else None,
            "output_tok_s": tokens / out.duration if out.duration else None,
            "output_tok_s_per_gpu": tokens / out.duration / gpus if out.duration else None,
            "output_tok_s_per_user": 1 / mean_tpot if mean_tpot else None},
        "duration_s": out.duration,
        "steps": out.steps,
        "kv_cache": {"blocks": out.total_blocks, "peak_blocks_used": out.peak_blocks,
                     "peak_fraction": out.peak_blocks / out.total_blocks},
        "preemptions": out.preemptions,
    }


def finite(doc: Any) -> Any:
    """doc with every NaN or infinite float replaced by None (JSON null), at any depth: a
    figure that is not a number is reported as absent, never written as NaN."""
    if isinstance(doc, float):
        return doc if math.isfinite(doc) else None
    if isinstance(doc, dict):
        return {k: finite(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [finite(v) for v in doc]
    if isinstance(doc, tuple):
        return tuple(finite(v) for v in doc)
    return doc
