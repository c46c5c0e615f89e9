"""The time of one engine step for a mixed batch, from the op model, built once and then cheap.

A step runs M tokens: one per decoding sequence plus the prefill chunks. Its time is
- the per-token ops (matmuls at M = all tokens of the step, norms, RoPE, activations, the
  embedding), precomputed on a grid of M (every M to 16, then ×1.15) from forward_ops and the
  estimator and interpolated linearly; decode-only steps (and mixed ones where the engine graphs
  them) are padded up to the next captured CUDA-graph size first;
- decode attention of B sequences over Σ S cached tokens, memory-bound and affine in Σ S per
  layer group (a window caps S at W), timed as one batched kernel;
- prefill attention of each chunk, T new tokens over S = P + T context: its (query, key) pairs
  are pairs(P + T) − pairs(P), timed as one varlen kernel over all chunks of the step;
- the final norm and LM head for the sequences that sample a token;
- the engine's host overhead per step (estimate only);
- the power limit (estimate only): a step's compute-bound ops, which the tables time at full
  clock, run at the profile's measured `sustained` fraction of that rate for a burst of matrix
  work as long as theirs (perfmodel/calibrate/power.py: an H100 or H200 at 700 W holds ~0.98 of
  it for 20 ms, ~0.85 from 1 s), the curve of the precision's compute dtype (else bf16's).
On many GPUs (`forward` = cost/parallel_predict.sharded_forward) the tables are one GPU's shard
plus its collectives (TP all-reduces at M tokens, EP dispatch/combine, PP sends in the per-token
table; the vocab-parallel logits all-gather with the sampling ops), each collective costed over
the link by cost/collective.py.
The limit is the same step at the roofline: no padding, no overhead, every op at peak.
"""

from __future__ import annotations

import bisect
from typing import Callable

from perfmodel.cost.collective import EngineComm
from perfmodel.cost.custom_allreduce import custom_allreduce_for
from perfmodel.cost.ops import ATTENTION, Op, causal_pairs, forward_ops
from perfmodel.cost.parallel import COLLECTIVE
from perfmodel.cost.precision import Precision
from perfmodel.cost.roofline import cost, peak_for
from perfmodel.cost.serving_engines import fp8_at_bf16_efficiency
from perfmodel.hardware.gpu import GpuSpec
from perfmodel.hardware.sustained import sustained_fraction
from perfmodel.model.spec import ModelSpec

Estimator = Callable[[Op], "float | None"]
SAMPLE_OPS = ("final_norm", "lm_head", "lm_head_all_gather")


def m_grid(largest: int) -> list[int]:
    """Every M from 1 to 16, then steps of ×1.15, ending at `largest`."""
    grid, m = list(range(1, min(16, largest) + 1)), 16.0
    while m < largest:
        m = min(largest, m * 1.15)
        grid.append(int(round(m)))
    return sorted(set(grid))


def _interp(xs: list[int], ys: list[float], x: float) -> float:
    """Piecewise-linear in x, extrapolated along the last segment beyond the grid."""
    i = bisect.bisect_left(xs, x)
    if i < len(xs) and xs[i] == x:
        return ys[i]
    i = min(max(i, 1), len(xs) - 1)
    x0, x1 = xs[i - 1], xs[i]
    return ys[i - 1] + (ys[i] - ys[i - 1]) * (x - x0) / (x1 - x0)


def _with(op: Op, **fields) -> Op:
    """dataclasses.replace(op, **fields) without its per-call field introspection (the same
    frozen Op, field for field; this runs once or twice every simulated step)."""
    new = object.__new__(Op)
    values = dict(op.__dict__)
    values.update(fields)
    object.__setattr__(new, "__dict__", values)
    return new


class RememberedSteps:
    """step() remembered by its arguments: a closed loop of like requests settles into a cycle
    whose steps recur exactly. A subclass sets self._steps = {} and defines _step (the same
    arguments); the memo is emptied past MEMO_STEPS entries."""

    MEMO_STEPS = 200_000
    _steps: dict[tuple, tuple[float, float]]

    def step(self, decode_seqs: int, context_sum: float, chunks: list[tuple[int, int]],
             samples: int) -> tuple[float, float]:
        """(estimate, limit) seconds of one step: decode_seqs decoding over context_sum cached
        tokens, the prefill chunks, and `samples` sequences sampling a token."""
        key = (decode_seqs, context_sum, tuple(chunks), samples)
        got = self._steps.get(key)
        if got is None:
            if len(self._steps) > self.MEMO_STEPS:
                self._steps.clear()
            got = self._steps[key] = self._step(decode_seqs, context_sum, chunks, samples)
        return got

    def _step(self, decode_seqs: int, context_sum: float, chunks: list[tuple[int, int]],
              samples: int) -> tuple[float, float]:
        raise NotImplementedError


