"""Many GPUs: how TP, PP, EP and attention DP split a model, and the collectives they launch.

Conventions (docs/parallel.md). A pipeline stage has G = tp·dp GPUs; the job has tp·dp·pp.
- TP (Megatron): each GPU holds N/tp query heads, K/tp KV heads (one, replicated tp/K times,
  when tp exceeds K), F/tp of each MLP, V/tp of the vocabulary (vocab-parallel embedding and
  LM head). MLA keeps its latent KV cache whole on every GPU (it has no KV heads to split).
- DP (attention data parallelism, DeepSeek style): the attention and dense-MLP weights are
  replicated dp times; each rank runs its own B/dp sequences. MoE experts spread over the
  same G GPUs by EP.
- EP: each GPU holds E/ep whole experts; what is left of G after EP (G/ep) splits each expert's
  width. Without EP the experts are TP-split by width like any MLP.
- PP: the layers split into pp stages; the first holds the embedding, the last the LM head.

shard() gives the model one GPU holds; comm_ops() the collectives of one forward, with bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from perfmodel.errors import MAX_DEGREE, WorkloadError, whole
from perfmodel.model.spec import Attention, LayerSpec, Mlp, ModelSpec
from perfmodel.cost.ops import Op
from perfmodel.cost.precision import Precision

COLLECTIVE = "collective"
# op name -> the NCCL collective that carries it
COLLECTIVE_OF = {"embed_all_reduce": "all_reduce", "attn_all_reduce": "all_reduce",
                 "mlp_all_reduce": "all_reduce", "moe_all_reduce": "all_reduce",
                 "moe_dispatch": "all_to_all", "moe_combine": "all_to_all",
                 "lm_head_all_gather": "all_gather", "pp_send_recv": "send_recv"}


@dataclass(frozen=True)
class Parallel:
    """Degrees of tensor, pipeline, expert and attention-data parallelism (each ≥ 1)."""

    tp: int = 1
    pp: int = 1
    ep: int = 1
    dp: int = 1

    def __post_init__(self) -> None:
        for flag in ("tp", "pp", "ep", "dp"):
            whole(getattr(self, flag), f"--{flag}", MAX_DEGREE)
        if self.ep > 1 and self.stage_gpus % self.ep:
            raise WorkloadError(f"--ep {self.ep} must divide the {self.stage_gpus} GPUs of a "
                                "stage (tp·dp); experts spread over the attention GPUs")
        if self.dp > 1 and self.ep != self.stage_gpus:
            raise WorkloadError(f"--dp {self.dp} (attention data parallelism) needs --ep "
                                f"{self.stage_gpus} (= tp·dp): the experts spread over the "
                                "same GPUs, DeepSeek style")

    @property
    def stage_gpus(self) -> int:
        """G = tp·dp: the GPUs of one pipeline stage."""
        return self.tp * self.dp

    @property
    def gpus(self) -> int:
        return self.stage_gpus * self.pp

    @property
    def expert_width_split(self) -> int:
        """How many GPUs split each expert's width: G/ep."""
        return self.stage_gpus // self.ep

    @property
    def is_single(self) -> bool:
        return self.gpus == 1

    @property
    def label(self) -> str:
        parts = [f"{k.upper()}{v}" for k, v in (("tp", self.tp), ("pp", self.pp),
                                                 ("ep", self.ep), ("dp", self.dp)) if v > 1]
        return "+".join(parts) or "1 GPU"

    def to_dict(self) -> dict[str, int]:
        return {"tp": self.tp, "pp": self.pp, "ep": self.ep, "dp": self.dp, "gpus": self.gpus}


def check(spec: ModelSpec, par: Parallel) -> None:
    """WorkloadError naming the fix if the model cannot be split so."""
    for layer, _ in spec.layers:
        attn, mlp = layer.attention, layer.mlp
        if attn.num_heads % par.tp:
            raise WorkloadError(f"--tp {par.tp} does not divide the {attn.num_heads} query heads;"
                                f" use a divisor of {attn.num_heads}")
        kv = attn.num_kv_heads
        if attn.kind == "gqa" and kv % par.tp and par.tp % kv:
            raise WorkloadError(f"--tp {par.tp} and the {kv} KV heads do not divide one another;"
                                " pick tp dividing or a multiple of the KV heads")
        width = mlp.intermediate_size
        split = par.tp if mlp.kind == "dense" else par.expert_width_split
        if width % split:
            raise WorkloadError(f"an MLP width of {width} does not split over {split} GPUs; "
                                "pick another --tp (or --ep)")
        if mlp.kind == "moe" and mlp.num_experts % par.ep:
            raise WorkloadError(f"--ep {par.ep} must divide the {mlp.num_experts} experts")
    if par.ep > 1 and not spec.is_moe:
        raise WorkloadError("--ep spreads the experts of a mixture-of-experts model; this model "
                            "has none: drop --ep (and --dp)")
    if par.pp > spec.num_layers:
        raise WorkloadError(f"--pp {par.pp} exceeds the {spec.num_layers} layers")


