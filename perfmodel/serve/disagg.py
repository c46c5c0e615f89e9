"""Disaggregated serving: a prefill pool and a decode pool, the KV cache sent between them.

The deployment (docs/serving.md, "Disaggregated prefill and decode"): P prefill workers of
TPa·EPa·DPa GPUs and D decode workers of TPb·EPb·DPb GPUs, all running the same engine
(vLLM, SGLang or TensorRT-LLM) with its own scheduler. Each attention-DP rank of a worker is its
own scheduler, as in serve/ranks.py. A request:
1. reaches a prefill scheduler (round robin over the pool's P·DPa schedulers), waits in its queue
   and is prefilled by the engine's policy as a one-output-token request (the prefill worker
   samples the first token, as vLLM's and SGLang's prefill instances do);
2. its KV cache goes to a decode scheduler (round robin over D·DPb) over the link
   (kv_transfer): NVLink when both pools fit in one node of NODE_GPUS GPUs, else the network;
3. the decode scheduler admits it by the engine's own rule, its KV already there (simulate.Instance
   inject with computed = I − 1: only the last prompt token is computed, in a step beside the
   decoders); it decodes under the engine's policy (growth, preemption and recompute).
TTFT = prefill queue + prefill + transfer + the wait for a decode slot + the first decode step
(the client sees the first token when the decode worker streams, as NVIDIA Dynamo's frontend
does); TPOT is over the decode worker's steps.

The pools run as one discrete-event co-simulation of every scheduler (`_Pools.run`, over the
fleet driver's one-instance API, simulate.Instance): the scheduler whose next step starts
earliest steps next, so a request handed from one to another is never seen before it exists.
Ignored: the KV held on the prefill worker while it is sent (freed at once here), routers
smarter than round robin, load imbalance between DP ranks.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, replace
from typing import Any

from perfmodel.errors import WorkloadError
from perfmodel.serve.common import KNOBS, ServeReport, after_warmup, host_overhead, \
    profile_ref, step_cost_for, with_latencies, with_request_latency
from perfmodel.serve.disagg_layout import KvLink, Pools, kv_link, transfer_bytes
from perfmodel.serve.requests import Arrivals, RequestSpec
from perfmodel.serve.simulate import STALLED, Done, Instance, Outcome

class _Worker:
    """One scheduler of a pool: a simulate.Instance (the fleet driver's one-instance API) and
    the requests on their way to it, a heap of (arrival, request id). Prefill workers run each
    request as a one-output-token request from scratch; decode workers get it with its KV
    (computed = I − 1: vLLM's KV connector recomputes the last prompt token, and the step that
    does so samples the token the client sees first)."""

    def __init__(self, inst: Instance, decode: bool):
        self.inst, self.decode, self.inbox = inst, decode, []
        self.index = 0  # its place among every worker of both pools (_Pools.run)
        self.rids: list[int] = []  # the instance's index → the request id

    def next_time(self) -> float:
        start = self.inst.next_start()
        if self.inbox and start == math.inf:
            return max(self.inst.t, self.inbox[0][0])
        return start

    def step(self, specs) -> list[tuple[int, Done]]:
        inst, inbox = self.inst, self.inbox
        if inbox and inst.next_start() == math.inf and inbox[0][0] > inst.t:
            inst.wait_until(inbox[0][0])
        while inbox and inbox[0][0] <= inst.t:
            at, rid = heapq.heappop(inbox)
            spec = specs[rid]
            if self.decode:
                inst.inject(RequestSpec(spec.isl, spec.osl), len(self.rids), at, spec.isl - 1)
            else:
                inst.inject(RequestSpec(spec.isl, 1), len(self.rids), at)
            self.rids.append(rid)
        if not inst.run_step() and inst.next_start() != math.inf:
            raise WorkloadError(STALLED)
        return [(self.rids[d.index], d) for d in inst.collect()]


class _Pools:
    """Every scheduler of both pools and the router between them (round robin each way)."""

    def __init__(self, arrivals: Arrivals, prefill: list[_Worker], decode: list[_Worker],
                 transfer):
        self.specs = arrivals.requests
        self.arrival = [0.0] * len(self.specs)
        self.landed = [0.0] * len(self.specs)
        self.prefill, self.decode, self.transfer = prefill, decode, transfer
        self.sent = self.to_decode = self.steps = 0
        self.transfer_s: list[float] = []
        self.done: list[Done] = []
        self.keys: list[float] = []  # each worker's queued next start (run)
        self.heap: list[tuple[float, int]] = []
        self.closed = arrivals.concurrency is not None
        self.concurrency = arrivals.concurrency

    def start(self, ramp_s: float = 0.0) -> None:
        """The first requests: client k of C sends at k·ramp_s/C (closed loop), or every
        arrival (open loop)."""
        if self.closed:
            first = min(self.concurrency, len(self.specs))
            for k in range(first):
                self._send(k * ramp_s / first)
        else:
            for spec in self.specs:
                self._send(spec.arrival)

    def _send(self, at: float) -> None:
        rid = self.sent
        self.sent += 1
        self.arrival[rid] = at
        self._feed(self.prefill[rid % len(self.prefill)], at, rid)

    def _feed(self, worker: _Worker, at: float, rid: int) -> None:
        heapq.heappush(worker.inbox, (at, rid))
        if self.keys:
            self._rekey(worker)

    def _rekey(self, worker: _Worker) -> None:
        """Queue the worker at its next step's start when that moved (stale entries stay in
        the heap and are skipped)."""
        due = worker.next_time()
        if due != self.keys[worker.index]:
            self.keys[worker.index] = due
            if due != math.inf:
                heapq.heappush(self.heap, (due, worker.index))

    def run(self) -> None:
        """Step the worker whose next step starts first (the lowest index on a tie) until every
        request is done."""
        every = self.prefill + self.decode
        for i, worker in enumerate(every):
            worker.index = i
        self.keys = [w.next_time() for w in every]
        self.heap = [(t, i) for i, t in enumerate(self.keys) if t != math.inf]
        heapq.heapify(self.heap)
        while self.heap:
            due, i = heapq.heappop(self.heap)
            if due != self.keys[i]:
                continue
            worker = every[i]
            self.keys[i] = math.nan  # stepping: any feed below re-queues it after the step
            for rid, d in worker.step(self.specs):
                if worker.decode:
                    self._finished(rid, d)
                else:
                    self._prefilled(rid, self.arrival[rid] + d.e2e)
            self.steps += 1
            self._rekey(worker)
        if len(self.done) < len(self.specs):
            raise WorkloadError(STALLED)

    def _prefilled(self, rid: int, t: float) -> None:
        took = self.transfer(self.specs[rid].isl)
        self.transfer_s.append(took)
        self.landed[rid] = t + took
        self._feed(self.decode[self.to_decode % len(self.decode)], t + took, rid)
        self.to_decode += 1

    def _finished(self, rid: int, d: Done) -> None:
        """The request's Done on the whole deployment's clock: from its arrival at the prefill
        pool, not at the decode worker."""
        ahead = self.landed[rid] - self.arrival[rid]
        self.done.append(replace(d, ttft=d.ttft + ahead, e2e=d.e2e + ahead, index=rid))
        if self.closed and self.sent < len(self.specs):
            self._send(self.arrival[rid] + d.e2e + ahead)


def outcome(pools: _Pools) -> Outcome:
    """The decode pool's requests and steps as one Outcome (serve/metrics.py)."""
    dec = [w.inst for w in pools.decode]
    done = tuple(sorted(pools.done, key=lambda d: d.index))
    end = max(w.t for w in dec)
    return Outcome(done, tuple(x for w in dec for x in w.itl), (), end, end, pools.steps,
                   sum(w.state.preemptions for w in dec), max(w.state.peak_blocks for w in dec),
                   dec[0].state.total_blocks)


