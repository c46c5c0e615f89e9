"""Request generators: how many requests, how long each is, and when each arrives.

Closed loop (`--concurrency C`, as `vllm bench serve --max-concurrency` runs): C clients, each
sends its next request the moment its previous one ends, so arrival times come out of the
simulation. Open loop (`--request-rate R`): Poisson arrivals at R per second, seeded; R = inf
queues every request at time 0, as max-throughput benchmarks do. Bursty (Gamma) arrivals and
drawn lengths: serve/workload.py; a replayed trace: serve/trace_in.py.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

from perfmodel.errors import (MAX_BATCH, MAX_REQUESTS, MAX_TOKENS, WorkloadError, shown,
                              whole)


@dataclass(frozen=True)
class RequestSpec:
    """One request: I = isl prompt tokens, O = osl output tokens, arrival in seconds (None:
    closed loop, sent when a client is free); optionally a shared prompt prefix and an SLO
    class."""

    isl: int
    osl: int
    arrival: float | None = None
    prefix_id: int | None = None  # requests with the same id share their first prefix_len tokens
    prefix_len: int = 0  # prompt tokens shared with the other requests of prefix_id (≤ isl)
    slo_class: str | None = None  # the SLO class whose TTFT/TPOT targets apply (None: none)


@dataclass(frozen=True)
class Arrivals:
    """The requests of one run and how they arrive: concurrency C (closed loop) or rate R."""

    requests: tuple[RequestSpec, ...]
    concurrency: int | None
    rate: float | None


MAX_LENGTHS_BYTES = 100 * 10**6  # a million lines of {"input_len": …, "output_len": …}


def read_lengths(path: str) -> list[tuple[int, int]]:
    """(isl, osl) pairs from a JSONL file: one object a line with input_len and output_len
    (isl/osl and prompt_len/output_tokens are read too)."""
    file = Path(path)
    if not file.is_file():
        what = ("is a folder" if file.is_dir() else "is a device or other special file"
                if file.exists() else "no such file")
        raise WorkloadError(f"--lengths {path}: {what}; pass a JSONL file of "
                            '{"input_len": I, "output_len": O} lines')
    if file.stat().st_size > MAX_LENGTHS_BYTES:
        raise WorkloadError(f"--lengths {path} is over {MAX_LENGTHS_BYTES // 10**6} MB; pass at "
                            "most a million lines")
    try:
        text = file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"--lengths {path}: cannot read it ({exc}); pass a readable UTF-8 "
                            "JSONL file") from None
    pairs = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            isl = row.get("input_len", row.get("isl", row.get("prompt_len")))
            osl = row.get("output_len", row.get("osl", row.get("output_tokens")))
            pairs.append((_whole(isl, "input_len"), _whole(osl, "output_len")))
        except (ValueError, AttributeError, TypeError, RecursionError) as exc:
            raise WorkloadError(f"--lengths {path} line {number}: {exc}; each line must be "
                                '{"input_len": I, "output_len": O}') from None
    if not pairs:
        raise WorkloadError(f"--lengths {path} holds no lines")
    return pairs


def _whole(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TOKENS:
        raise ValueError(f"{name} must be a whole number from 1 to {MAX_TOKENS:,}, not "
                         f"{shown(value)}")
    return value


def make_arrivals(*, concurrency: int | None, request_rate: float | None, isl: int, osl: int,
                  num_requests: int | None, lengths: str | None, seed: int,
                  burstiness: float | None = None, range_ratio: float | None = None,
                  length_dist: str | None = None, length_cv: float | None = None) -> Arrivals:
    """The run's requests. Default count: 10·C (at least 100) closed loop, 1,000 open loop;
    with --lengths, the file's lines, cycled or cut to num_requests. burstiness (open loop):
    vLLM's Gamma arrivals; range_ratio, length_dist, length_cv: drawn lengths (serve/workload.py);
    none of them: Poisson arrivals from t = 0 and the one length pair or the file's."""
    if (concurrency is None) == (request_rate is None):
        raise WorkloadError("pass exactly one of --concurrency C (closed loop) or "
                            "--request-rate R (Poisson; inf sends all at once)")
    if concurrency is not None:
        whole(concurrency, "--concurrency", MAX_BATCH)
    if request_rate is not None and not request_rate > 0:
        raise WorkloadError(f"--request-rate must be > 0 (or inf), not {request_rate!r}")
    for flag, value in (("--isl", isl), ("--osl", osl)):
        whole(value, flag, MAX_TOKENS)
    drawn = not (range_ratio is None and length_dist is None and length_cv is None)
    if drawn:
        from perfmodel.serve.workload import check_lengths
        dist = check_lengths(length_dist, range_ratio, length_cv)
        if lengths:
            raise WorkloadError("--lengths reads each request's lengths from a file; drop "
                                "--range-ratio, --length-dist and --length-cv, or the file")
    if burstiness is not None and request_rate is None:
        raise WorkloadError("--burstiness shapes open-loop arrivals; pass it with "
                            "--request-rate R, not --concurrency")
    pairs = read_lengths(lengths) if lengths else [(isl, osl)]
    count = num_requests if num_requests is not None else (
        len(pairs) if lengths else max(10 * concurrency, 100) if concurrency else 1000)
    whole(count, "--num-requests", MAX_REQUESTS)
    rng = random.Random(seed)
    if drawn and dist != "fixed":
        from perfmodel.serve.workload import draw_lengths
        pairs = draw_lengths(count, isl, osl, dist, range_ratio, length_cv, rng)
    if request_rate is None:  # closed loop: no arrival times, so like requests share one spec
        specs = tuple(RequestSpec(*pair) for pair in pairs)
        return Arrivals((specs * (count // len(specs) + 1))[:count], concurrency, request_rate)
    if burstiness is not None:
        from perfmodel.serve.workload import gamma_times
        times = gamma_times(count, request_rate, burstiness, rng)
    else:
        t, times = 0.0, []
        for _ in range(count):
            times.append(t)
            if not math.isinf(request_rate):
                t += rng.expovariate(request_rate)
    reqs = tuple(RequestSpec(*pairs[i % len(pairs)], times[i]) for i in range(count))
    return Arrivals(reqs, concurrency, request_rate)
