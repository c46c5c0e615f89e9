"""plan --speculative: every aggregated deployment searched with and without speculative
decoding, and where speculation stops paying.

Each deployment and load is simulated twice (serve/speculative.py prices the drafter and the
verification step of k + 1 tokens per sequence; the acceptance a is the user's input), both
ranked together against the same SLO. A speculative row carries `spec_gain`: its tokens/s per
GPU over its plain twin's (same GPU, precision, parallelism, fleet and load) − 1; in a closed
loop at one concurrency that is the ratio of the two engines' output rates. Per deployment,
`crossover_concurrency` is the smallest concurrency searched at which that gain is ≤ 0 (the
batch has grown until the verification step's extra tokens cost more than the accepted drafts
save); `step_crossover_batch` is serve's own per-step crossover (the smallest decode batch at
which a · t_plain(B) / t_spec(B) < 1, at the workload's mean context).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Sequence

from perfmodel.plan.grid import Point

Row = dict[str, Any]
# what makes two rows twins: the deployment and its load, not the speculation
TWIN = ("gpu", "precision", "kv_dtype", "engine", "tp", "ep", "dp", "pp", "replicas", "router",
        "concurrency", "request_rate")


def with_speculation(kept: Sequence[tuple[Point, int]], spec: Any
                     ) -> list[tuple[Point, int]]:
    """Each aggregated deployment again with spec (a serve.speculative.Speculation): serve
    refuses speculation with --disagg, so disaggregated layouts run without it."""
    return [(replace(point, speculative=spec.method, spec_tokens=spec.spec_tokens,
                     acceptance=spec.acceptance, draft_model=spec.draft_model,
                     draft_overhead_s=spec.draft_overhead_s or None), held)
            for point, held in kept if not point.disagg]


def is_spec(row: Row) -> bool:
    return bool(row.get("speculative"))


def _twin(row: Row) -> tuple:
    return tuple(row.get(k) for k in TWIN)


def _ran(row: Row) -> bool:
    return row.get("error") is None and bool(row.get("tok_s_per_gpu"))


def annotate(rows: Sequence[Row]) -> None:
    """Set `spec_gain` on every speculative row (None where it or its twin did not run)."""
    plain = {_twin(r): r for r in rows if not is_spec(r)}
    for row in rows:
        if is_spec(row):
            base = plain.get(_twin(row))
            row["spec_gain"] = (row["tok_s_per_gpu"] / base["tok_s_per_gpu"] - 1
                                if base is not None and _ran(row) and _ran(base) else None)


def crossovers(rows: Sequence[Row]) -> tuple[Row, ...]:
    """Per deployment searched with speculation: the gain at each load that ran, the smallest
    load where it is ≤ 0 (None: it pays at every load searched), serve's step crossover."""
    load = "request_rate" if any("request_rate" in r for r in rows) else "concurrency"
    out: dict[tuple, Row] = {}
    for row in rows:
        if not is_spec(row) or row.get("spec_gain") is None:
            continue
        key = _twin(row)[:-2]
        got = out.setdefault(key, {
            **{k: row.get(k) for k in ("gpu", "precision", "tp", "ep", "dp", "pp", "gpus")},
            **({"replicas": row["replicas"], "router": row["router"]}
               if "replicas" in row else {}),
            "load": load, "gain": {}, "crossover": None,
            "step_crossover_batch": row.get("speculative_crossover_batch")})
        got["gain"][row[load]] = row["spec_gain"]
    for got in out.values():
        got["gain"] = dict(sorted(got["gain"].items()))
        got["crossover"] = next((c for c, g in got["gain"].items() if g <= 0), None)
    return tuple(out.values())


def verdict(by_spec: Sequence[tuple[str, Row | None]], key: str) -> dict[str, Any] | None:
    """{"winner": "speculative" | "plain", "gain": the winner's objective over the other's − 1
    (cost: the other's cost over the winner's − 1)}; None when either has no row meeting the
    targets."""
    best = dict(by_spec)
    plain, spec = best.get("plain"), best.get("speculative")
    if plain is None or spec is None:
        return None
    cheaper = key == "cost_per_mtok"
    won = spec[key] < plain[key] if cheaper else spec[key] > plain[key]
    win, lose = (spec, plain) if won else (plain, spec)
    return {"winner": "speculative" if won else "plain",
            "gain": (lose[key] / win[key] if cheaper else win[key] / lose[key]) - 1}
