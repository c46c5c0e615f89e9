"""Does plan pick what the measurements would? The check against real serving data.

For each (model, GPU, engine, ISL/OSL) group of the single-GPU aggregated serving rows in
../shared/external/aiconfigurator-silicon (perfmodel.validate.silicon), the candidates are the
group's measured configurations (precision × concurrency). Measured output tokens/s per GPU of a
row is C·O / (TTFT + (O−1)·TPOT) / GPUs (a closed loop of C requests, each taking its TTFT plus
O−1 inter-token gaps). The target is the TPOT of the row with the best measured tokens/s per
GPU; plan, given that TPOT as its SLO, picks the candidate with the most simulated tokens/s per
GPU among those whose simulated TPOT meets it. The group passes when the pick's *measured*
tokens/s per GPU is within 10% of the best measured. Only test-half rows count (the serving
simulation's one fitted constant saw the training half only); `python -m
perfmodel.plan.silicon_check [--all] [--one-gpu] [--markdown] [--slack=0.1] [--oracle=0.01]`
prints the table (--slack loosens the target by that fraction: how close the misses were, not
the check; --oracle adds what a model passes that knows every measurement to ± that relative
error, silicon_oracle.py).
The candidates of a group span its measured GPU counts and parallelisms too: the many-GPU rows
that `validate-serving --rows multi` keeps join the one-GPU rows (--one-gpu: those alone).
Prefix-cached rows (validate-serving's rule) are left out, as they are from its figures.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

from perfmodel.plan.grid import SERVE, Point
from perfmodel.plan.silicon_oracle import oracle_passes
from perfmodel.plan.silicon_rank import TOLERANCE, GroupCheck, Row, rank
from perfmodel.plan.sweep import run_points


def _point(row: Row) -> Point:
    from perfmodel.validate.silicon import BUILDS, serve_kwargs

    kw = serve_kwargs(row)
    return Point(BUILDS[row["model_path"]], kw["gpu"], SERVE, kw["precision"], kw["kv_dtype"],
                 kw["engine"], tp=kw["tp"], ep=kw["ep"], dp=kw["dp"], load=kw["concurrency"],
                 isl=kw["isl"], osl=kw["osl"], requests=kw["num_requests"],
                 max_num_batched_tokens=kw.get("max_num_batched_tokens"))


def prefix_cached(row: Row, sim: dict[str, Any]) -> bool:
    """validate-serving's rule (validate/silicon.py prefill_load): a row whose measured request
    rate needs more than the whole GPU at its roofline just to prefill the prompts from scratch
    measured a cached prefix, a workload the simulation does not run; left out as there."""
    from perfmodel.validate.silicon import prefill_load

    if sim.get("error") is not None or not sim.get("limit_ttft_s"):
        return False
    return prefill_load(row, sim["parallel_schedulers"], sim["limit_ttft_s"]) > 1


def check(rows: Sequence[Row], simulated: dict[str, dict[str, Any]], slack: float = 0.0
          ) -> list[GroupCheck]:
    """Every group of two or more rows, prefix-cached rows left out; simulated maps row id ->
    its serve row. slack > 0 loosens the target to TPOT × (1 + slack), a sensitivity view, not
    the check itself."""
    return rank([r for r in rows if not prefix_cached(r, simulated[r["id"]])], simulated, slack)


def check_rows(test_half_only: bool = True, one_gpu: bool = False) -> list[Row]:
    """The rows the check ranks: the one-GPU aggregated rows and, unless one_gpu, the many-GPU
    ones (TP, EP, attention DP) that validate-serving --rows multi keeps; test half only unless
    told otherwise."""
    from perfmodel.validate import silicon_multi
    from perfmodel.validate.silicon import is_training, serving_rows

    rows = [r for r in serving_rows() if not (test_half_only and is_training(r))]
    if not one_gpu:
        many = silicon_multi.candidate_rows()
        rows += silicon_multi.select(many, sample=1)[0]
        if not test_half_only:
            rows += silicon_multi.select(many, sample=1, half="train")[0]
    return rows


def simulate_rows(test_half_only: bool = True, workers: int | None = None,
                  one_gpu: bool = False) -> tuple[list[Row], dict[str, dict[str, Any]]]:
    """Simulate every row once (on all cores): the rows the check ranks (prefix-cached ones left
    out) and each row's serve row by id."""
    rows = check_rows(test_half_only, one_gpu)
    sims = {r["id"]: sim for r, sim in zip(rows, run_points([_point(r) for r in rows],
                                                             workers=workers))}
    return [r for r in rows if not prefix_cached(r, sims[r["id"]])], sims


def run(test_half_only: bool = True, workers: int | None = None, slack: float = 0.0,
        one_gpu: bool = False) -> list[GroupCheck]:
    """Simulate every row once (on all cores) and check each group."""
    return rank(*simulate_rows(test_half_only, workers, one_gpu), slack)


def _option(argv: Sequence[str], name: str, default: str) -> str:
    return next((a.split("=", 1)[1] for a in argv if a.startswith(f"--{name}=")), default)


def main(argv: Sequence[str]) -> None:
    """Print each group's result (a markdown table with --markdown) and the count that pass;
    --oracle=0.01,0.05 adds what an oracle with those errors passes (silicon_oracle.py)."""
    slack = float(_option(argv, "slack", "0"))
    sigmas = [float(x) for x in _option(argv, "oracle", "").split(",") if x]
    kept, sims = simulate_rows(test_half_only="--all" not in argv, one_gpu="--one-gpu" in argv)
    results = rank(kept, sims, slack)
    markdown = "--markdown" in argv
    if markdown:
        print("| model | GPU | engine | ISL/OSL | rows | TPOT target | pick / best measured |")
        print("|---|---|---|---|---|---|---|")
    for g in results:
        ratio = "no pick" if g.ratio is None else f"{100 * g.ratio:.1f}%"
        model, system, engine, isl, osl = g.key
        if markdown:
            print(f"| {model} | {system} | {engine} | {isl}/{osl} | {g.rows} | "
                  f"{g.target_tpot_s * 1e3:.2f} ms | {ratio}{'' if g.passed else ' ✗'} |")
        else:
            print(f"{'pass' if g.passed else 'FAIL'}  {ratio:>7}  {g.rows:3d} rows  TPOT ≤ "
                  f"{g.target_tpot_s * 1e3:6.2f} ms  {model} {system} {engine} {isl}/{osl}")
    passed = sum(g.passed for g in results)
    ratios = sorted(g.ratio or 0.0 for g in results)
    median = ratios[len(ratios) // 2] if ratios else float("nan")
    print(f"\n{passed} of {len(results)} groups: plan's pick within {TOLERANCE:.0%} of the best "
          f"measured tokens/s per GPU (median pick / best {100 * median:.1f}%)")
    for sigma in sigmas:
        print(_oracle_line(kept, sigma, slack, len(results)))


def _oracle_line(rows: Sequence[Row], sigma: float, slack: float, groups_n: int) -> str:
    from perfmodel.stats import quantile

    passes = oracle_passes(rows, sigma, slack=slack)
    return (f"oracle, every row measured ± {100 * sigma:g}% (normal, {len(passes)} draws): "
            f"median {quantile(passes, 0.5):.0f} of {groups_n} groups, 5-95% "
            f"{quantile(passes, 0.05):.0f}-{quantile(passes, 0.95):.0f}, every group in "
            f"{sum(p == groups_n for p in passes)} draws")


if __name__ == "__main__":
    main(sys.argv[1:])