# --- run_serve's disaggregated path -------------------------------------------------------------

@dataclass(frozen=True)
class _Pool:
    """One pool's engine set-up: its layout, facts, KV plan and step cost."""

    layout: Any
    facts: Any
    kv: Any
    cost: Any
    estimate: Any
    bytes_per_token: float


def _pool(model_key, spec, prec, gpu_spec, profile, engine, tp, ep, dp, knobs,
          host, longest, decode: bool = False) -> _Pool:
    """One pool's engine; a decode pool of SGLang merges the requests whose KV arrived into its
    running batch with no forward of their own (ForwardMode.PREBUILT,
    python/sglang/srt/disaggregation/decode_schedule_batch_mixin.py, v0.5.x): modelled as its
    mixed chunk, the last prompt token riding a decode step."""
    from perfmodel.cost.parallel import Parallel
    from perfmodel.serve.engine_profile import with_engine_tables
    from perfmodel.serve.engines import engine_facts
    from perfmodel.serve.kv import kv_bytes_per_token, kv_plan
    from perfmodel.serve.ranks import layout

    par = Parallel(tp=tp, ep=ep, dp=dp)
    facts = engine_facts(engine, gpu_spec.mem_bytes, tp, 1, dp)
    if profile is not None:
        facts = facts.with_knobs(**profile.knobs)
    facts = facts.with_knobs(**{KNOBS[k]: v for k, v in knobs.items() if KNOBS[k]})
    if decode and facts.policy == "sglang":
        facts = replace(facts, mixed=True)
    lay = layout(spec, prec, gpu_spec, par)
    kv = kv_plan(lay.kv_spec, prec, gpu_spec, facts, lay.weights_bytes)
    cost, est = step_cost_for(lay, prec, with_engine_tables(gpu_spec, profile), facts, host,
                              model_key, longest,
                              (profile.tables or {}).get("fused_moe") if profile else None)
    return _Pool(lay, facts, kv, cost, est, kv_bytes_per_token(lay.kv_spec, prec))