class StepCost(RememberedSteps):
    """Step times for one (model, precision, GPU, engine kernels); see the module docstring.

    `estimator` None (no measured profile) leaves only the limit; estimates then equal it.
    `spec` is the model one GPU holds and `forward` its ops (forward_ops' signature), the shard
    and its collectives on many GPUs; `allreduce` the engine whose custom all-reduce rule
    applies (None: NCCL for every collective).
    """

    def __init__(self, spec: ModelSpec, precision: Precision, gpu: GpuSpec,
                 estimator: Estimator | None, *, max_tokens: int, max_seqs: int,
                 capture_sizes: tuple[int, ...], pad_mixed: bool, host_overhead_s: float,
                 forward=forward_ops, allreduce: str | None = None):
        self.gpu = gpu
        self.comm = EngineComm(gpu, estimator is not None, custom_allreduce_for(allreduce),
                               spec.hidden_size * precision.base_bytes)
        self.estimator = fp8_at_bf16_efficiency(estimator, gpu) if estimator else None
        # the power limit: the curve of the precision's compute dtype, else bf16's, if measured
        self.sustained_dtype = next((d for d in (precision.compute_dtype, "bf16")
                                     if estimator and gpu.sustained.get(d)), None)
        self.sustained = gpu.sustained[self.sustained_dtype] if self.sustained_dtype else ()
        self.capture = sorted(capture_sizes)
        self.pad_mixed, self.host_overhead_s = pad_mixed, host_overhead_s
        self.ms = m_grid(max(max_tokens, max(self.capture, default=1), 2))
        self.tok_est, self.tok_lim, self.tok_cmp = self._table(
            lambda m: forward(spec, precision, "prefill", 1, m, 1),
            lambda op: op.kind != ATTENTION and op.name not in SAMPLE_OPS, self.ms)
        self.bs = m_grid(max(max_seqs, 2))
        self.smp_est, self.smp_lim, self.smp_cmp = self._table(
            lambda b: forward(spec, precision, "decode", b, 1, 1),
            lambda op: op.name in SAMPLE_OPS, self.bs)
        self.groups = self._attention_groups(spec, precision)
        self._linear: dict[tuple[int, bool], tuple[float, float, float]] = {}
        self._sample: dict[int, tuple[float, float, float]] = {}
        self._power: dict[float, float] = {}
        self._steps: dict[tuple, tuple[float, float]] = {}
        # attention ops differ every step: their estimate without the estimator's memo (the
        # serving wrapper passes attention through unchanged), their roofline inline
        self._attention_estimate = (getattr(estimator, "uncached", estimator)
                                    if estimator else None)
        self._peaks: dict[str, float] = {}
        # per layer group, the estimator's attention time as a function of (FLOPs, bytes), its
        # table looked up once (decode template, prefill template); None: build the op
        path = getattr(estimator, "attention_path", None) if estimator else None
        self._fast = [(path(g[1]), path(g[4])) if path else (None, None) for g in self.groups]

    def _costs(self, op: Op) -> tuple[float, float, float]:
        """(estimate, limit, the estimate's compute-bound share: the estimate where the op's
        FLOPs at peak outlast its bytes, else 0)."""
        if op.kind == COLLECTIVE:  # NCCL or the engine's own all-reduce (cost/collective.py)
            c = self.comm(op)
            return (c.limit_s if c.estimate_s is None else c.estimate_s), c.limit_s, 0.0
        roof = cost(op, self.gpu)
        est = self.estimator(op) if self.estimator else None
        est = roof.limit_s if est is None else est
        return est, roof.limit_s, est if roof.compute_s > roof.memory_s else 0.0

    def __copy__(self) -> "StepCost":
        """A copy with its own remembered steps (a caller may change its settings, e.g. the
        power-limit curve, after copying)."""
        new = object.__new__(StepCost)
        new.__dict__.update(self.__dict__)
        new._linear, new._sample, new._power, new._steps = {}, {}, {}, {}
        return new

    def _attention_costs(self, op: Op) -> tuple[float, float, float]:
        """_costs(op) for an attention op, the same arithmetic as cost.roofline.cost."""
        peak = self._peaks.get(op.dtype)
        if peak is None:
            peak = self._peaks[op.dtype] = peak_for(self.gpu, op.dtype)
        compute = op.count * op.flops / peak
        memory = op.count * op.bytes / self.gpu.mem_bandwidth
        limit = max(compute, memory)
        est = self._attention_estimate(op) if self._attention_estimate else None
        est = limit if est is None else est
        return est, limit, est if compute > memory else 0.0

    def _attention_work(self, tmpl: Op, fast, flops: float, nbytes: float, shape: tuple
                        ) -> tuple[float, float, float]:
        """_attention_costs of tmpl with these FLOPs, bytes and shape, without building the op
        where the estimator gave a path for its layer group (the same arithmetic)."""
        if fast is None and self._attention_estimate:
            return self._attention_costs(_with(tmpl, flops=flops, bytes=nbytes, shape=shape))
        peak = self._peaks.get(tmpl.dtype)
        if peak is None:
            peak = self._peaks[tmpl.dtype] = peak_for(self.gpu, tmpl.dtype)
        compute = tmpl.count * flops / peak
        memory = tmpl.count * nbytes / self.gpu.mem_bandwidth
        limit = max(compute, memory)
        est = fast(flops, nbytes) if fast is not None else None
        est = limit if est is None else est
        return est, limit, est if compute > memory else 0.0

    def _table(self, build, keep, xs) -> tuple[list[float], list[float], list[float]]:
        est, lim, cmp = [], [], []
        for x in xs:
            ops = [op for op in build(x) if keep(op)]
            fused = self.comm.fused_norms(ops)
            costs = [(0.0, 0.0, 0.0) if op.name in fused else self._costs(op) for op in ops]
            est.append(sum(c[0] for c in costs))
            lim.append(sum(c[1] for c in costs))
            cmp.append(sum(c[2] for c in costs))
        return est, lim, cmp

    @staticmethod
    def _attention_groups(spec: ModelSpec, precision: Precision) -> list[tuple]:
        """Per layer group: (window, decode template, its Q/O bytes a and cache bytes c per
        token (bytes = B·(a + c·S)), prefill template, FLOPs per (query, key) pair, Q+O bytes
        per new token, K+V bytes per context token)."""
        def attention(phase: str, tokens: int, context: int) -> list[Op]:
            return [op for op in forward_ops(spec, precision, phase, 1, tokens, context)
                    if op.kind == ATTENTION]

        one, two = attention("decode", 1, 1), attention("decode", 1, 2)
        pre = attention("prefill", 64, 64)
        groups = []
        for (layer, _), d1, d2, p in zip(spec.layers, one, two, pre):
            attn, base = layer.attention, precision.base_bytes
            kv_heads = attn.num_heads if attn.kind == "mla" else attn.num_kv_heads
            width = attn.head_dim + attn.v_head_dim
            c = d2.bytes - d1.bytes
            groups.append((attn.window, d1, d1.bytes - c, c, p,
                           p.flops / causal_pairs(64, attn.window),
                           attn.num_heads * width * base, kv_heads * width * base))
        return groups

    def linear(self, tokens: int, padded: bool) -> tuple[float, float, float]:
        """Per-token ops at M = tokens: (estimate at the padded M, limit at M, the estimate's
        compute-bound share)."""
        key = (tokens, padded)
        got = self._linear.get(key)
        if got is None:  # remembered: a run meets the same step sizes again and again
            m = tokens
            if padded and self.capture and tokens <= self.capture[-1]:
                m = self.capture[bisect.bisect_left(self.capture, tokens)]
            got = self._linear[key] = (_interp(self.ms, self.tok_est, m),
                                       _interp(self.ms, self.tok_lim, tokens),
                                       _interp(self.ms, self.tok_cmp, m))
        return got

    def decode_attention(self, seqs: int, context_sum: float) -> tuple[float, float, float]:
        """B = seqs sequences attending to context_sum cached tokens in all (each at most the
        layer's window, applied to the mean), every layer group as one batched kernel."""
        est = lim = cmp = 0.0
        mean = context_sum / seqs
        for (window, tmpl, qo, per_token, *_), (fast, _) in zip(self.groups, self._fast):
            s = mean if window is None else min(mean, window)
            e, limit, c = self._attention_work(tmpl, fast, tmpl.flops * seqs * s,
                                               seqs * (qo + per_token * s),
                                               (seqs, s) + tuple(tmpl.shape[2:]))
            est, lim, cmp = est + e, lim + limit, cmp + c
        return est, lim, cmp

    def prefill_attention(self, chunks: list[tuple[int, int]]) -> tuple[float, float, float]:
        """Chunks of (P prior tokens, T new tokens), all in one varlen kernel per layer group."""
        est = lim = cmp = 0.0
        for (window, _, _, _, tmpl, per_pair, qo, kv), (_, fast) in zip(self.groups, self._fast):
            flops = nbytes = 0.0
            new = 0
            for prior, t in chunks:
                flops += per_pair * (causal_pairs(prior + t, window) - causal_pairs(prior, window))
                span = prior + t if window is None else min(prior + t, window + t)
                nbytes += t * qo + span * kv
                new += t
            e, limit, c = self._attention_work(tmpl, fast, flops, nbytes, (len(chunks), new / len(
                chunks)) + tuple(tmpl.shape[2:]))
            est, lim, cmp = est + e, lim + limit, cmp + c
        return est, lim, cmp

    def sample(self, seqs: int) -> tuple[float, float, float]:
        if seqs <= 0:
            return 0.0, 0.0, 0.0
        got = self._sample.get(seqs)
        if got is None:
            got = self._sample[seqs] = (_interp(self.bs, self.smp_est, seqs),
                                        _interp(self.bs, self.smp_lim, seqs),
                                        _interp(self.bs, self.smp_cmp, seqs))
        return got

    def work(self, decode_seqs: int, context_sum: float, chunks, rows: int, queries: int = 1
             ) -> tuple[float, float, float]:
        """(estimate, limit, compute-bound share) of one forward: decode_seqs decoders of
        `queries` new tokens each (1; k + 1 when verifying drafts, serve/speculative.py) over
        context_sum cached slots (Σ L, L counting the step's first query), the prefill chunks,
        and `rows` sampled rows; without the power limit and the host overhead."""
        if chunks:
            est, lim, cmp = self.linear(queries * decode_seqs + sum(t for _, t in chunks),
                                        padded=self.pad_mixed)
        else:
            est, lim, cmp = self.linear(queries * decode_seqs, padded=True)
        if rows > 0:
            e, limit, c = self.sample(rows)
        else:
            e = limit = c = 0.0
        est, lim, cmp = est + e, lim + limit, cmp + c
        if decode_seqs:
            e, limit, c = self.decode_attention(decode_seqs, context_sum) if queries == 1 \
                else self.verify_attention(decode_seqs, context_sum, queries)
            est, lim, cmp = est + e, lim + limit, cmp + c
        if chunks:
            e, limit, c = self.prefill_attention(list(chunks))
            est, lim, cmp = est + e, lim + limit, cmp + c
        return est, lim, cmp

    def verify_attention(self, seqs: int, context_sum: float, queries: int
                         ) -> tuple[float, float, float]:
        """B = seqs sequences each running T = queries new tokens over P = L − 1 cached ones (L
        the mean of context_sum / B): the prefill kernel's FLOPs and bytes of B chunks (P, T),
        i.e. B·(pairs(P + T) − pairs(P)) (query, key) pairs, exact for full attention where that
        is affine in P, at the mean P under a window."""
        prior = context_sum / seqs - 1
        est = lim = cmp = 0.0
        for (window, _, _, _, tmpl, per_pair, qo, kv), (_, fast) in zip(self.groups, self._fast):
            pairs = causal_pairs(prior + queries, window) - causal_pairs(prior, window)
            span = prior + queries if window is None else min(prior + queries, window + queries)
            e, limit, c = self._attention_work(
                tmpl, fast, seqs * per_pair * pairs, seqs * (queries * qo + span * kv),
                (seqs, queries) + tuple(tmpl.shape[2:]))
            est, lim, cmp = est + e, lim + limit, cmp + c
        return est, lim, cmp

    def _step(self, decode_seqs: int, context_sum: float, chunks: list[tuple[int, int]],
              samples: int) -> tuple[float, float]:
        est, lim, cmp = self.work(decode_seqs, context_sum, chunks, samples)
        if cmp > 0 and self.sustained:  # the power limit over this step's matrix work
            extra = self._power.get(cmp)
            if extra is None:
                if len(self._power) > 100_000:
                    self._power.clear()
                extra = self._power[cmp] = cmp * (1 / sustained_fraction(self.sustained, cmp) - 1)
            est += extra
        return est + self.host_overhead_s, lim

