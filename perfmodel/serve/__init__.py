"""The serving simulation: requests → an engine's scheduler → step costs → metrics.

One entry point, run_serve: a discrete-event simulation of vLLM, SGLang or TensorRT-LLM serving
one model on one GPU or many (tp·dp·pp, serve/ranks.py) under a closed-loop concurrency, a
request rate or a replayed trace (docs/serving.md).
Modules: requests (arrivals and lengths), engines (each engine's defaults, cited), kv (the paged
KV pool), step_cost (one step's time from the op model), state + scheduler (each engine's
policy), simulate (the event loop), metrics (TTFT, TPOT, ITL, E2E, throughput), ranks (many
GPUs: the sharded step and dp·pp schedulers), fleet (replicas behind a router), disagg
(prefill and decode pools, the KV cache sent between them), workload, trace_in, shared_prefix
and slo (the workload options and goodput), prefix_cache (shared prompt prefixes reused),
speculative and drafter (speculative decoding), result (the typed result).
"""

from __future__ import annotations

from dataclasses import replace
from operator import itemgetter
from typing import Any, Callable

from perfmodel.errors import WorkloadError
from perfmodel.serve.common import KNOBS, ServeReport, after_warmup, host_overhead, \
    profile_ref, step_cost_for, with_latencies, with_request_latency
from perfmodel.serve.engine_profile import gpu_key, select_profile, with_engine_tables
from perfmodel.serve.engines import EngineFacts, engine_facts, trtllm_bench
from perfmodel.serve.kv import kv_bytes_per_token, kv_plan
from perfmodel.serve.ranks import kv_share, layout, rank_arrivals, scale_throughput
from perfmodel.serve.metrics import finite, metrics
from perfmodel.serve.metrics import summary as distribution
from perfmodel.serve.prefix_cache import prefix_doc
from perfmodel.serve.requests import make_arrivals
from perfmodel.serve.result import Fleet, Goodput, Parallelism, PowerLimit, PrefixCacheUse, \
    ServeResult, Speculative, Workload, run_figures
from perfmodel.serve.shared_prefix import with_prefixes
from perfmodel.serve.simulate import Outcome, simulate
from perfmodel.serve.slo import goodput, targets
from perfmodel.serve.workload import workload_doc
from perfmodel.serve.speculative import speculation
from perfmodel.serve.step_cost import StepCost

__all__ = ["KNOBS", "ServeReport", "run_serve", "step_cost_for"]