def run_disagg(model: str, pools: Pools, *, gpu: str, engine: str = "vllm",
               concurrency: int | None = None, request_rate: float | None = None,
               isl: int = 1024, osl: int = 128, num_requests: int | None = None,
               lengths: str | None = None, precision: str | None = None,
               kv_dtype: str | None = None, act_quant: str | None = None, seed: int = 0,
               warmup: int = 0, engine_profile: str | None = None, kv_link_kind: str = "auto",
               shape: dict[str, Any] | None = None, **engine_knobs: Any):
    """run_serve for a disaggregated deployment (module docstring); a ServeReport whose
    metrics add "disagg" (the pools, their load, the KV transfer; docs/json.md). shape: the
    arrival and length options make_arrivals takes (burstiness, range_ratio, length_dist,
    length_cv)."""
    from perfmodel.api import resolve_precision
    from perfmodel.cost.parallel import Parallel, parallel_warnings
    from perfmodel.hardware.gpu import load_gpu
    from perfmodel.model.architectures import model_spec
    from perfmodel.model.source import load_model_config
    from perfmodel.serve.engine_profile import gpu_key, select_profile
    from perfmodel.serve.metrics import finite, metrics
    from perfmodel.serve.requests import make_arrivals
    from perfmodel.serve.result import Disagg, Parallelism, ServeResult, Workload, run_figures

    unknown = sorted(set(engine_knobs) - set(KNOBS))
    if unknown:
        raise WorkloadError(f"unknown engine knob {unknown[0]!r}; use one of "
                            f"{', '.join(KNOBS)}")
    gpu_spec = load_gpu(gpu)
    engine, profile = select_profile(engine, gpu_key(gpu_spec), engine_profile)
    cfg = load_model_config(model)
    spec = model_spec(cfg.config, cfg.where)
    prec = resolve_precision(cfg.config, precision, kv_dtype, act_quant, gpu_spec)
    full = make_arrivals(concurrency=concurrency, request_rate=request_rate, isl=isl,
                         osl=osl, num_requests=num_requests, lengths=lengths, seed=seed,
                         **(shape or {}))
    if not 0 <= warmup < len(full.requests):
        raise WorkloadError(f"--warmup must be a whole number from 0 to one less than the "
                            f"{len(full.requests)} requests run; raise --num-requests")
    if any(r.osl < 2 for r in full.requests):
        raise WorkloadError("disaggregated serving needs at least 2 output tokens a request "
                            "(the decode pool makes every token after the first); raise --osl")
    link = kv_link(gpu_spec, pools, kv_link_kind)
    host = host_overhead(engine_knobs.get("host_overhead_s"), profile, engine)[0]
    longest = max(r.isl for r in full.requests)
    key = (cfg.model_id, cfg.source, gpu_spec.name, profile.path if profile else None)
    pre = _pool(key, spec, prec, gpu_spec, profile, engine, pools.prefill_tp, pools.prefill_ep,
                pools.prefill_dp, engine_knobs, host, longest)
    dec = _pool(key, spec, prec, gpu_spec, profile, engine, pools.decode_tp, pools.decode_ep,
                pools.decode_dp, engine_knobs, host, longest, decode=True)
    per_token = transfer_bytes(1, pre.bytes_per_token, dec.bytes_per_token)
    seconds: dict[int, tuple[float, float]] = {}

    def transfer(n: int) -> float:
        if n not in seconds:
            seconds[n] = link.seconds(transfer_bytes(n, pre.bytes_per_token,
                                                     dec.bytes_per_token))
        return seconds[n][0]

    def simulate(arrivals: Arrivals, ramp_s: float = 0.0) -> _Pools:
        sim = _Pools(arrivals,
                     [_Worker(Instance(pre.facts, pre.kv.blocks, pre.kv.block_size, pre.cost),
                              False) for _ in range(pools.prefill_workers * pools.prefill_dp)],
                     [_Worker(Instance(dec.facts, dec.kv.blocks, dec.kv.block_size, dec.cost),
                              True) for _ in range(pools.decode_workers * pools.decode_dp)],
                     transfer)
        sim.start(ramp_s)
        sim.run()
        return sim

    c = full.concurrency
    if c and len(full.requests) > c:  # as run_serve's closed loop: a cold wave, then steady
        cold = outcome(simulate(replace(full, requests=full.requests[:c])))
        sim = simulate(full, _steady_e2e(pre, dec, pools, full, transfer))
        steady = outcome(sim)
        out = replace(steady, done=tuple(d for d in cold.done if d.index < c)
                      + tuple(d for d in steady.done if d.index >= c),
                      preemptions=cold.preemptions + steady.preemptions,
                      peak_blocks=max(cold.peak_blocks, steady.peak_blocks))
    else:
        sim = simulate(full)
        out = outcome(sim)
    latency = profile.request_latency_s if profile else 0.0
    out = with_request_latency(out, latency)
    doc = metrics(out, pools.gpus)
    measured = after_warmup(out, warmup, 1)
    if measured is not out:
        doc = with_latencies(doc, metrics(measured, pools.gpus))
    doc["limit"] = limit_bounds(measured, pre.cost, dec.cost, link, per_token)
    layout = Parallel(tp=pools.decode_tp, ep=pools.decode_ep, dp=pools.decode_dp).to_dict()
    result = ServeResult(
        model=cfg.model_id, gpu=gpu_spec.name, engine=dec.facts.name, precision=prec.label,
        parallel=Parallelism(**{**layout, "gpus": pools.gpus},
                             schedulers=len(sim.prefill) + len(sim.decode)),
        workload=Workload(concurrency=concurrency,
                          request_rate=finite(None if request_rate == math.inf
                                              else request_rate),
                          num_requests=len(full.requests), warmup=warmup, lock_step=False,
                          isl=None if lengths else isl, osl=None if lengths else osl),
        **run_figures(finite(doc), block_size=dec.kv.block_size, tokens=dec.kv.tokens,
                      bytes_per_token=dec.kv.bytes_per_token),
        disagg=Disagg.from_dict(finite(_disagg_doc(pools, sim, pre, dec, link, per_token,
                                                   seconds, out))),
        host_overhead_s=host, request_latency_s=latency,
        engine_profile=profile_ref(profile), power_limit=None,
        estimate_note=dec.estimate.note)
    warnings = tuple(w for w in (
        pre.estimate.flag, link.flag,
        *parallel_warnings(gpu_spec, Parallel(tp=pools.prefill_tp, ep=pools.prefill_ep,
                                              dp=pools.prefill_dp), bool(pre.estimate.estimator),
                           engine=pre.facts.kernels),
        *parallel_warnings(gpu_spec, Parallel(tp=pools.decode_tp, ep=pools.decode_ep,
                                              dp=pools.decode_dp), bool(dec.estimate.estimator),
                           engine=dec.facts.kernels)) if w)
    return ServeReport(result, dec.facts, dec.kv, out, tuple(dict.fromkeys(warnings)),
                      dec.cost)


