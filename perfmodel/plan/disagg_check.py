"""plan's choice between aggregated and disaggregated serving against the measurements'
(validate-serving --rows disagg; docs/serving.md, "Validation on the disaggregated rows").

`choices` compares agg and disagg per (engine, model, GPU, isl, osl) group that has rows of both:
for each group and each TPOT target (the 25th, 50th and 75th percentile of the measured TPOT
over the group's rows: SLO_QUANTILES), plan's
rule (plan.search.pick_best: the most output tokens/s per GPU among the rows meeting it) picks a
row, once on the measurements and once on the simulation of the same rows; the pick matches
when both pick the same mode. Tokens/s per GPU of a row: C·O / (TTFT + (O − 1)·TPOT) / GPUs.
"""

from __future__ import annotations

from pathlib import Path

from perfmodel.plan.search import Slo, pick_best
from perfmodel.stats import quantile
from perfmodel.validate import silicon
from perfmodel.validate.silicon_disagg import disagg_rows, gpus_of, run_rows, select_disagg, \
    simulate_row
from perfmodel.validate.silicon_multi import _aggregated, select

SLO_QUANTILES = (0.25, 0.5, 0.75)  # the groups' TPOT targets: these quantiles of their rows'


def tok_s_per_gpu(conc: int, osl: int, ttft: float, tpot: float, gpus: int) -> float:
    return conc * osl / (ttft + (osl - 1) * tpot) / gpus


def _group(row: dict[str, str]) -> tuple[str, ...]:
    return (row["backend"], silicon.BUILDS.get(row["model_path"], row["model_path"]),
            row["system"], row["isl"], row["osl"])


def choices(on_row=None, path: Path | None = None, quantiles=SLO_QUANTILES
            ) -> tuple[list[dict], list[tuple[str, silicon.SimulatedRow]]]:
    """Per group with agg and disagg rows and per TPOT target (module docstring): the measured
    and the simulated pick, both halves (no constant is fitted on them), each mode's best
    tokens/s per GPU; and every simulated row with its mode."""
    disagg, _ = select_disagg(disagg_rows(path), 1, half="both")
    agg, _ = select(_aggregated(path), sample=1, half="both")
    groups: dict[tuple, dict[str, list]] = {}
    for mode, rows in (("agg", agg), ("disagg", disagg)):
        for r in rows:
            groups.setdefault(_group(r), {"agg": [], "disagg": []})[mode].append(r)
    both = {k: v for k, v in groups.items() if v["agg"] and v["disagg"]}
    todo = [(mode, r) for v in both.values() for mode in ("agg", "disagg") for r in v[mode]]

    def one(item):
        mode, r = item
        return (simulate_row(r) if mode == "disagg" else silicon.simulate_row(r)), mode

    done, _ = run_rows(todo, one, on_row)
    out = []
    for key in both:
        rows = [(r, sim, mode) for (_, r), (sim, mode) in done if _group(r) == key]
        if not {m for *_, m in rows} >= {"agg", "disagg"}:
            continue
        for q in quantiles:
            slo = Slo(tpot_s=quantile([sim.tpot_s for _, sim, _ in rows], q))
            picks = {basis: _pick(rows, slo, basis == "measured")
                     for basis in ("measured", "simulated")}
            out.append({"group": "/".join(key), "rows": len(rows), "quantile": q,
                        "tpot_slo_s": slo.tpot_s, **picks,
                        "match": picks["measured"]["mode"] == picks["simulated"]["mode"]})
    return out, [(mode, sim) for (sim, mode) in (d for _, d in done)]


def _pick(rows, slo: Slo, measured: bool) -> dict:
    """plan's pick among rows (measured or simulated figures) and each mode's best."""
    table = []
    for r, sim, mode in rows:
        ttft, tpot = (sim.ttft_s, sim.tpot_s) if measured else (sim.ttft_est_s, sim.tpot_est_s)
        gpus = gpus_of(r) if mode == "disagg" else sim.gpus
        table.append({"mode": mode, "ttft_s": ttft, "tpot_s": tpot, "gpus": gpus,
                      "tok_s_per_gpu": tok_s_per_gpu(sim.concurrency, sim.osl, ttft, tpot,
                                                     gpus),
                      "tok_s_per_user": 1 / tpot})
    best = pick_best(table, slo, by_cost=False)
    per_mode = {m: max((t["tok_s_per_gpu"] for t in table if t["mode"] == m and slo.met(t)),
                       default=None) for m in ("agg", "disagg")}
    return {"mode": best["mode"] if best else None, "best_tok_s_per_gpu": per_mode}
