"""Lock-step against drifting closed-loop clients on the training half of the serving rows
(docs/serving.md, "Evaluated and not kept: every closed loop in lock-step").

Each training row (one GPU and many, as `perfmodel validate-serving --fit` takes them) is served
twice per regime, at 0 and 1 ms of host overhead per step; the per-engine overhead is refitted
by validate-serving's rule (median over the engine's rows of the overhead that makes the row's
TPOT its measured one, floored at 0) and each row's TPOT and TTFT are read at it, linear in the
overhead between the two runs. The staggered regime gives back the committed fit.

    PYTHONPATH=. python3 scripts/lockstep_eval.py      # about 7 min on 2 cores
"""

from __future__ import annotations

import functools
import os
import statistics
from collections import defaultdict
from multiprocessing import Pool

REGIMES = ("staggered", "lock-step")


def _init(regime: str) -> None:
    import perfmodel.serve as serve

    if regime == "lock-step":
        serve.run_serve = functools.partial(serve.run_serve, stagger=False)


def _probe(row: dict[str, str]) -> tuple | None:
    """(engine, OSL, measured TPOT and TTFT, simulated TPOT and TTFT at 0 and 1 ms), or None."""
    from perfmodel.errors import PerfmodelError
    from perfmodel.validate.silicon import simulate_row

    try:
        zero, one = simulate_row(row, 0.0), simulate_row(row, 1e-3)
    except PerfmodelError:
        return None
    if zero.prefix_cached:
        return None
    return (row["backend"], int(row["osl"]), zero.tpot_s, zero.ttft_s, zero.tpot_est_s,
            one.tpot_est_s, zero.ttft_est_s, one.ttft_est_s)


def _quantiles(errors: list[float]) -> str:
    ordered = sorted(errors)
    return f"{100 * statistics.median(ordered):5.1f}% / {100 * ordered[int(0.9 * len(ordered))]:5.1f}%"


def report(regime: str, probes: list[tuple]) -> None:
    need = defaultdict(list)
    for engine, _, tpot, _, t0, t1, _, _ in probes:
        if t1 > t0:
            need[engine].append((tpot - t0) / ((t1 - t0) / 1e-3))
    fit = {engine: max(0.0, statistics.median(v)) for engine, v in need.items()}
    errors = defaultdict(lambda: defaultdict(list))
    for engine, osl, tpot, ttft, t0, t1, f0, f1 in probes:
        h = fit[engine] / 1e-3
        est_tpot, est_ttft = t0 + (t1 - t0) * h, f0 + (f1 - f0) * h
        for key in (engine, "all"):
            errors[key]["TPOT"].append(abs(est_tpot / tpot - 1))
            errors[key]["TTFT"].append(abs(est_ttft / ttft - 1))
            errors[key]["tok/s per GPU"].append(
                abs((ttft + (osl - 1) * tpot) / (est_ttft + (osl - 1) * est_tpot) - 1))
    print(f"{regime}: host overhead " + ", ".join(f"{e} {1e3 * v:.2f} ms"
                                                  for e, v in sorted(fit.items())))
    for key in sorted(errors):
        print(f"  {key:7} {len(errors[key]['TPOT']):4d} rows  " + "  ".join(
            f"{name} {_quantiles(v)}" for name, v in errors[key].items()))


def main() -> None:
    from perfmodel.validate import silicon
    from perfmodel.validate.silicon_multi import train_rows

    rows = [r for r in silicon.serving_rows() if silicon.is_training(r)] + train_rows()
    print(f"{len(rows)} training rows; median / p90 |error| at the refitted overhead")
    for regime in REGIMES:
        with Pool(os.cpu_count() or 1, initializer=_init, initargs=(regime,)) as pool:
            report(regime, [p for p in pool.map(_probe, rows, chunksize=4) if p])


if __name__ == "__main__":
    main()
