"""A fleet: N engine instances behind a router, stepped in one global time order.

Each replica is one engine instance (serve/simulate.py Instance) with the run's --tp/--ep/--dp/
--pp layout, its own scheduler, KV pool and clock. A router sends each arriving request to one
replica at its arrival (routers below); the request then stays there. The driver always runs
the earliest event next: an arrival at a goes before any step starting after a (so a replica
whose step starts at t ≥ a admits it at that step, as one instance does), else the replica
whose next step starts earliest (ties: the lowest index). The router sees each replica's
queues after its latest simulated step. Closed loop (--concurrency C): C clients across the
fleet, each client's next request routed when it is sent; open loop: the one stream routed.

Routers (replica index 0..N−1):
- round-robin: request k of the run goes to replica k mod N (in arrival order).
- least-loaded: the replica with the fewest requests waiting + running (prefilling or
  decoding), ties to the lowest index. The load in requests is what the engines' own
  balancers count: SGLang's data-parallel controller (--load-balance-method shortest_queue,
  python/sglang/srt/managers/data_parallel_controller.py) balances each rank's num_reqs =
  running + waiting (scheduler_metrics_mixin.py get_load); vLLM's internal DP load balancer
  (vllm/v1/engine/core_client.py DPLBAsyncMPClient, v0.26) scores waiting·4 + running. Both
  see the counts up to ~100 ms late; this router sees them exact.
- prefix-affinity: a request with a prefix_id goes where the first request of that id went
  (chosen least-loaded), the others least-loaded, so a shared prefix is cached on one replica
  (the cache itself is the prefix-caching model's). Never rebalanced, unlike SGLang router's
  cache_aware policy, which leaves the prefix match when the load gap passes its thresholds.

Replicas sharing a GPU (replicas_per_gpu K > 1, e.g. two vLLM servers with
--gpu-memory-utilization 0.45 each on one GPU): each has its own KV pool sized from its own
memory fraction, and the K replicas of a GPU time-share its compute: a step's host part
(the engine's host overhead per step) runs on its own, its GPU part only when no other
replica of that GPU is computing (CUDA time-slices contexts of separate processes; MPS off),
in the order the steps start. Context-switch costs are not modelled.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from perfmodel.errors import WorkloadError
from perfmodel.serve.prefix_cache import merged_stats
from perfmodel.serve.requests import Arrivals, RequestSpec
from perfmodel.serve.simulate import STALLED, Done, Instance, Load, Outcome

ROUTERS = ("round-robin", "least-loaded", "prefix-affinity")


class Router:
    """Chooses a replica for each arriving request from the replicas' loads (docstring above)."""

    def __init__(self, policy: str, replicas: int):
        if policy not in ROUTERS:
            raise WorkloadError(f"unknown router {policy!r}; use one of {', '.join(ROUTERS)}")
        self.policy, self.replicas = policy, replicas
        self.sent = 0
        self.home: dict[int, int] = {}  # prefix_id → its replica

    def choose(self, spec: RequestSpec, loads: Callable[[], Sequence[Load]]) -> int:
        """The replica for spec; `loads` gives every replica's Load when the policy needs it."""
        self.sent += 1
        if self.policy == "round-robin":
            return (self.sent - 1) % self.replicas
        if self.policy == "prefix-affinity" and spec.prefix_id is not None:
            home = self.home.get(spec.prefix_id)
            if home is None:
                home = self.home[spec.prefix_id] = least_loaded(loads())
            return home
        return least_loaded(loads())


def least_loaded(loads: Sequence[Load]) -> int:
    """The index of the fewest waiting + running requests; ties to the lowest index."""
    counts = [load.waiting + load.running for load in loads]
    return counts.index(min(counts))


class SharedGpu:
    """A GPU that several replicas time-share: when its compute is next free (seconds)."""

    __slots__ = ("free_at",)

    def __init__(self):
        self.free_at = 0.0


class SharedCost:
    """A replica's step cost on a shared GPU: its host part runs from the step's start, its
    GPU part (estimate − host overhead) once the GPU is free; the step lasts until its GPU part
    ends. The limit clock is the instance's own (unshared)."""

    def __init__(self, cost, gpu: SharedGpu):
        self.cost, self.gpu, self.host = cost, gpu, cost.host_overhead_s
        self.instance: Instance | None = None

    def step(self, *args) -> tuple[float, float]:
        est, lim = self.cost.step(*args)
        start = self.instance.t
        gpu_start = max(start + self.host, self.gpu.free_at)
        self.gpu.free_at = end = gpu_start + (est - self.host)
        return end - start, lim