def run_serve(model: str, *, gpu: str, engine: str = "vllm", concurrency: int | None = None,
              request_rate: float | None = None, isl: int = 1024, osl: int = 128,
              num_requests: int | None = None, lengths: str | None = None,
              precision: str | None = None, kv_dtype: str | None = None,
              act_quant: str | None = None, tp: int = 1, ep: int = 1, dp: int = 1, pp: int = 1,
              seed: int = 0, on_progress: Callable[[int, int], None] | None = None,
              stagger: bool = True, warmup: int = 0, engine_profile: str | None = None,
              burstiness: float | None = None, range_ratio: float | None = None,
              length_dist: str | None = None, length_cv: float | None = None,
              trace_in: str | None = None, speedup: float = 1.0,
              trace_time_unit: str | None = None, slo: dict | None = None,
              disagg: str | bool | None = None, prefill_workers: int | None = None,
              prefill_tp: int | None = None, prefill_ep: int | None = None,
              prefill_dp: int | None = None, decode_workers: int | None = None,
              decode_tp: int | None = None, decode_ep: int | None = None,
              decode_dp: int | None = None, kv_link: str = "auto",
              replicas: int = 1, router: str = "round-robin", replicas_per_gpu: int = 1,
              speculative: str | None = None, spec_tokens: int | None = None,
              acceptance: float | None = None, draft_model: str | None = None,
              draft_overhead_s: float | None = None,
              prefix_len: int = 0, num_prefixes: int = 1, prefix_caching: bool = True,
              keep_trace: bool = True, **engine_knobs: Any) -> ServeReport:
    """Simulate `engine` serving `model` on `gpu`; raises PerfmodelError on bad input.

    keep_trace False: the outcome's per-step trace (what `serve --trace` writes) is not kept
    for one scheduler's run (a faster run; every figure the same).

    warmup: the first `warmup` requests run but are left out of the latency figures (TTFT,
    TPOT, E2E and their limits), as a benchmark's warm-up requests are; throughput and ITL are
    the whole run's steady state either way.
    engine: a name (vllm, sglang, trtllm: the newest measured profile of that engine on this
    GPU, else the preset fitted to published rows), or name@version (vllm@0.26.0; vllm@published
    the published-row preset); engine_profile: a profile YAML instead (serve/engine_profile.py).
    engine_knobs: max_num_seqs, max_num_batched_tokens, gpu_memory_utilization, block_size,
    chunked_prefill, mixed_chunk (None keeps the profile's or the engine's default) and
    host_overhead_s (the profile's, else the fitted per-step overhead).
    Workloads (docs/serving.md, "Workloads"): burstiness (Gamma arrivals with --request-rate,
    as `vllm bench serve --burstiness`), range_ratio (as `--random-range-ratio`), length_dist
    and length_cv (serve/workload.py); trace_in (a trace file replayed, times / speedup,
    trace_time_unit s|ms: serve/trace_in.py); slo: {class or None: SloTarget or {"ttft_s",
    "tpot_s", "e2e_s"}} for the goodput block (serve/slo.py).
    disagg ("PxTPa:DxTPb", or True) and the prefill_*/decode_* pool sizes: a disaggregated
    deployment instead (serve/disagg.py; tp, ep, dp, pp and stagger then do not apply), its KV
    sent over kv_link (auto: NVLink within one node, else the network).
    replicas: engine instances of this layout behind `router` (round-robin, least-loaded,
    prefix-affinity), replicas_per_gpu of them time-sharing each GPU (serve/fleet.py).
    speculative: mtp, eagle, ngram or draft-model (draft_model its id), spec_tokens k drafts
    per step, acceptance a the mean tokens per step, draft_overhead_s host time per drafter
    pass (serve/speculative.py); None: none.
    prefix_len, num_prefixes: a prefix of prefix_len tokens before every prompt (a prompt is
    then prefix_len + isl tokens), one of num_prefixes distinct ones, as vLLM's
    --random-prefix-len (serve/shared_prefix.py); prefix_caching False: the engine runs with
    prefix caching off (serve/prefix_cache.py).
    """
    from perfmodel.serve.disagg import run_disagg
    from perfmodel.serve.disagg_layout import pools_from

    pools = pools_from(disagg, prefill_workers=prefill_workers, prefill_tp=prefill_tp,
                       prefill_ep=prefill_ep, prefill_dp=prefill_dp,
                       decode_workers=decode_workers, decode_tp=decode_tp, decode_ep=decode_ep,
                       decode_dp=decode_dp)
    if pools is not None:
        if (tp, ep, dp, pp) != (1, 1, 1, 1):
            raise WorkloadError("--tp/--ep/--dp/--pp set one aggregated deployment; with "
                                "--disagg give --prefill-tp/--decode-tp (and -ep, -dp) instead")
        if (replicas, replicas_per_gpu) != (1, 1):
            raise WorkloadError("--replicas sets a fleet of aggregated instances; with --disagg "
                                "give --prefill-workers/--decode-workers instead")
        if not stagger:
            raise WorkloadError("--lock-step is for one aggregated scheduler; drop it with "
                                "--disagg")
        if speculative is not None:
            raise WorkloadError("--speculative is not modelled with --disagg yet; drop it or "
                                "serve the aggregated deployment")
        if trace_in is not None or slo:
            raise WorkloadError("--trace-in and --slo are not modelled with --disagg yet; drop "
                                "them or serve the aggregated deployment")
        if prefix_len or num_prefixes != 1:
            raise WorkloadError("--prefix-len and --num-prefixes are not modelled with --disagg "
                                "yet; drop them or serve the aggregated deployment")
        return run_disagg(model, pools, gpu=gpu, engine=engine, concurrency=concurrency,
                          request_rate=request_rate, isl=isl, osl=osl,
                          num_requests=num_requests, lengths=lengths, precision=precision,
                          kv_dtype=kv_dtype, act_quant=act_quant, seed=seed, warmup=warmup,
                          engine_profile=engine_profile, kv_link_kind=kv_link,
                          shape={"burstiness": burstiness, "range_ratio": range_ratio,
                                 "length_dist": length_dist, "length_cv": length_cv},
                          **engine_knobs)
    from perfmodel.api import resolve_precision
    from perfmodel.hardware.gpu import load_gpu
    from perfmodel.model.architectures import model_spec, text_config
    from perfmodel.cost.parallel import Parallel, parallel_warnings
    from perfmodel.serve.drafter import drafter_for, speculative_cost, speculative_doc
    from perfmodel.model.source import load_model_config

    par = Parallel(tp=tp, pp=pp, ep=ep, dp=dp)
    spec_req = speculation(speculative, spec_tokens, acceptance, draft_model, pp,
                           draft_overhead_s)
    unknown = sorted(set(engine_knobs) - set(KNOBS))
    if unknown:
        raise WorkloadError(f"unknown engine knob {unknown[0]!r}; use one of {', '.join(KNOBS)}")
    gpu_spec = load_gpu(gpu)
    engine, profile = select_profile(engine, gpu_key(gpu_spec), engine_profile)
    cfg = load_model_config(model)
    spec = model_spec(cfg.config, cfg.where)
    prec = resolve_precision(cfg.config, precision, kv_dtype, act_quant, gpu_spec)
    facts = engine_facts(engine, gpu_spec.mem_bytes, tp, pp, dp)
    if profile is not None:
        facts = facts.with_knobs(**profile.knobs)
    slo = targets(slo) if slo else None
    if trace_in is not None:
        from perfmodel.serve.trace_in import trace_arrivals
        full = trace_arrivals(trace_in, speedup=speedup, time_unit=trace_time_unit,
                              num_requests=num_requests, concurrency=concurrency,
                              request_rate=request_rate, lengths=lengths, burstiness=burstiness,
                              range_ratio=range_ratio, length_dist=length_dist,
                              length_cv=length_cv)
    else:
        if speedup != 1.0 or trace_time_unit is not None:
            raise WorkloadError("--speedup and --trace-time-unit apply to a replayed trace; "
                                "pass --trace-in FILE or drop them")
        full = make_arrivals(concurrency=concurrency, request_rate=request_rate, isl=isl,
                             osl=osl, num_requests=num_requests, lengths=lengths, seed=seed,
                             burstiness=burstiness, range_ratio=range_ratio,
                             length_dist=length_dist, length_cv=length_cv)
    full = with_prefixes(full, prefix_len, num_prefixes, lengths)
    if not 0 <= warmup < len(full.requests):
        raise WorkloadError(f"--warmup must be a whole number from 0 to one less than the "
                            f"{len(full.requests)} requests run; raise --num-requests")
    lay = layout(spec, prec, gpu_spec, par)
    drafter = spec_req and drafter_for(spec_req, spec, text_config(cfg.config), cfg.where,
                                       cfg.model_id, prec, gpu_spec, par, precision, kv_dtype,
                                       act_quant)
    if facts.name == "trtllm" and request_rate == float("inf"):  # trtllm-bench's max throughput
        facts = _trtllm_bench(facts, full, lay, prec, gpu_spec, pp, engine_knobs)
    facts = facts.with_knobs(**{KNOBS[k]: v for k, v in engine_knobs.items() if KNOBS[k]})
    fleet = None
    if replicas != 1 or replicas_per_gpu != 1:
        from perfmodel.serve.fleet import check_fleet
        check_fleet(replicas, router, replicas_per_gpu, facts)
    arrivals = rank_arrivals(full, lay.schedulers)
    kv = kv_share(kv_plan(drafter.kv_spec(lay.kv_spec) if drafter else lay.kv_spec, prec,
                          gpu_spec, facts, lay.weights_bytes + (
                              drafter.weights_bytes if drafter else 0)), pp)
    host, synchronous = host_overhead(engine_knobs.get("host_overhead_s"), profile, facts.name,
                                      spec_req and spec_req.method)
    if synchronous and draft_overhead_s is None and spec_req.method == "draft-model":
        # each drafter pass is a forward of its own on the synchronous runner: the same host time
        spec_req = replace(spec_req, draft_overhead_s=host)
    longest = max(r.isl for r in arrivals.requests)
    cost, est = step_cost_for(lay, prec, with_engine_tables(gpu_spec, profile), facts, host,
                              (cfg.model_id, cfg.source, gpu_spec.name,
                               profile.path if profile else None), longest,
                              (profile.tables or {}).get("fused_moe") if profile else None)
    plain = cost
    if spec_req:  # the drafter's step costs built as the target's, no host overhead of its own
        cost = speculative_cost(cost, spec_req, drafter, lambda d: step_cost_for(
            d.lay, d.precision, with_engine_tables(gpu_spec, profile), facts, 0.0,
            (d.key, cfg.source, gpu_spec.name, profile.path if profile else None), longest,
            (profile.tables or {}).get("fused_moe") if profile else None)[0])
    latency = profile.request_latency_s if profile else 0.0
    gpus = par.gpus * replicas // replicas_per_gpu
    if replicas != 1 or replicas_per_gpu != 1:
        from perfmodel.serve.fleet import serve_fleet
        from perfmodel.serve.simulate import Instance
        fleet = serve_fleet(arrivals, lambda c: Instance(facts, kv.blocks, kv.block_size, c,
                                                         prefix_caching),
                            cost, replicas=replicas, router=router, per_gpu=replicas_per_gpu,
                            stagger=stagger, on_progress=on_progress, client_delay_s=latency,
                            steady_e2e=steady_e2e)
        out = fleet.outcome
    elif arrivals.concurrency and stagger and len(arrivals.requests) > arrivals.concurrency:
        out = _cold_wave_then_steady(arrivals, facts, kv, cost, on_progress, latency,
                                     prefix_caching, keep_trace)
    else:
        out = simulate(arrivals, facts, kv.blocks, kv.block_size, cost, on_progress,
                       client_delay_s=latency, prefix_caching=prefix_caching,
                       keep_trace=keep_trace)
    out = with_request_latency(out, latency)
    doc = scale_throughput(metrics(out, gpus), full, arrivals, gpus, lay.schedulers)
    measured = after_warmup(out, warmup, lay.schedulers)
    if measured is not out:
        # (with_latencies takes the measured requests' latencies only: their ITL goes unread)
        doc = with_latencies(doc, metrics(replace(measured, itl=()), gpus))
    doc["limit"] = limit_bounds(measured, cost)
    options = workload_doc(full, burstiness, range_ratio, length_dist, length_cv, trace_in,
                           speedup)
    prefixed = any(r.prefix_len for r in full.requests)
    if prefixed:
        options.update(prefix_len=prefix_len or None,
                       num_prefixes=num_prefixes if prefix_len else None)
    warnings = tuple(w for w in (est.flag, *parallel_warnings(gpu_spec, par, bool(
        est.estimator), engine=facts.kernels), budget_warning(facts, longest)) if w)
    if synchronous:
        warnings += (f"{facts.name} {profile.version} runs {spec_req.method} speculation with "
                     f"async scheduling off: {host * 1e3:.2f} ms of host time per forward (the "
                     "profile's `synchronous`, measured on plain decode run that way) on every "
                     "step" + (" and every drafter pass" if spec_req.method == "draft-model"
                               else ""),)
    if fleet is not None:
        from perfmodel.serve.fleet import fleet_doc, fleet_warning
        warnings += tuple(w for w in [fleet_warning(replicas, replicas_per_gpu, facts)] if w)
    result = ServeResult(
        model=cfg.model_id, gpu=gpu_spec.name, engine=facts.name, precision=prec.label,
        parallel=Parallelism(**par.to_dict(), schedulers=lay.schedulers),
        workload=Workload(concurrency=concurrency, request_rate=_finite(request_rate),
                          num_requests=len(full.requests), warmup=warmup,
                          lock_step=bool(concurrency) and not stagger,
                          isl=None if lengths or trace_in else isl,
                          osl=None if lengths or trace_in else osl, options=finite(options)),
        **run_figures(finite(doc), block_size=kv.block_size, tokens=kv.tokens,
                      bytes_per_token=kv.bytes_per_token),
        host_overhead_s=host, request_latency_s=latency, engine_profile=profile_ref(profile),
        power_limit=_power_limit(cost), estimate_note=est.note,
        goodput=Goodput.from_dict(finite(goodput(
            measured.done, [r.slo_class for r in arrivals.requests], slo,
            doc["throughput"]["requests_s"]))) if slo else None,
        speculative=Speculative.from_dict(finite(speculative_doc(
            spec_req, drafter, plain, cost, full.requests, facts.max_num_seqs)))
        if spec_req else None,
        prefix_cache=PrefixCacheUse.from_dict(finite(prefix_doc(out, prefix_caching)))
        if prefixed else None,
        fleet=Fleet.from_dict(finite(fleet_doc(fleet, router, replicas_per_gpu, gpus)))
        if fleet is not None else None)
    return ServeReport(result, facts, kv, out, warnings, cost)


