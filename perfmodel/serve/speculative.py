"""Speculative decoding in the serving simulation: the drafter, the verification step, and the
batch size beyond which speculation stops paying.

Each decode step of a sequence drafts k tokens, then one verification step of the target runs
T = k + 1 tokens per decoding sequence (the last accepted token and the k drafts) and keeps the
accepted drafts plus one token of its own (the bonus). The acceptance a is an input, defined as
vLLM reports it (vllm/v1/spec_decode/metrics.py, SpecDecodingLogging.log: "Mean acceptance
length" = 1 + accepted / drafts, "conventionally including the bonus token"): the mean tokens a
sequence emits per verification step, 1 ≤ a ≤ k + 1. It depends on the data, not the GPU.

A step's cost (SpeculativeStep.step, same signature as StepCost.step):
- the target: the per-token ops at M = T·B + prefill tokens, the LM head over the T·B verified
  positions (the rejection sampler needs the target's logits at every draft position), and
  attention of T queries over each sequence's cache (one varlen kernel, as the prefill chunks'),
  its (query, key) pairs pairs(P + T) − pairs(P) at the decoders' mean cached length P;
- the drafter, after it (vLLM v1/spec_decode/eagle.py, EagleProposer.propose; draft_model.py's
  DraftModelProposer shares that loop): a first pass over every token the target just ran (M =
  T·B + prefill tokens, T queries per decoder), sampling the B next drafts, then k − 1 passes at
  M = B, one query over each cache. Its model: MTP, the checkpoint's next-token-prediction layer
  (num_nextn_predict_layers: DeepSeek-V3, GLM-4.5; num_mtp_modules: MiniMax-M2), one decoder
  layer of the target's deepest kind plus the LM head (vLLM reuses the one layer for every draft
  step); EAGLE, a one-layer head of the target's width and attention with a dense MLP (the
  published EAGLE/EAGLE-3 heads, e.g. yuhuili/EAGLE3-LLaMA3.1-Instruct-8B: D 4096, F 14336) and
  the target's LM head; draft-model, the draft's own config through the same loader; ngram, no
  GPU work (vLLM v1/spec_decode/ngram_proposer.py matches n-grams of the prompt on the CPU).
  Ignored: the MTP/EAGLE input projection (2D → D), EAGLE-3's smaller draft vocabulary, the
  rejection sampler's own kernels; the host time of the draft loop is an input,
  draft_overhead_s per drafter pass (0 by default: the host overhead counts once a step);
- the power limit over the step's whole matrix work, and the engine's host overhead once.
With k = 0 and no drafter the step is StepCost.step's, term for term.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfmodel.errors import WorkloadError
from perfmodel.hardware.sustained import sustained_fraction
from perfmodel.serve.step_cost import RememberedSteps, StepCost

METHODS = ("mtp", "eagle", "ngram", "draft-model")
MAX_SPEC_TOKENS = 64  # far above any engine's useful k (vLLM's docs use 1-7)
MAX_DRAFT_OVERHEAD_S = 1.0  # host time per drafter pass; measured ones are a few ms


@dataclass(frozen=True)
class Speculation:
    """What the user asked for: method, k draft tokens per step, acceptance a (tokens emitted
    per verification step per sequence, bonus included), the draft model's id (draft-model)."""

    method: str
    spec_tokens: int
    acceptance: float
    draft_model: str | None = None
    draft_overhead_s: float = 0.0  # host time per drafter pass (an input; 0: GPU work only)

    @property
    def queries(self) -> int:
        """T = k + 1: tokens each decoding sequence runs through the target per step."""
        return self.spec_tokens + 1