@dataclass(frozen=True)
class ReplicaStats:
    """One replica's share of a fleet run (seconds, blocks)."""

    requests: int
    output_tokens: int
    busy_s: float  # estimate-clock time in steps (on a shared GPU: waiting for it included)
    steps: int  # engine steps run (the fleet's Outcome.steps also counts idle waits, as
    # simulate's does)
    preemptions: int
    peak_blocks: int
    total_blocks: int

    def to_dict(self, duration: float) -> dict:
        return {"requests": self.requests, "output_tokens": self.output_tokens,
                "busy_fraction": self.busy_s / duration if duration else None,
                "steps": self.steps, "preemptions": self.preemptions,
                "peak_kv_blocks_used": self.peak_blocks,
                "peak_kv_fraction": self.peak_blocks / self.total_blocks}


@dataclass(frozen=True)
class FleetOutcome:
    """A fleet run: the merged Outcome (every replica's requests and ITL samples; trace rows
    with the replica index last; KV peak of the fullest replica) and each replica's stats."""

    outcome: Outcome
    replicas: tuple[ReplicaStats, ...]


def make_instances(n: int, per_gpu: int, build: Callable[[object], Instance], cost
                   ) -> list[Instance]:
    """n instances from build(cost); with per_gpu > 1, each run of per_gpu consecutive replicas
    time-shares one GPU (SharedCost)."""
    if per_gpu == 1:
        return [build(cost) for _ in range(n)]
    out = []
    for k in range(n):
        if k % per_gpu == 0:
            gpu = SharedGpu()
        shared = SharedCost(cost, gpu)
        inst = build(shared)
        shared.instance = inst
        out.append(inst)
    return out


class _Senders:
    """When the next request is sent (its TTFT counts from that time, as simulate has it).
    Open loop: the specs' arrival times.
    Closed loop: the clients' sends, client k's first at k·ramp_s/C, each next one
    client_delay_s after its previous one ends."""

    def __init__(self, arrivals: Arrivals, ramp_s: float, client_delay_s: float):
        self.specs, self.delay = arrivals.requests, client_delay_s
        self.closed = arrivals.concurrency is not None
        first = min(arrivals.concurrency, len(self.specs)) if self.closed else 0
        self.sends = [(k * ramp_s / first, k) for k in range(first)]  # a heap
        self.order = first
        self.next = 0  # the next request to send

    def due(self) -> float:
        if self.closed:
            return self.sends[0][0] if self.sends else math.inf
        return self.specs[self.next].arrival if self.next < len(self.specs) else math.inf

    def pop(self) -> float:
        """The next request is sent: its `at` for Instance.inject."""
        self.next += 1
        if not self.closed:
            return self.specs[self.next - 1].arrival
        return heapq.heappop(self.sends)[0]

    def ended(self, t: float, count: int) -> None:
        """count requests ended at t: their clients send again while requests are left."""
        for _ in range(count if self.closed else 0):
            if self.next + len(self.sends) < len(self.specs):
                heapq.heappush(self.sends, (t + self.delay, self.order))
                self.order += 1


def simulate_fleet(arrivals: Arrivals, instances: list[Instance], router: Router,
                   on_progress: Callable[[int, int], None] | None = None, ramp_s: float = 0.0,
                   client_delay_s: float = 0.0) -> FleetOutcome:
    """Every request of `arrivals` through the fleet (module docstring), closed loop as
    simulate's (_Senders)."""
    specs, n = arrivals.requests, len(arrivals.requests)
    senders = _Senders(arrivals, ramp_s, client_delay_s)
    done: list[Done] = []
    itl: list[tuple[float, int]] = []
    trace: list[tuple] = []
    marks = [[0, 0] for _ in instances]  # per replica: its itl and trace rows already merged
    loads = lambda: [inst.load() for inst in instances]  # noqa: E731
    steps = 0
    while True:
        start, k = min((inst.next_start(), k) for k, inst in enumerate(instances))
        due = senders.due()
        if due == math.inf and start == math.inf:
            break
        if due <= start:  # the arrival first: it joins before any step that starts after it
            index = senders.next
            inst = instances[router.choose(specs[index], loads)]
            if inst.next_start() == math.inf and due > inst.t:
                inst.wait_until(due)
            inst.inject(specs[index], index, senders.pop())
            continue
        inst = instances[k]
        if not inst.run_step():
            raise WorkloadError(STALLED)
        steps += 1
        if on_progress is not None and steps % 256 == 0:
            on_progress(len(done), n)
        row = marks[k]
        itl.extend(inst.itl[row[0]:])
        trace.extend((*r, k) for r in inst.trace[row[1]:])
        row[0], row[1] = len(inst.itl), len(inst.trace)
        finished = inst.collect()
        if finished:
            done.extend(finished)
            senders.ended(inst.t, len(finished))
    return _outcome(instances, done, itl, trace)


