"""The inputs of a sweep or a plan, checked before anything is evaluated.

predict and serve refuse a bad input with one line; a sweep or plan used to turn the same input
into error rows (or drop it: an unknown GPU among several) and then report that no point met
the targets. Here every value of every axis is checked on its own against the model, the GPU
profiles and the engines, so a typo is one line naming the fix, and the grid's size is bounded
(MAX_POINTS, docs/cli.md "Bounds"). Combinations of valid values that cannot run together (an
EP degree that does not divide one TP, a deployment that does not fit) stay rows with an error.
"""

from __future__ import annotations

import math
from typing import Sequence

from perfmodel.errors import MAX_DEGREE, MAX_POINTS, MAX_TOKENS, PerfmodelError, shown, whole
from perfmodel.plan.grid import PREDICT

MAX_WORKERS = 1024  # processes; far above any box's cores
MAX_WAVES = 100  # plan --waves: requests per point = waves × concurrency (validate-serving: 4)


def check_grid(model: str, *, method: str, gpus: Sequence[str],
               precisions: Sequence[str | None], kv_dtypes: Sequence[str | None],
               engines: Sequence[str | None], tps: Sequence[int], eps: Sequence[int] = (1,),
               dps: Sequence[int] = (1,), pps: Sequence[int] = (1,),
               isls: Sequence[int] = (1024,), osls: Sequence[int] = (128,),
               points: int = 1, workers: int | None = None) -> None:
    """Every value valid on its own (raises PerfmodelError naming the flag and the fix)."""
    from perfmodel.api import resolve_precision
    from perfmodel.cost.parallel import Parallel, check
    from perfmodel.hardware.gpu import load_gpu
    from perfmodel.model.architectures import model_spec
    from perfmodel.model.source import load_model_config

    if workers is not None:
        whole(workers, "--workers", MAX_WORKERS)
    if points > MAX_POINTS:
        raise PerfmodelError(f"the grid has {points:,} points, above the bound of "
                             f"{MAX_POINTS:,}; give fewer or coarser values (a step 1-256:16 or "
                             "a factor 1-256x2)")
    for flag, values in (("--isl", isls), ("--osl", osls)):
        for value in values:
            whole(value, flag, MAX_TOKENS)
    for gpu in gpus:
        load_gpu(gpu)
    cfg = load_model_config(model)
    spec = model_spec(cfg.config, cfg.where)
    for prec in precisions:
        for kv in kv_dtypes:
            resolve_precision(cfg.config, prec, kv)
    for engine in engines:
        check_engine(engine, method)
    for flag, values in (("--tp", tps), ("--pp", pps)):
        for value in values:
            check(spec, Parallel(**{flag[2:]: whole(value, flag, MAX_DEGREE)}))
    for ep in eps:
        whole(ep, "--ep", MAX_DEGREE)
        if ep > 1 and not spec.is_moe:
            raise PerfmodelError(f"--ep {ep} spreads the experts of a mixture-of-experts model; "
                                 f"{cfg.model_id} has none: drop --ep")
    for dp in dps:
        whole(dp, "--dp", MAX_DEGREE)
        if dp > 1 and not spec.is_moe:
            raise PerfmodelError(f"--dp {dp} (attention data parallelism) needs a "
                                 f"mixture-of-experts model; {cfg.model_id} has none: drop --dp")


def check_engine(engine: str | None, method: str) -> None:
    """An engine the method has: predict's presets, or serve's schedulers."""
    if engine is None:
        return
    if method == PREDICT:
        from perfmodel.cost.presets import engine_preset

        engine_preset(engine)
        return
    from perfmodel.serve.engines import ENGINES

    if engine not in ENGINES:
        extra = (f" ({engine} is a preset of the static-batch prediction: sweep it with "
                 "--batch, plan it with --method predict)"
                 if engine in ("torch-cudagraph", "tuned") else "")
        raise PerfmodelError(f"unknown serving engine {engine!r}; with --concurrency use "
                             f"--engine {' | '.join(ENGINES)}{extra}")


def check_plan(*, max_gpus: int, tps: Sequence[int] | None, waves: int, margin: float,
               isl: int, osl: int) -> None:
    """plan's own numbers: --max-gpus, --tp within it, --waves, --margin, --isl, --osl."""
    whole(max_gpus, "--max-gpus", MAX_DEGREE)
    for tp in tps or ():
        if tp > max_gpus:
            raise PerfmodelError(f"--tp {tp} is above --max-gpus {max_gpus}; raise --max-gpus "
                                 "or drop that degree")
    whole(waves, "--waves", MAX_WAVES)
    if not (math.isfinite(margin) and 0 <= margin <= 10):
        raise PerfmodelError(f"--margin is a share of headroom from 0 to 10 (0.1: 10%), not "
                             f"{shown(margin)}")
    whole(isl, "--isl", MAX_TOKENS)
    whole(osl, "--osl", MAX_TOKENS)