def _trtllm_bench(facts, full, lay, prec, gpu_spec, pp, knobs) -> EngineFacts:
    """TensorRT-LLM with every request sent at once: the settings trtllm-bench throughput
    derives from the dataset (engines.trtllm_bench), chunked context as the user sets it."""
    reqs = full.requests
    chunked = knobs.get("chunked_prefill")
    return trtllm_bench(
        facts if chunked is None else replace(facts, chunked_prefill=chunked),
        mem_bytes=gpu_spec.mem_bytes, weights_bytes=lay.weights_bytes,
        kv_bytes_per_token=kv_bytes_per_token(lay.kv_spec, prec), pp=pp,
        isl=sum(r.isl for r in reqs) / len(reqs), osl=sum(r.osl for r in reqs) / len(reqs),
        longest=max(r.isl for r in reqs))


def budget_warning(facts: EngineFacts, longest: int) -> str | None:
    """Without chunked prefill a whole prompt must fit the step's token budget beside every
    running decoder: a prompt that fills the budget alone waits until no request decodes."""
    if facts.chunked_prefill or longest < facts.max_num_batched_tokens:
        return None
    return (f"a {longest}-token prompt fills {facts.name}'s token budget "
            f"({facts.max_num_batched_tokens}) without chunked prefill, so it is admitted only "
            "when no request is decoding; raise --max-num-batched-tokens or turn on "
            "--chunked-prefill")


