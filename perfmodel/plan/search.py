"""`perfmodel plan`: the best deployment for a latency target, and the Pareto front around it.

The search space is GPU type × parallelism (TP in powers of two up to --max-gpus; for MoE models
also EP over the same GPUs) × precision × concurrency. Deployments whose weights and one
request's KV cache do not fit are dropped before anything is simulated, and so are
concurrencies above the requests a deployment's memory holds at once (they only queue). Each
remaining point is evaluated by the serving simulation when this perfmodel has one (closed loop,
max(`waves` × concurrency, 40) requests: validate-serving's 4·C and 40 by default, the setting
its accuracy figures hold for), else by the static-batch prediction at batch = concurrency;
`Plan.method` says which.

The front is over output tokens/s per GPU against tokens/s per user (1 / TPOT); with a price for
every GPU, cost per million output tokens replaces tokens/s per GPU. The best point meets both
SLOs at the lowest cost (with prices) or the most tokens/s per GPU (without).

With a router (`plan --router`), replicas trade against TP: every deployment fills --max-gpus
with replicas of its TP (8 GPUs: 8×TP1, 4×TP2, 2×TP4, 1×TP8) behind that router, each
concurrency being the fleet's (serve/fleet.py); it holds the replicas' requests together.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, Sequence

from perfmodel.errors import PerfmodelError
from perfmodel.fitted import MIN_REQUESTS, REQUESTS_PER_CLIENT
from perfmodel.plan.evaluate import (does_not_fit, parallel_predict_supported, prediction,
                                     resolve)
from perfmodel.plan.grid import PREDICT, SERVE, Point
from perfmodel.plan.pareto import pareto_front
from perfmodel.plan.sweep import Progress, run_points

Row = dict[str, Any]


@dataclass(frozen=True)
class Slo:
    """Latency targets in seconds (None: no target): mean TTFT and mean TPOT; with attainment
    (plan --goodput), per request instead: a row meets them when at least that share of its
    requests meets every target (serve's goodput block, serve/slo.py)."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    attainment: float | None = None

    def met(self, row: Row) -> bool:
        if self.attainment is not None:
            got = row.get("goodput_fraction")
            return got is not None and got >= self.attainment
        return all(target is None or (row[key] is not None and row[key] <= target)
                   for key, target in (("ttft_s", self.ttft_s), ("tpot_s", self.tpot_s)))

    def tightened(self, margin: float) -> Slo:
        """Every target divided by 1 + margin: a point meeting these keeps that share of
        headroom on each target."""
        return Slo(*(None if t is None else t / (1 + margin) for t in (self.ttft_s, self.tpot_s)),
                   self.attainment)

    def headroom(self, row: Row) -> dict[str, float | None]:
        """{"ttft", "tpot"}: target / estimate − 1 of a row that meets them (None: no target)."""
        return {name: None if t is None or not row[f"{name}_s"] else t / row[f"{name}_s"] - 1
                for name, t in (("ttft", self.ttft_s), ("tpot", self.tpot_s))}



@dataclass(frozen=True)
class Plan:
    """What plan found. rows: every evaluated point (with `error` where it could not run);
    skipped: the deployments dropped before evaluation, with the reason."""

    method: str
    rows: tuple[Row, ...]
    skipped: tuple[Row, ...]
    pareto: tuple[Row, ...]
    best: Row | None
    keys: tuple[str, str]
    notes: tuple[str, ...]
    best_per_gpu: tuple[tuple[str, Row | None], ...] = ()  # (GPU, its best) in --gpus order
    margin: float = 0.0
    best_with_margin: Row | None = None  # the best meeting every target ÷ (1 + margin)
    best_by_mode: tuple[tuple[str, Row | None], ...] = ()  # ("agg"|"disagg", its best) with disagg
    best_by_spec: tuple[tuple[str, Row | None], ...] = ()  # ("plain"|"speculative", its best)
    spec_crossovers: tuple[Row, ...] = ()  # per deployment with speculation (plan/speculate.py)

    @property
    def searched(self) -> int:
        return len(self.rows)


def serve_available() -> bool:
    try:
        from perfmodel.serve import run_serve  # noqa: F401
    except ImportError:
        return False
    return True


def parallelisms(max_gpus: int, moe: bool, tps: Sequence[int] | None = None
                 ) -> list[tuple[int, int]]:
    """(TP, EP) pairs: TP in powers of two up to max_gpus (or `tps`); for MoE also EP = TP."""
    if tps is None:
        tps = [1 << i for i in range(max_gpus.bit_length()) if 1 << i <= max_gpus]
    pairs = [(tp, 1) for tp in tps if tp <= max_gpus]
    if moe:
        pairs += [(tp, tp) for tp in tps if 1 < tp <= max_gpus]
    return pairs


def _capacity(point: Point) -> tuple[int, str | None]:
    """How many requests of I + O tokens the deployment holds at once (the weights and KV cache
    in the GPUs' memory), and why none, if none."""
    probe = replace(point, method=PREDICT, engine=None, load=1, requests=None, replicas=1,
                    router=None)
    try:
        mem = prediction(probe).memory
    except PerfmodelError as exc:
        return 0, str(exc)
    return mem.max_batch * point.replicas, does_not_fit(mem)


def deployments(model: str, gpus: Sequence[str], precisions: Sequence[str | None],
                max_gpus: int, isl: int, osl: int, method: str, engine: str | None,
                tps: Sequence[int] | None = None, router: str | None = None
                ) -> tuple[list[tuple[Point, int]], list[Row], list[str]]:
    """The deployments to search (as points of load 1, with how many requests they hold at
    once), those dropped, and notes; with a router, each TP's replicas fill max_gpus."""
    notes: list[str] = []
    first = resolve(model, gpus[0], precisions[0], None, None)
    pairs = parallelisms(max_gpus, first.spec.is_moe, tps)
    if not parallel_predict_supported() and len(pairs) > 1:
        pairs = [(1, 1)]
        notes.append("this perfmodel does not yet shard a model over GPUs: one GPU only")
    kept, skipped = [], []
    for gpu in gpus:
        for prec in precisions:
            for tp, ep in pairs:
                point = Point(model, gpu, method, prec, None, engine, tp, ep, isl=isl, osl=osl,
                              replicas=max_gpus // tp if router else 1, router=router)
                held, error = _capacity(point)
                if error:
                    skipped.append({**point.columns(), "error": error})
                else:
                    kept.append((point, held))
    return kept, skipped, notes


def _loads(kept: list[tuple[Point, int]], concurrencies: Sequence[int], waves: int,
           rates: Sequence[float] | None = None) -> tuple[list[Point], list[Row]]:
    """Each deployment at each concurrency it can hold; above that, requests would only queue
    (the same tokens/s, a longer TTFT), so those points are skipped, not simulated. With
    rates: each deployment at each open-loop request rate (serve's default request count)."""
    points, skipped = [], []
    if rates is not None:
        return [replace(p, request_rate=r) for p, _ in kept for r in rates], []
    for point, held in kept:
        for c in concurrencies:
            one = replace(point, load=c,
                          requests=max(waves * c, MIN_REQUESTS) if point.method == SERVE else None)
            if c <= held:
                points.append(one)
            else:
                skipped.append({**one.columns(), "error": f"concurrency {c} exceeds the {held} "
                                f"requests of {point.isl + point.osl} tokens the memory holds"})
    return points, skipped


DISAGG_PREFILL_WORKERS = (1, 2, 4)
DISAGG_DECODE_TPS = 3


def disagg_deployments(kept: list[tuple[Point, int]], max_gpus: int
                       ) -> list[tuple[Point, int]]:
    """The disaggregated layouts searched beside the aggregated ones (docs/plan.md): per GPU and
    precision, prefill workers of the smallest TP that fits (P = 1, 2 or 4 of them), one decode
    worker of each of the three smallest TPs that fit, P·TPa + TPb ≤ max_gpus; with how many
    requests the decode worker holds at once."""
    fits: dict[tuple, dict[int, tuple[Point, int]]] = {}
    for point, held in kept:
        if (point.ep, point.dp, point.pp) == (1, 1, 1):
            fits.setdefault((point.gpu, point.precision), {})[point.tp] = (point, held)
    out = []
    for by_tp in fits.values():
        tps = sorted(by_tp)
        for b in tps[:DISAGG_DECODE_TPS]:
            point, held = by_tp[b]
            for p in DISAGG_PREFILL_WORKERS:
                if p * tps[0] + b <= max_gpus:
                    out.append((replace(point, tp=1, disagg=f"{p}x{tps[0]}:1x{b}"), held))
    return out


def mode_of(row: Row) -> str:
    return "disagg" if row.get("disagg") else "agg"


def _with_cost(row: Row, point: Point, prices: dict[str, float]) -> Row:
    price = prices.get(point.gpu)
    per_gpu = row.get("tok_s_per_gpu")
    cost = price / 3600 / per_gpu * 1e6 if price and per_gpu else None
    return {**row, "price_per_gpu_hour": price, "cost_per_mtok": cost,
            "command": point.command()}


def _value(row: Row, key: str) -> float:
    return -row[key] if key == "cost_per_mtok" else row[key]


def pick_best(rows: Sequence[Row], slo: Slo, by_cost: bool, main: str = "tok_s_per_gpu"
              ) -> Row | None:
    """The row meeting the SLOs at the lowest cost (or the most of `main`: tokens/s per GPU,
    or good requests/s per GPU with --goodput), then the fewest GPUs, then the most tokens/s
    per user."""
    meeting = [r for r in rows if slo.met(r)]
    if not meeting:
        return None
    main = "cost_per_mtok" if by_cost else main
    return max(meeting, key=lambda r: (_value(r, main), -r["gpus"], r["tok_s_per_user"]))


def plan(model: str, *, gpus: Sequence[str], precisions: Sequence[str | None],
         concurrencies: Sequence[int], isl: int, osl: int, slo: Slo, max_gpus: int = 8,
         tps: Sequence[int] | None = None, prices: dict[str, float] | None = None,
         engine: str | None = None, method: str | None = None, waves: int = REQUESTS_PER_CLIENT,
         workers: int | None = None, on_total: Any = None,
         on_progress: Progress | None = None, margin: float = 0.0,
         router: str | None = None, disagg: bool = False, speculation: Any = None,
         request_rates: Sequence[float] | None = None,
         shape: dict[str, float] | None = None) -> Plan:
    """Search the deployments, evaluate every fitting one at every concurrency, rank them;
    with margin > 0 also the best that keeps that headroom on every target; with disagg
    the disaggregated layouts too (disagg_deployments; serve only), and the best of each
    mode; with speculation (serve.speculative.Speculation) every aggregated deployment also
    with it (plan/speculate.py), and the best with and without; with request_rates, open-loop
    loads instead of concurrencies; shape: burstiness / range_ratio passed to serve; with
    slo.attainment, serve's per-request goodput against slo's targets decides which points
    meet them, and good requests/s per GPU ranks them (plan --goodput)."""
    method = method or (SERVE if serve_available() else PREDICT)
    prices = prices or {}
    goodput = slo.attainment is not None
    if goodput:
        if method != SERVE or disagg:
            raise PerfmodelError("--goodput needs the serve method and aggregated layouts (serve "
                                 "has no goodput with --disagg); drop --method predict or "
                                 "--disagg")
        targets = tuple((k, v) for k, v in (("ttft_s", slo.ttft_s), ("tpot_s", slo.tpot_s))
                        if v is not None)
        if not targets:
            raise PerfmodelError("--goodput counts the requests meeting --ttft-slo and "
                                 "--tpot-slo; give at least one of them")
    kept, skipped, notes = deployments(model, gpus, precisions, max_gpus, isl, osl, method,
                                       engine, tps, router)
    if disagg:
        if method != SERVE:
            raise PerfmodelError("--disagg needs --method serve (the static-batch prediction "
                                 "has no prefill and decode pools)")
        if router is not None:
            raise PerfmodelError("--disagg and --router search different layouts; give one")
        if shape and "prefix_len" in shape:
            raise PerfmodelError("--prefix-len is not modelled with --disagg yet (serve refuses "
                                 "the two together); drop one")
        kept += disagg_deployments(kept, max_gpus)
    if (speculation is not None or request_rates is not None or shape) and method != SERVE:
        raise PerfmodelError("--speculative, --request-rate, --burstiness, --range-ratio and "
                             "--prefix-len need --method serve (the static-batch prediction "
                             "has none)")
    if goodput:
        kept = [(replace(p, slo_targets=targets), held) for p, held in kept]
    if shape:
        kept = [(replace(p, shape=tuple(sorted(shape.items()))), held) for p, held in kept]
    if speculation is not None:
        from perfmodel.plan.speculate import with_speculation
        kept += with_speculation(kept, speculation)
        if disagg:
            notes.append("disaggregated layouts ran without speculation (serve does not model "
                         "the two together)")
    points, over = _loads(kept, concurrencies, waves, request_rates)
    if on_total:
        on_total(len(points))
    rows = [_with_cost(row, point, prices)
            for row, point in zip(run_points(points, workers=workers, on_progress=on_progress),
                                  points)]
    if speculation is not None:
        from perfmodel.plan.speculate import annotate
        annotate(rows)
    if goodput:
        for row in rows:
            good = row.get("goodput_requests_s")
            row["goodput_per_gpu"] = None if good is None else good / row["gpus"]
    valid = [r for r in rows if r["error"] is None and r["tok_s_per_gpu"]
             and r["tok_s_per_user"] and (not goodput or r["goodput_per_gpu"] is not None)]
    failed = Counter(r["error"] for r in rows if r["error"])
    notes += [f"{n} points could not run: {error}" for error, n in failed.most_common(3)]
    valid_ids = {id(r) for r in valid}
    for row in rows:
        row["meets_slo"] = id(row) in valid_ids and slo.met(row)
    by_cost = bool(prices) and all(g in prices for g in gpus)
    main = "goodput_per_gpu" if goodput else "tok_s_per_gpu"
    keys = ("cost_per_mtok" if by_cost else main, "tok_s_per_user")
    front = pareto_front(valid, keys, _value)
    per_gpu = tuple((g, pick_best([r for r in valid if r["gpu"] == g], slo, by_cost, main))
                    for g in gpus)
    by_mode = tuple((m, pick_best([r for r in valid if mode_of(r) == m], slo, by_cost, main))
                    for m in ("agg", "disagg")) if disagg else ()
    by_spec, crossed = (), ()
    if speculation is not None:
        from perfmodel.plan.speculate import crossovers, is_spec
        by_spec = tuple((m, pick_best([r for r in valid if is_spec(r) == (m != "plain")], slo,
                                      by_cost, main)) for m in ("plain", "speculative"))
        crossed = crossovers(rows)
    return Plan(method, tuple(rows), tuple(skipped + over), tuple(front),
                pick_best(valid, slo, by_cost, main), keys, tuple(notes), per_gpu, margin,
                pick_best(valid, slo.tightened(margin), by_cost, main) if margin > 0 else None,
                by_mode, by_spec, crossed)