def _outcome(instances: list[Instance], done: list[Done], itl: list, trace: list
             ) -> FleetOutcome:
    stats = tuple(ReplicaStats(len(inst.done), sum(d.osl for d in inst.done), inst.busy_s,
                               inst.steps, inst.state.preemptions, inst.state.peak_blocks,
                               inst.state.total_blocks) for inst in instances)
    out = Outcome(tuple(done), tuple(itl), tuple(trace), max(i.t for i in instances),
                  max(i.t_lim for i in instances), sum(i.steps + i.waits for i in instances),
                  sum(s.preemptions for s in stats), max(s.peak_blocks for s in stats),
                  instances[0].state.total_blocks,
                  merged_stats(inst.state.cache for inst in instances))
    return FleetOutcome(out, stats)


def serve_fleet(arrivals: Arrivals, build: Callable[[object], Instance], cost, *,
                replicas: int, router: str, per_gpu: int = 1, stagger: bool = True,
                on_progress: Callable[[int, int], None] | None = None,
                client_delay_s: float = 0.0, steady_e2e: Callable | None = None
                ) -> FleetOutcome:
    """run_serve's fleet: fresh instances from build(step cost) per run. A closed loop with
    more requests than clients runs as one instance does (serve/__init__.py
    _cold_wave_then_steady): the first C requests as a cold wave on their own, the rest from a
    steady run whose clients' first sends are spread over steady_e2e(cost, arrivals at
    ⌈C/N⌉ clients a replica); throughput, ITL and the replicas' stats are the steady run's."""
    def run(arr, progress=None, ramp=0.0, delay=0.0):
        return simulate_fleet(arr, make_instances(replicas, per_gpu, build, cost),
                              Router(router, replicas), progress, ramp, delay)

    c = arrivals.concurrency
    if not (c and stagger and len(arrivals.requests) > c):
        return run(arrivals, on_progress, 0.0, client_delay_s)
    cold = run(replace(arrivals, requests=arrivals.requests[:c])).outcome
    ramp = steady_e2e(cost, replace(arrivals, concurrency=math.ceil(c / replicas)))
    steady = run(arrivals, on_progress, ramp, client_delay_s)
    out = steady.outcome
    done = tuple(d for d in cold.done if d.index < c) + \
        tuple(d for d in out.done if d.index >= c)
    return replace(steady, outcome=replace(
        out, done=done, preemptions=cold.preemptions + out.preemptions,
        peak_blocks=max(cold.peak_blocks, out.peak_blocks)))


def check_fleet(replicas: int, router: str, per_gpu: int, facts) -> None:
    """One line for a fleet the model cannot run."""
    from perfmodel.errors import whole

    whole(replicas, "--replicas", MAX_REPLICAS)
    whole(per_gpu, "--replicas-per-gpu", MAX_REPLICAS)
    if router not in ROUTERS:
        raise WorkloadError(f"unknown --router {router!r}; use one of {', '.join(ROUTERS)}")
    if replicas % per_gpu:
        raise WorkloadError(f"--replicas {replicas} does not fill GPUs of --replicas-per-gpu "
                            f"{per_gpu}; give a multiple of it")
    if per_gpu > 1 and facts.memory_rule == "free":
        raise WorkloadError(f"{facts.name} sizes its KV cache from the memory left free when "
                            "it starts, which depends on the order replicas sharing a GPU "
                            "start; --replicas-per-gpu is modelled for vllm and sglang")
    if per_gpu * facts.memory_fraction > 1 + 1e-9:
        raise WorkloadError(f"{per_gpu} replicas a GPU at memory fraction "
                            f"{facts.memory_fraction:g} each ask for more than the GPU; give "
                            f"--gpu-memory-utilization ≤ {1 / per_gpu:.3g}")


MAX_REPLICAS = 1024


def fleet_warning(replicas: int, per_gpu: int, facts) -> str | None:
    """A hint when replicas on separate GPUs have memory fractions that would fit one."""
    if replicas < 2 or per_gpu > 1 or facts.memory_rule == "free":
        return None
    fit = min(replicas, int(1 / facts.memory_fraction + 1e-9))
    if fit < 2:
        return None
    return (f"each replica runs on its own GPUs; at memory fraction "
            f"{facts.memory_fraction:g} each, {fit} would fit one GPU: pass "
            f"--replicas-per-gpu {fit} if they share it (docs/serving.md, Fleets)")


def fleet_doc(fleet: FleetOutcome, router: str, per_gpu: int, gpus: int) -> dict:
    """The --json "fleet" section (docs/json.md)."""
    duration = fleet.outcome.duration
    return {"replicas": len(fleet.replicas), "router": router, "replicas_per_gpu": per_gpu,
            "gpus": gpus, "per_replica": [r.to_dict(duration) for r in fleet.replicas]}