def _cold_wave_then_steady(arrivals, facts, kv, cost, on_progress,
                           client_delay_s: float = 0.0, prefix_caching: bool = True,
                           keep_trace: bool = True) -> Outcome:
    """A closed-loop benchmark: its first C requests are sent at once (the cold wave, simulated
    on their own); the clients then drift out of step (jitter the simulation lacks), so the
    later requests come from a steady-state run whose clients' first sends are spread over one
    request lifetime (steady_e2e). Requests 0..C−1 are the cold wave's, the rest the steady
    run's; throughput, ITL and the prefix-cache figures are the steady run's."""
    c = arrivals.concurrency
    cold = simulate(replace(arrivals, requests=arrivals.requests[:c]), facts, kv.blocks,
                    kv.block_size, cost, prefix_caching=prefix_caching, keep_trace=False)
    steady = simulate(arrivals, facts, kv.blocks, kv.block_size, cost, on_progress,
                      steady_e2e(cost, arrivals), client_delay_s, prefix_caching, keep_trace)
    done = tuple(d for d in cold.done if d.index < c) + \
        tuple(d for d in steady.done if d.index >= c)
    return replace(steady, done=done, preemptions=cold.preemptions + steady.preemptions,
                   peak_blocks=max(cold.peak_blocks, steady.peak_blocks))


