"""Synthetic workloads beside Poisson and fixed lengths: bursty (Gamma) arrivals and length
distributions, seeded and reproducible (docs/serving.md, "Workloads").

Arrivals with --burstiness B, as vLLM 0.26.0 `vllm bench serve --burstiness` draws them
(`vllm/benchmarks/serve.py` `get_request`): gaps Gamma(shape B, scale 1/(R·B)) (mean 1/R,
coefficient of variation 1/√B; B = 1 is Poisson), one drawn before every request, the first
included, summed, then every time rescaled so the last request is sent at N/R exactly ("to
stabilize the throughput data from different random seeds"); B = inf sends one every 1/R.

Lengths with --range-ratio r, as vLLM 0.26.0's random dataset (`vllm/benchmarks/datasets/
utils.py` `get_sampling_params`): input uniform over the whole numbers of
[floor(I·(1 − r)), ceil(I·(1 + r))], output independently over [max(1, floor(O·(1 − r))),
max(1, ceil(O·(1 + r)))], 0 ≤ r < 1. (vLLM subtracts the tokenizer's special tokens from
--random-input-len before this: pass I = that length less them.) --length-dist normal or
lognormal: input and output drawn independently with mean I (O) and coefficient of variation
--length-cv, rounded to whole tokens, at least 1 (the normal's tail below 1 piles up at 1).
Python's `random` draws, seeded by --seed: the same distributions as vLLM's numpy draws, not
the same numbers.
"""

from __future__ import annotations

import math
import random

from perfmodel.errors import MAX_TOKENS, WorkloadError

LENGTH_DISTS = ("fixed", "uniform", "normal", "lognormal")
MAX_CV = 10.0  # --length-cv: a log-normal of CV 10 already puts the median at 1/10 of the mean


def gamma_times(count: int, rate: float, burstiness: float, rng: random.Random) -> list[float]:
    """Send times of `count` requests at `rate` per second with Gamma gaps of shape
    `burstiness`, as vLLM's get_request: cumulative gaps (the first request's too), rescaled
    so the last is sent at count / rate. rate = inf sends all at 0."""
    if not burstiness > 0:
        raise WorkloadError(f"--burstiness must be > 0 (1 is Poisson; below 1 burstier, above 1 "
                            f"more even; inf evenly spaced), not {burstiness!r}")
    if math.isinf(rate):
        return [0.0] * count
    if math.isinf(burstiness):
        gaps = [1.0 / rate] * count
    else:
        scale = 1.0 / (rate * burstiness)
        gaps = [rng.gammavariate(burstiness, scale) for _ in range(count)]
    times, t = [], 0.0
    for gap in gaps:
        t += gap
        times.append(t)
    if times[-1] > 0:
        factor = count / rate / times[-1]
        times = [x * factor for x in times]
    return times


def _uniform_bounds(mean: int, ratio: float, low_at_least: int) -> tuple[int, int]:
    return (max(low_at_least, math.floor(mean * (1 - ratio))),
            max(low_at_least, math.ceil(mean * (1 + ratio))))


def length_bounds(isl: int, osl: int, range_ratio: float) -> tuple[tuple[int, int],
                                                                    tuple[int, int]]:
    """vLLM's closed intervals for input and output lengths at --range-ratio r."""
    if not 0 <= range_ratio < 1:
        raise WorkloadError(f"--range-ratio must be in [0, 1) as vLLM's --random-range-ratio, "
                            f"not {range_ratio!r}")
    inp = _uniform_bounds(isl, range_ratio, 0)
    if inp[0] < 1:
        raise WorkloadError(f"--isl {isl} at --range-ratio {range_ratio} can draw an empty "
                            "prompt; raise --isl or lower --range-ratio")
    return inp, _uniform_bounds(osl, range_ratio, 1)


def _normal(mean: int, cv: float, rng: random.Random) -> int:
    return min(MAX_TOKENS, max(1, round(rng.gauss(mean, cv * mean))))


def _lognormal(mean: int, cv: float, rng: random.Random) -> int:
    """A log-normal of this mean and coefficient of variation: σ² = ln(1 + CV²),
    μ = ln(mean) − σ²/2."""
    sigma = math.sqrt(math.log1p(cv * cv))
    return min(MAX_TOKENS, max(1, round(rng.lognormvariate(math.log(mean) - sigma ** 2 / 2,
                                                           sigma))))


def check_lengths(dist: str | None, range_ratio: float | None, cv: float | None) -> str:
    """The length distribution these options name (fixed without any), or a WorkloadError."""
    dist = dist or ("uniform" if range_ratio is not None else "fixed")
    if dist not in LENGTH_DISTS:
        raise WorkloadError(f"--length-dist takes {', '.join(LENGTH_DISTS)}, not {dist!r}")
    if (dist == "uniform") != (range_ratio is not None):
        raise WorkloadError("--range-ratio sets the uniform lengths' spread (and only theirs): "
                            "pass it with --length-dist uniform or alone")
    if (dist in ("normal", "lognormal")) != (cv is not None):
        raise WorkloadError("--length-cv sets the spread of --length-dist normal or lognormal "
                            "(and only theirs): pass the two together")
    if cv is not None and not 0 <= cv <= MAX_CV:
        raise WorkloadError(f"--length-cv must be from 0 to {MAX_CV:g}, not {cv!r}")
    return dist


def draw_lengths(count: int, isl: int, osl: int, dist: str, range_ratio: float | None,
                 cv: float | None, rng: random.Random) -> list[tuple[int, int]]:
    """`count` (input, output) pairs of distribution `dist` (check_lengths) around I and O:
    vLLM draws every input length, then every output length; so does this."""
    if dist == "uniform":
        (ilo, ihi), (olo, ohi) = length_bounds(isl, osl, range_ratio)
        inputs = [rng.randint(ilo, ihi) for _ in range(count)]
        outputs = [rng.randint(olo, ohi) for _ in range(count)]
    else:
        draw = _normal if dist == "normal" else _lognormal
        inputs = [draw(isl, cv, rng) for _ in range(count)]
        outputs = [draw(osl, cv, rng) for _ in range(count)]
    return list(zip(inputs, outputs))


def workload_doc(full, burstiness: float | None, range_ratio: float | None,
                 length_dist: str | None, length_cv: float | None, trace_in: str | None,
                 speedup: float) -> dict:
    """The --json workload keys of these options (docs/json.md): none when none is used, so a
    run without them keeps its document."""
    doc: dict = {}
    if burstiness is not None:
        doc["burstiness"] = burstiness  # inf (evenly spaced) is written as null
    if not (range_ratio is None and length_dist is None and length_cv is None):
        doc["lengths"] = {"dist": check_lengths(length_dist, range_ratio, length_cv),
                          "range_ratio": range_ratio, "cv": length_cv}
    if trace_in is not None:
        reqs = full.requests
        doc["trace_in"] = {"path": str(trace_in), "speedup": speedup,
                           "span_s": reqs[-1].arrival - reqs[0].arrival,
                           "mean_isl": sum(r.isl for r in reqs) / len(reqs),
                           "mean_osl": sum(r.osl for r in reqs) / len(reqs)}
    return doc