def _steady_e2e(pre: _Pool, dec: _Pool, pools: Pools, arrivals: Arrivals, transfer) -> float:
    """A closed loop's request lifetime in steady state (serve.steady_e2e for two pools): one
    prefill alone, its transfer, and O − 1 decode steps of each decode scheduler's share of the
    C sequences at mid context."""
    reqs = arrivals.requests
    isl = round(sum(r.isl for r in reqs) / len(reqs))
    osl = sum(r.osl for r in reqs) / len(reqs)
    b = max(1, -(-arrivals.concurrency // (pools.decode_workers * pools.decode_dp)))
    return (pre.cost.step(0, 0, [(0, isl)], 1)[0] + transfer(isl)
            + (osl - 1) * dec.cost.step(b, b * (isl + osl / 2), [], b)[0])


def limit_bounds(out: Outcome, prefill_cost, decode_cost, link: KvLink,
                 per_token: float) -> dict[str, dict]:
    """What no engine can beat for these requests on these pools: TTFT ≥ the prompt prefilled
    alone at the prefill worker's roofline + its KV over the link at full bandwidth + one decode
    step of that request alone at the roofline; TPOT ≥ one decode step of the B sequences the
    decode schedulers ran on average, at mean context I + O/2, at the roofline; E2E ≥ TTFT +
    (O − 2)·TPOT (the first decode step is in TTFT)."""
    from perfmodel.serve.metrics import summary

    steps = len(out.itl)
    b = max(1, round(sum(n for _, n in out.itl) / steps)) if steps else 1
    done = out.done
    isl = sum(d.isl for d in done) / len(done)
    osl = sum(d.osl for d in done) / len(done)
    tpot = decode_cost.step(b, b * (isl + osl / 2), [], b)[1]
    first = {n: prefill_cost.step(0, 0, [(0, n)], 1)[1] + link.seconds(n * per_token)[1]
             + decode_cost.step(1, n + 1, [], 1)[1] for n in {d.isl for d in done}}
    ttft = [first[d.isl] for d in done]
    return {"ttft_s": summary(ttft), "tpot_s": summary([tpot] * len(done)),
            "e2e_s": summary([first[d.isl] + max(d.osl - 2, 0) * tpot for d in done])}


def _disagg_doc(pools: Pools, sim: _Pools, pre: _Pool, dec: _Pool, link: KvLink,
                per_token: float, seconds: dict, out: Outcome) -> dict[str, Any]:
    """The "disagg" block of serve --json (docs/json.md): each pool's layout and load, and the
    KV transfer."""
    end = out.duration or 1.0
    steps = [n for w in sim.decode for _, n in w.inst.itl]

    def pool(kind: str, workers, p: _Pool) -> dict[str, Any]:
        return {"workers": getattr(pools, f"{kind}_workers"), "tp": getattr(pools, f"{kind}_tp"),
                "ep": getattr(pools, f"{kind}_ep"), "dp": getattr(pools, f"{kind}_dp"),
                "gpus": getattr(pools, f"{kind}_gpus"), "schedulers": len(workers),
                "busy_fraction": sum(w.inst.busy_s for w in workers) / len(workers) / end,
                "kv_blocks": p.kv.blocks, "block_size": p.kv.block_size,
                "peak_kv_fraction": max(w.inst.state.peak_blocks / w.inst.state.total_blocks
                                        for w in workers)}

    lim = [seconds[d.isl][1] for d in out.done] if seconds else []
    return {"layout": pools.compact, "gpus": pools.gpus,
            "prefill": pool("prefill", sim.prefill, pre),
            "decode": {**pool("decode", sim.decode, dec),
                       "mean_batch": sum(steps) / len(steps) if steps else None},
            "kv_transfer": {"link": link.kind, "bandwidth": link.bandwidth,
                            "source": link.source, "bytes_per_token": per_token,
                            "mean_bytes": per_token * sum(d.isl for d in out.done) / len(out.done),
                            "mean_s": sum(sim.transfer_s) / len(sim.transfer_s),
                            "limit_mean_s": sum(lim) / len(lim) if lim else None,
                            "measured_table": link.table is not None}}