def _power_limit(cost: StepCost) -> PowerLimit | None:
    """The profile's power-limit curve the step costs use (docs/json.md), or None."""
    if not cost.sustained:
        return None
    return PowerLimit(dtype=cost.sustained_dtype, burst_s=tuple(b for b, _ in cost.sustained),
                      fraction=tuple(f for _, f in cost.sustained))


def limit_bounds(out: Outcome, cost: StepCost) -> dict[str, dict]:
    """The limit: what no engine on this GPU can beat for these requests (docs/serving.md).
    TTFT ≥ the request's own prompt prefilled alone at the roofline (the part its prefix cache
    hit left, over the cached tokens); TPOT ≥ one decode step of
    the B sequences the run decoded on average, at mean context I + O/2, at the roofline (an
    engine may keep prefill work out of a request's decode window, as a cold first wave or a
    disaggregated deployment does, so none is counted); E2E ≥ TTFT + (O − 1)·TPOT."""
    steps = len(out.itl)
    b = max(1, round(sum(map(itemgetter(1), out.itl)) / steps)) if steps else 1
    done = out.done
    isl = sum(d.isl for d in done) / len(done)
    osl = sum(d.osl for d in done) / len(done)
    per_step = getattr(cost, "tokens_per_step", 1)  # a when speculating (serve/speculative.py)
    tpot = cost.step(b, b * (isl + osl / 2), [], b)[1] / per_step if osl > 1 else None
    alone = {(n, c): cost.step(0, 0, [(c, n - c)], 1)[1] for n, c in {(d.isl, d.cached)
                                                                       for d in done}}
    ttft = [alone[d.isl, d.cached] for d in done]
    e2e = [alone[d.isl, d.cached] + (d.osl - 1) * (tpot or 0.0) for d in done]
    return {"ttft_s": distribution(ttft),
            "tpot_s": distribution([tpot] * len(done) if tpot else []),
            "e2e_s": distribution(e2e)}


def steady_e2e(cost: StepCost, arrivals) -> float:
    """A closed loop's request lifetime in steady state, for spreading the clients' first sends
    over it: one prefill alone plus O − 1 decode steps of all C sequences at mid context."""
    c = arrivals.concurrency
    isl = sum(r.isl for r in arrivals.requests) / len(arrivals.requests)
    osl = sum(r.osl for r in arrivals.requests) / len(arrivals.requests)
    prefill = cost.step(0, 0, [(0, round(isl))], 1)[0]
    decode = cost.step(c, c * (isl + osl / 2), [], c)[0]
    return prefill + (osl - 1) * decode / getattr(cost, "tokens_per_step", 1)


def _finite(value: float | None) -> float | None:
    return None if value is None or value == float("inf") else value
