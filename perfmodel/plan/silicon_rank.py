"""The arithmetic of plan's serving-data check (silicon_check.py), on rows and their simulated
(or oracle-drawn, silicon_oracle.py) serve rows: each row's measured tokens/s per GPU, the
groups, plan's pick in a group, and the ranking of every group against its best measured row.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Sequence

from perfmodel.plan.search import Slo, pick_best

Row = dict[str, str]
TOLERANCE = 0.10


@dataclass(frozen=True)
class GroupCheck:
    """One group: its best measured row, plan's pick, and the pick's measured share of it."""

    key: tuple[str, str, str, int, int]  # model, system, engine, ISL, OSL
    rows: int
    target_tpot_s: float
    best_id: str
    best_tok_s_per_gpu: float
    pick_id: str | None  # None: no candidate was simulated to meet the target
    pick_tok_s_per_gpu: float | None

    @property
    def ratio(self) -> float | None:
        return None if self.pick_tok_s_per_gpu is None else \
            self.pick_tok_s_per_gpu / self.best_tok_s_per_gpu

    @property
    def passed(self) -> bool:
        return self.ratio is not None and self.ratio >= 1 - TOLERANCE


def row_gpus(row: Row) -> int:
    """The GPUs a row ran on: tp·dp·pp (attention DP ranks are GPUs of their own)."""
    return int(row["tp_size"]) * int(row.get("attention_dp_size") or 1) * int(row["pp_size"])


def measured_tok_s_per_gpu(row: Row) -> float:
    """C·O / (TTFT + (O−1)·TPOT) / GPUs, from the row's mean TTFT and TPOT; with attention DP,
    C is batch_size on each of the DP ranks and the GPUs are tp·dp·pp."""
    c, osl = int(row["batch_size"]) * int(row.get("attention_dp_size") or 1), int(row["osl"])
    e2e = float(row["silicon_ttft_ms"]) / 1e3 + (osl - 1) * float(row["silicon_tpot_ms"]) / 1e3
    return c * osl / e2e / row_gpus(row)


def groups(rows: Sequence[Row]) -> dict[tuple, list[Row]]:
    out: dict[tuple, list[Row]] = defaultdict(list)
    for row in rows:
        out[(row["model_path"], row["system"], row["backend"], int(row["isl"]),
             int(row["osl"]))].append(row)
    return dict(out)


def pick(rows: Sequence[Row], simulated: Sequence[dict[str, Any]], target: float) -> Row | None:
    """plan's choice (search.pick_best): the most simulated tokens/s per GPU among the rows
    simulated to meet the target."""
    ran = [dict(sim, index=i) for i, sim in enumerate(simulated)
           if sim["error"] is None and sim["tok_s_per_gpu"]]
    best = pick_best(ran, Slo(tpot_s=target), by_cost=False)
    return None if best is None else rows[best["index"]]


def rank(rows: Sequence[Row], simulated: dict[str, dict[str, Any]], slack: float = 0.0
         ) -> list[GroupCheck]:
    """check's ranking of every group of two or more of `rows`, taken as they are."""
    out = []
    for key, members in sorted(groups(rows).items()):
        if len(members) < 2:
            continue
        best = max(members, key=measured_tok_s_per_gpu)
        target = float(best["silicon_tpot_ms"]) / 1e3 * (1 + slack)
        chosen = pick(members, [simulated[r["id"]] for r in members], target)
        out.append(GroupCheck(key, len(members), target, best["id"],
                              measured_tok_s_per_gpu(best), chosen and chosen["id"],
                              measured_tok_s_per_gpu(chosen) if chosen else None))
    return out