def speculation(method: str | None, spec_tokens: int | None, acceptance: float | None,
                draft_model: str | None, pp: int = 1,
                draft_overhead_s: float | None = None) -> Speculation | None:
    """The checked request, None without --speculative; a WorkloadError names the bad flag."""
    if method is None:
        given = [f for f, v in (("--spec-tokens", spec_tokens), ("--acceptance", acceptance),
                                ("--draft-model", draft_model),
                                ("--draft-overhead", draft_overhead_s)) if v is not None]
        if given:
            raise WorkloadError(f"{given[0]} needs --speculative (one of {', '.join(METHODS)})")
        return None
    if method not in METHODS:
        raise WorkloadError(f"--speculative must be one of {', '.join(METHODS)}, not {method!r}")
    for flag, value in (("--spec-tokens k", spec_tokens), ("--acceptance a", acceptance)):
        if value is None:
            raise WorkloadError(f"--speculative needs {flag} (docs/serving.md lists acceptance "
                                "figures to start from)")
    if isinstance(spec_tokens, bool) or not isinstance(spec_tokens, int) or \
            not 1 <= spec_tokens <= MAX_SPEC_TOKENS:
        raise WorkloadError(f"--spec-tokens must be a whole number from 1 to {MAX_SPEC_TOKENS} "
                            f"(draft tokens per step), not {spec_tokens!r}")
    if isinstance(acceptance, bool) or not isinstance(acceptance, (int, float)) or \
            not 1 <= acceptance <= spec_tokens + 1:
        raise WorkloadError(f"--acceptance must be from 1 to k + 1 = {spec_tokens + 1} (mean "
                            f"tokens per step, bonus included, as vLLM reports it), not "
                            f"{acceptance!r}")
    if (method == "draft-model") != (draft_model is not None):
        raise WorkloadError("--draft-model ID goes with --speculative draft-model, and only "
                            "with it")
    if pp > 1:
        raise WorkloadError("speculative decoding with --pp is not modelled; use --tp")
    overhead = 0.0 if draft_overhead_s is None else draft_overhead_s
    if isinstance(overhead, bool) or not isinstance(overhead, (int, float)) or \
            not 0 <= overhead <= MAX_DRAFT_OVERHEAD_S:
        raise WorkloadError(f"--draft-overhead must be from 0 to {MAX_DRAFT_OVERHEAD_S:g} s per "
                            f"drafter pass, not {overhead!r}")
    return Speculation(method, spec_tokens, float(acceptance), draft_model, float(overhead))


class SpeculativeStep(RememberedSteps):
    """StepCost's interface (step, tokens_per_step, queries_per_decoder) for a speculative
    engine: the target's verification step plus the drafter's passes; see the module doc."""

    def __init__(self, target: StepCost, draft: StepCost | None, spec: Speculation):
        self.target, self.draft, self.spec = target, draft, spec
        self.tokens_per_step = spec.acceptance
        self.queries_per_decoder = spec.queries
        self._steps: dict[tuple, tuple[float, float]] = {}
        self.sustained, self.sustained_dtype = target.sustained, target.sustained_dtype

    def _step(self, n: int, context_sum: float, chunks, samples: int) -> tuple[float, float]:
        t = self.spec.queries
        cost = self.target
        est, lim, cmp = cost.work(n, context_sum, chunks, samples - n + t * n, t)
        draft, passes = self.draft, 1 if n else 0  # ngram: one lookup for the decoders
        if draft is not None:
            e, limit, c = draft.work(n, context_sum, chunks, samples, t)
            est, lim, cmp = est + e, lim + limit, cmp + c
            passes = 1
            if samples and self.spec.spec_tokens > 1:
                mean = context_sum / n if n else sum(p + s for p, s in chunks) / len(chunks)
                e, limit, c = draft.work(samples, mean * samples, (), samples)
                more = self.spec.spec_tokens - 1
                est, lim, cmp = est + more * e, lim + more * limit, cmp + more * c
                passes += more
        est += passes * self.spec.draft_overhead_s
        if cmp > 0 and cost.sustained:  # the power limit over the step's matrix work
            est += cmp * (1 / sustained_fraction(cost.sustained, cmp) - 1)
        return est + cost.host_overhead_s, lim


def crossover(plain: StepCost, spec_cost: SpeculativeStep, context: float, max_batch: int
              ) -> dict:
    """Speculation's speedup per decode step against batch size B at mean context S (the
    workload's I + O/2): a · t_plain(B) / t_spec(B), tokens per second with speculation over
    without, both decode-only steps of B sequences at S, estimates. The crossover is the
    smallest B ≤ max_batch where it falls below 1 (None: it pays up to max_batch); below_one
    lists every run [first, last] of batches below 1 (an MoE target can pay again at large B,
    where the plain step reads every expert too)."""
    a = spec_cost.tokens_per_step
    every = []
    for b in range(1, max_batch + 1):
        base = plain.step(b, b * context, (), b)[0]
        spec = spec_cost.step(b, b * context, (), b)[0]
        every.append({"batch": b, "step_s": spec, "plain_step_s": base,
                      "speedup": a * base / spec})
    first = next((r["batch"] for r in every if r["speedup"] < 1), None)
    below: list[list[int]] = []
    for r in every:
        if r["speedup"] < 1:
            if below and below[-1][1] == r["batch"] - 1:
                below[-1][1] = r["batch"]
            else:
                below.append([r["batch"], r["batch"]])
    shown = {1 << i for i in range(max_batch.bit_length())} | {max_batch}
    if first is not None:
        shown |= {first - 1, first} - {0}
    return {"context_tokens": context, "crossover_batch": first, "below_one": below,
            "per_batch": [r for r in every if r["batch"] in shown]}
