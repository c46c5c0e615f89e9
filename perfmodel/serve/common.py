"""What run_serve (one aggregated deployment) and run_disagg (prefill and decode pools) share:
the engine knobs' names, the report type, the step-cost cache, and the adjustments of an
Outcome for the time outside the engine's steps and for warm-up requests."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

from perfmodel.fitted import HOST_OVERHEAD_S
from perfmodel.serve.engine_profile import EngineProfile, display_path
from perfmodel.serve.engines import EngineFacts
from perfmodel.serve.fused_moe import with_fused_moe
from perfmodel.serve.kv import KvPlan
from perfmodel.serve.ranks import Layout
from perfmodel.serve.result import EngineProfileRef, ServeResult
from perfmodel.serve.simulate import Outcome
from perfmodel.serve.step_cost import StepCost

KNOBS = {"max_num_seqs": "max_num_seqs", "max_num_batched_tokens": "max_num_batched_tokens",
         "gpu_memory_utilization": "memory_fraction", "block_size": "block_size",
         "chunked_prefill": "chunked_prefill", "mixed_chunk": "mixed",
         "host_overhead_s": None}


@dataclass(frozen=True)
class ServeReport:
    """One simulated serving run: its result (serve/result.py, the --json document) and how it
    was set up."""

    result: ServeResult
    facts: EngineFacts
    kv: KvPlan
    outcome: Outcome = field(repr=False)
    warnings: tuple[str, ...] = ()
    step_cost: StepCost | None = field(default=None, repr=False, compare=False)

    @property
    def metrics(self) -> dict[str, Any]:
        """The --json document as a new dict (result.to_dict()); read `result` instead."""
        return self.result.to_dict()


# The step-cost tables of the last few deployments, least recently used first. Building one
# (estimator, interpolators) took 10-17 ms on the 2-core dev box against 5-6 ms for a whole
# 2-request run that reuses it (`serve` of Llama-3.1-8B, vllm/sglang/trtllm, TP 1 and 2), and
# a sweep or plan asks for the same deployment at every load of its grid (load is the innermost
# axis, plan/grid.py), a speculative run for two at once (target and drafter). But each entry
# also holds its StepCost's memo of step times: 2 MB after 1,000 requests, up to its 200,000-
# entry cap (~450 bytes each, ~90 MB) on long runs; unbounded, a long-lived process (plan over
# many GPUs, precisions and layouts) kept every one. 16: twice the 8 deployments of
# tools/house_proof.py's plan over two GPUs, two precisions and TP 1-2; a miss costs one rebuild.
_COSTS: OrderedDict[tuple, tuple[StepCost, Any]] = OrderedDict()
_COSTS_SIZE = 16


def step_cost_for(lay: Layout, precision, gpu_spec, facts: EngineFacts, host: float,
                  key: tuple, longest: int, moe_tables=None) -> tuple[StepCost, Any]:
    """The step-cost tables of one (model, precision, GPU, engine, parallelism), built once
    per process; moe_tables: an engine profile's fused-MoE timings (serve/fused_moe.py)."""
    from perfmodel.cost.estimate import estimator_for

    key = (*key, precision, facts, host, longest, lay.par)
    if key in _COSTS:
        _COSTS.move_to_end(key)
    else:
        if len(_COSTS) >= _COSTS_SIZE:
            _COSTS.popitem(last=False)  # the least recently used
        est = estimator_for(gpu_spec, precision, facts.kernels)
        estimator = with_fused_moe(est.estimator, moe_tables, lay.local,
                                   precision.weight_dtype)
        tokens = max(facts.max_num_batched_tokens, longest) + facts.max_num_seqs
        _COSTS[key] = (StepCost(lay.local, precision, gpu_spec, estimator,
                                max_tokens=tokens, max_seqs=facts.max_num_seqs,
                                capture_sizes=facts.capture_sizes, pad_mixed=facts.pad_mixed,
                                host_overhead_s=host, forward=lay.forward,
                                allreduce=facts.kernels), est)
    return _COSTS[key]


def with_request_latency(out: Outcome, latency: float) -> Outcome:
    """Each request's TTFT and E2E with the time it spends outside the engine's steps (HTTP,
    tokenization, the hop to the engine and back: the profile's request_latency_s) added; the
    limit clock keeps none. (In a closed loop the same round trip also separates a request's
    end in the engine from its client's next request reaching it: simulate's client_delay_s.)"""
    if not latency:
        return out
    return replace(out, done=tuple(replace(d, ttft=d.ttft + latency, e2e=d.e2e + latency)
                                   for d in out.done))


def profile_ref(profile: EngineProfile | None) -> EngineProfileRef | None:
    """The engine profile serve used (docs/json.md), or None for the published-row preset."""
    if profile is None:
        return None
    return EngineProfileRef(engine=profile.engine, version=profile.version, gpu=profile.gpu,
                            date=profile.date, path=display_path(profile.path))


def after_warmup(out: Outcome, warmup: int, schedulers: int) -> Outcome:
    """out without its first `warmup` requests (of the whole deployment: ⌈warmup / n⌉ of the
    simulated scheduler's, which takes every n-th request)."""
    first = -(-warmup // schedulers)
    if first <= 0:
        return out
    return replace(out, done=tuple(d for d in out.done if d.index >= first))


def with_latencies(doc: dict[str, Any], measured: dict[str, Any]) -> dict[str, Any]:
    """doc with the latency figures (requests, TTFT, TPOT, E2E, tokens/s per user) of the
    measured requests' metrics; throughput and ITL stay the whole run's."""
    per_user = measured["throughput"]["output_tok_s_per_user"]
    return {**doc, **{k: measured[k] for k in ("requests", "ttft_s", "tpot_s", "e2e_s")},
            "throughput": {**doc["throughput"], "output_tok_s_per_user": per_user}}


def host_overhead(given: float | None, profile: EngineProfile | None, engine: str,
                  speculative: str | None = None) -> tuple[float, bool]:
    """(host time per engine step, whether the engine runs synchronously): the user's, else the
    engine profile's (its synchronous figure where the speculative method turns the engine's
    asynchronous scheduling off), else the value fitted for the engine (perfmodel/fitted.py)."""
    if given is not None:
        return given, False
    if profile is not None:
        return profile.host_overhead_for(speculative)
    return HOST_OVERHEAD_S.get(engine, 0.0), False