def _attention(attn: Attention, tp: int) -> Attention:
    """N/tp query heads; K/tp KV heads, or one (replicated) when tp exceeds K; MLA's latent
    (the KV cache) and its down-projections stay whole on every GPU."""
    if tp == 1:
        return attn
    kv = attn.num_kv_heads if attn.kind == "mla" else max(1, attn.num_kv_heads // tp)
    return replace(attn, num_heads=attn.num_heads // tp, num_kv_heads=kv)


def _mlp(mlp: Mlp, par: Parallel) -> Mlp:
    """Dense: F/tp. MoE: E/ep experts of width F/(G/ep) and, per GPU, k·dp/ep of each local
    token's experts (so local pairs are B·T·k/ep: the stage's tokens spread over ep groups);
    shared experts F_shared/tp."""
    if mlp.kind == "dense":
        return replace(mlp, intermediate_size=mlp.intermediate_size // par.tp)
    top_k = mlp.top_k * par.dp / par.ep
    return replace(mlp, intermediate_size=mlp.intermediate_size // par.expert_width_split,
                   num_experts=mlp.num_experts // par.ep,
                   top_k=int(top_k) if float(top_k).is_integer() else top_k,
                   shared_intermediate_size=mlp.shared_intermediate_size // par.tp)


def stage_counts(count: int, pp: int) -> list[int]:
    """count layers over pp stages as evenly as may be, the first stages one larger."""
    return [count // pp + (1 if i < count % pp else 0) for i in range(pp)]


def shard(spec: ModelSpec, par: Parallel, stage: int | None = None) -> ModelSpec:
    """The model one GPU runs: TP/EP-split layers and vocabulary. stage None keeps every layer
    (the sum over the stages a token passes); stage i keeps that stage's layers only."""
    check(spec, par)
    layers = []
    for layer, count in spec.layers:
        n = count if stage is None else stage_counts(count, par.pp)[stage]
        if n:
            layers.append((LayerSpec(_attention(layer.attention, par.tp),
                                     _mlp(layer.mlp, par)), n))
    return replace(spec, vocab_size=math.ceil(spec.vocab_size / par.tp), layers=tuple(layers))


def local_batch(batch: int, par: Parallel) -> int:
    """Sequences one attention-DP rank runs: ⌈B/dp⌉ (the fullest rank sets the step)."""
    return math.ceil(batch / par.dp)


def _op(phase: str, name: str, count: int, nbytes: float, group: int, dtype: str) -> Op:
    return Op(phase=phase, name=name, kind=COLLECTIVE, count=count, flops=0.0,
              bytes=float(nbytes), dtype=dtype, shape=(group,),
              weight_dtype=COLLECTIVE_OF[name])


def comm_ops(spec: ModelSpec, par: Parallel, precision: Precision, phase: str, batch: int,
             tokens: int) -> list[Op]:
    """The collectives of one forward of `batch` sequences (per attention-DP rank) of `tokens`
    new tokens each; bytes are one rank's buffer as nccl-tests counts them.

    TP: an all-reduce of the M·D activations after the attention output and after the MLP (or
    MoE) of every layer, one after the vocab-parallel embedding, an all-gather of the B·V
    logits. DP+EP: an all-to-all dispatch of the M·k routed token copies (activation dtype, fp8
    where the GEMMs are W8A8, as DeepEP sends them) and a combine in the base dtype, M/tp tokens
    per GPU. PP: hidden states and residual (2·M·D) sent to the next stage, pp−1 times.
    """
    m, d = batch * tokens, spec.hidden_size
    base, act = precision.base_bytes, precision.act_bytes
    dtype, ops = precision.base_dtype, []
    if par.tp > 1:
        ops.append(_op(phase, "embed_all_reduce", 1, m * d * base, par.tp, dtype))
    for layer, count in spec.layers:
        if par.tp > 1:
            ops.append(_op(phase, "attn_all_reduce", count, m * d * base, par.tp, dtype))
        mlp = layer.mlp
        if mlp.kind == "dense" or par.dp == 1:
            if par.tp > 1:
                name = "mlp_all_reduce" if mlp.kind == "dense" else "moe_all_reduce"
                ops.append(_op(phase, name, count, m * d * base, par.tp, dtype))
        else:
            copies = m / par.tp * mlp.top_k
            ops += [_op(phase, "moe_dispatch", count, copies * d * act, par.stage_gpus, dtype),
                    _op(phase, "moe_combine", count, copies * d * base, par.stage_gpus, dtype)]
    if par.tp > 1:
        ops.append(_op(phase, "lm_head_all_gather", 1, batch * spec.vocab_size * base, par.tp,
                       dtype))
    if par.pp > 1:
        ops.append(_op(phase, "pp_send_recv", par.pp - 1, 2 * m * d * base, 2, dtype))
    return ops


def parallel_warnings(gpu, par: Parallel, estimating: bool, engine: str | None = None
                      ) -> list[str]:
    """What the user should know about the collectives' estimate on gpu (empty on one GPU);
    engine names a serving engine whose custom all-reduce rule applies (cost/custom_allreduce)."""
    if par.is_single or not estimating:
        return []
    from perfmodel.cost.collective import CUSTOM, tables_for
    from perfmodel.cost.custom_allreduce import custom_allreduce_for

    link, _, flag = tables_for(gpu)
    if link is None:
        return [f"no measured collective tables to estimate {gpu.name}'s NCCL times from; run "
                "`perfmodel calibrate-gpu --gpus N` on a multi-GPU box"]
    groups = sorted({n for n in (par.tp, par.stage_gpus if par.dp > 1 else 1) if n > 1})
    out = [flag] if flag else []
    scaled = [n for n in groups if n not in link.gpu_counts]
    if scaled:
        out.append(f"collectives over {', '.join(map(str, scaled))} GPUs scaled from the "
                   f"measured {', '.join(map(str, link.gpu_counts))} (ring factors)")
    if par.tp > 1 and custom_allreduce_for(engine) is not None:
        custom, _, custom_flag = tables_for(gpu, CUSTOM)
        if custom is None:
            out.append(f"no custom all-reduce table measured: {engine}'s own all-reduce kernels "
                       "costed as NCCL's (run `perfmodel calibrate-gpu --gpus N`)")
        elif custom_flag:
            out.append(custom_flag)
    return out
