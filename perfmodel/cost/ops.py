"""The forward pass as a list of ops, each with its FLOPs and the fewest bytes it must move.

One small function per op kind; each docstring gives the formula in the scaling-book letters
(B batch, T query tokens per sequence, S key/value length, D model dim, F MLP dim, N query heads,
K KV heads, H head dim, V vocab, E experts, k experts per token) and says what it ignores.
Bytes assume each input is read once and each output written once; attention keeps its scores
on chip (FlashAttention). FLOPs are counted, never MACs: a matmul is 2·M·N·K.
"""

from __future__ import annotations

from dataclasses import dataclass

from perfmodel.model.spec import Attention, LayerSpec, Mlp, ModelSpec
from perfmodel.cost.precision import Precision

MATMUL, GROUPED, ATTENTION, ELEMENTWISE = "matmul", "grouped_matmul", "attention", "elementwise"
# Layer kinds whose RMSNorms sandwich each block (input, post-attention, pre- and post-feedforward):
# transformers' Gemma2DecoderLayer and Gemma3DecoderLayer (modeling_gemma2.py, modeling_gemma3.py).
SANDWICH_NORMS = ("gemma2", "gemma3", "gemma3_text")


@dataclass(frozen=True)
class Op:
    """One kind of kernel work in one forward pass, repeated `count` times (once per layer).

    flops and bytes are per occurrence. dtype names the peak it runs at. shape carries what the
    estimate interpolates on: matmul (m, n, k); grouped matmul (m per expert, n, k, experts);
    attention (b, length, N, K, H), length T (prefill) or S (decode); elementwise ().
    row_bytes (matmuls) is what one more row of M moves: K·a in + N·b out, so bytes at another
    M are bytes + (M' − M)·row_bytes. attention is the layer's spec (kind, window, sinks), so the
    estimate can pick the attention table nearest in shape. group labels the kind of layer the
    op belongs to where a model has several ("sliding 1024", "global", "dense", "moe").
    """

    phase: str
    name: str
    kind: str
    count: int
    flops: float
    bytes: float
    dtype: str
    shape: tuple[float, ...] = ()
    weight_dtype: str = ""  # for matmuls: how the weights are stored (int4 computes as bf16)
    group: str = ""
    row_bytes: float = 0.0
    attention: Attention | None = None

    @property
    def fusable(self) -> bool:
        """Elementwise work a fused engine folds into GEMM epilogues and attention: outside the
        limit's sum (it keeps its own roofline and estimate)."""
        return self.kind == ELEMENTWISE

    def with_work(self, flops: float, nbytes: float) -> Op:
        """This op with other FLOPs and bytes per occurrence (dataclasses.replace without its
        field-by-field checks, which cost a third of a prediction's time)."""
        new = object.__new__(Op)
        new.__dict__.update(self.__dict__, flops=flops, bytes=nbytes)
        return new

    @property
    def intensity(self) -> float:
        """Arithmetic intensity, FLOP per byte."""
        return self.flops / self.bytes if self.bytes else float("inf")


@dataclass(frozen=True)
class _Ctx:
    """What every op of one forward shares: phase, precision, tokens and width."""

    phase: str
    precision: Precision
    batch: int
    tokens: int  # T per sequence (1 in decode)
    hidden: int
    count: int = 1
    group: str = ""
    sandwich: bool = False  # RMSNorms after attention and after the MLP too (Gemma 2/3)

    @property
    def rows(self) -> int:
        """M = B·T, the rows every per-token op processes."""
        return self.batch * self.tokens


def linear(ctx: _Ctx, name: str, m: int, k: int, n: int, *, quantized: bool) -> Op:
    """y = x·Wᵀ, x (m, k), W (n, k): 2·m·n·k FLOPs; bytes n·k·w + m·k·a + m·n·b.

    w is the weight's bytes (scales included), a the input's (1 for W8A8, else the base dtype),
    b the base dtype of the output. Ignores biases (n elements) and scale tensors of activations.
    """
    prec = ctx.precision
    w, a, dtype, wdtype = \
        (prec.weight_bytes, prec.act_bytes, prec.compute_dtype, prec.weight_dtype) if quantized \
        else (prec.base_bytes, prec.base_bytes, prec.base_dtype, prec.base_dtype)
    row = k * a + n * prec.base_bytes
    return Op(ctx.phase, name, MATMUL, ctx.count, 2.0 * m * n * k, n * k * w + m * row, dtype,
              (m, n, k), wdtype, ctx.group, row)


def elementwise(ctx: _Ctx, name: str, read: float, written: float, flops_per_elem: float = 1.0,
                extra_bytes: float = 0.0, shape: tuple[float, ...] = ()) -> Op:
    """A memory-bound pass: `read` elements in, `written` out, all in the base dtype.

    FLOPs are flops_per_elem·written; they run on vector units, not tensor cores, but at these
    intensities (about 1 FLOP/byte) the bytes decide the time either way.
    """
    b = ctx.precision.base_bytes
    return Op(ctx.phase, name, ELEMENTWISE, ctx.count, flops_per_elem * written,
              (read + written) * b + extra_bytes, ctx.precision.base_dtype, shape, "", ctx.group)


def rmsnorm_bytes(rows: float, width: float, base_bytes: float) -> float:
    """An RMSNorm over (rows, width): x read, y written, the weight read once: (2·rows + 1)·width·b.
    The one definition: the ops below and the estimate's RMSNorm table both use it."""
    return (2 * rows + 1) * width * base_bytes


def norm(ctx: _Ctx, name: str, rows: int, width: int) -> Op:
    """RMSNorm of `rows` rows of `width`: 4 FLOPs per element (square, sum, scale, weight)."""
    extra = rmsnorm_bytes(rows, width, ctx.precision.base_bytes) \
        - 2 * rows * width * ctx.precision.base_bytes
    return elementwise(ctx, name, rows * width, rows * width, 4, extra, shape=(rows, width))


def causal_pairs(tokens: int, window: int | None) -> float:
    """(query, key) pairs a causal pass over T tokens scores: Σₜ min(t, W) = T(T+1)/2 unwindowed."""
    if window is None or window >= tokens:
        return tokens * (tokens + 1) / 2
    return window * (window + 1) / 2 + (tokens - window) * window


def attention_prefill(ctx: _Ctx, attn: Attention) -> Op:
    """Causal self-attention over the B·T new tokens, FlashAttention style.

    FLOPs 2·B·N·P·(Hqk + Hv), P = Σₜ min(t, W) pairs per sequence (QKᵀ and PV). Bytes: Q, K, V
    read once and O written once, base dtype; scores stay on chip. MLA prefill runs as plain
    multi-head attention over the up-projected K and V (N KV heads, Hqk = nope + rope).
    Ignores softmax FLOPs and the masked half of diagonal tiles.
    """
    heads, hv = attn.num_heads, attn.v_head_dim
    kv_heads = heads if attn.kind == "mla" else attn.num_kv_heads
    b, t = ctx.batch, ctx.tokens
    flops = 2.0 * b * heads * causal_pairs(t, attn.window) * (attn.head_dim + hv)
    elems = b * t * (heads * (attn.head_dim + hv) + kv_heads * (attn.head_dim + hv))
    return Op(ctx.phase, "attention", ATTENTION, ctx.count, flops,
              elems * ctx.precision.base_bytes, ctx.precision.base_dtype,
              (b, t, heads, kv_heads, attn.head_dim), "", ctx.group, attention=attn)


def attention_decode(ctx: _Ctx, attn: Attention, context: int) -> Op:
    """One query per sequence against S = min(C, W) cached tokens.

    GQA: FLOPs 2·B·N·S·(H + Hv); bytes B·S·K·(H + Hv)·kv (the cache, read once) plus Q in and
    O out. MLA runs absorbed (as vLLM and SGLang decode it): every head scores the shared latent,
    FLOPs 2·B·N·S·(2·Rkv + Rrope), bytes B·S·(Rkv + Rrope)·kv. Ignores softmax FLOPs.
    """
    b, s = ctx.batch, context if attn.window is None else min(context, attn.window)
    prec = ctx.precision
    if attn.kind == "mla":
        qk, v, kv_heads = attn.kv_lora_rank + attn.qk_rope_head_dim, attn.kv_lora_rank, 1
    else:
        qk, v, kv_heads = attn.head_dim, attn.v_head_dim, attn.num_kv_heads
    flops = 2.0 * b * attn.num_heads * s * (qk + v)
    cache = b * s * attn.kv_cache_elems_per_token * prec.kv_bytes
    io = b * attn.num_heads * (qk + v) * prec.base_bytes
    return Op(ctx.phase, "attention", ATTENTION, ctx.count, flops, cache + io, prec.base_dtype,
              (b, s, attn.num_heads, kv_heads, qk), "", ctx.group, attention=attn)


def attention_block(ctx: _Ctx, attn: Attention, context: int) -> list[Op]:
    """Norm, Q/K/V projections, RoPE, KV-cache write, attention, output projection, residual."""
    m, d, quant = ctx.rows, ctx.hidden, ctx.precision.scope == "linear"
    ops = [norm(ctx, "attn_norm", m, d)]
    if attn.kind == "mla":
        q_in = attn.q_lora_rank or d
        if attn.q_lora_rank:
            ops.append(linear(ctx, "q_down", m, d, attn.q_lora_rank, quantized=quant))
        ops += [linear(ctx, "q_up", m, q_in, attn.q_dim, quantized=quant),
                linear(ctx, "kv_down", m, d, attn.kv_lora_rank + attn.qk_rope_head_dim,
                       quantized=quant),
                linear(ctx, "kv_up", m, attn.kv_lora_rank,
                       attn.num_heads * (attn.qk_nope_head_dim + attn.v_head_dim),
                       quantized=quant)]
        rope = m * (attn.num_heads + 1) * attn.qk_rope_head_dim
    else:
        kv_cols = attn.num_kv_heads * (attn.head_dim + attn.v_head_dim)
        ops.append(linear(ctx, "qkv", m, d, attn.q_dim + kv_cols, quantized=quant))
        q_elems, k_elems = m * attn.q_dim, m * attn.num_kv_heads * attn.head_dim
        if attn.qk_norm:
            ops.append(elementwise(ctx, "qk_norm", q_elems + k_elems, q_elems + k_elems, 4,
                                   shape=(m * attn.num_heads, m * attn.num_kv_heads,
                                          attn.head_dim)))
        rope = q_elems + k_elems
    new_kv = m * attn.kv_cache_elems_per_token
    ops += [elementwise(ctx, "rope", rope, rope, 3, shape=(rope,) if attn.kind == "mla"
                        else (q_elems, k_elems)),
            elementwise(ctx, "kv_write", new_kv, 0, 0, new_kv * ctx.precision.kv_bytes),
            attention_prefill(ctx, attn) if ctx.phase == "prefill"
            else attention_decode(ctx, attn, context),
            linear(ctx, "o_proj", m, attn.num_heads * attn.v_head_dim, d, quantized=quant)]
    if ctx.sandwich:
        ops.append(norm(ctx, "post_attn_norm", m, d))
    ops.append(elementwise(ctx, "attn_residual", 2 * m * d, m * d))
    return ops


def touched_experts(experts: int, top_k: float, tokens: int) -> float:
    """Distinct experts B·T tokens reach under uniform top-k routing: E·(1 − (1 − k/E)^(B·T)).
    On an EP shard k is the pairs each local token brings (k·dp/ep, cost/parallel.py), which can
    reach E (Mixtral's 8 experts over EP8: 2 pairs for 1 local expert): then every local
    expert is touched."""
    return experts * (1.0 - max(0.0, 1.0 - top_k / experts) ** tokens)


def grouped(ctx: _Ctx, name: str, pairs: int, k: int, n: int, touched: float) -> Op:
    """The routed experts' matmul: `pairs` = M·k (token, expert) rows, each against its expert.

    FLOPs 2·pairs·n·k; bytes touched·n·k·w (only experts that received a token are read) plus
    pairs·k·a in and pairs·n·b out.
    """
    prec = ctx.precision
    row = k * prec.act_bytes + n * prec.base_bytes
    return Op(ctx.phase, name, GROUPED, ctx.count, 2.0 * pairs * n * k,
              touched * n * k * prec.weight_bytes + pairs * row, prec.compute_dtype,
              (pairs / touched, n, k, touched), prec.weight_dtype, ctx.group, row)


def mlp_block(ctx: _Ctx, mlp: Mlp) -> list[Op]:
    """Norm, the gated MLP or the MoE block (router, routed and shared experts), residual."""
    m, d = ctx.rows, ctx.hidden
    quant = ctx.precision.scope == "linear"
    ops = [norm(ctx, "mlp_norm", m, d)]
    if mlp.kind == "dense":
        f = mlp.intermediate_size
        ops += [linear(ctx, "gate_up", m, d, 2 * f, quantized=quant),
                elementwise(ctx, "act", 2 * m * f, m * f, 5),
                linear(ctx, "down", m, f, d, quantized=quant)]
    else:
        f, pairs = mlp.intermediate_size, m * mlp.top_k
        touched = touched_experts(mlp.num_experts, mlp.top_k, m)
        ops += [linear(ctx, "router", m, d, mlp.num_experts + int(mlp.shared_gate),
                       quantized=False),
                grouped(ctx, "experts_gate_up", pairs, d, 2 * f, touched),
                elementwise(ctx, "experts_act", 2 * pairs * f, pairs * f, 5),
                grouped(ctx, "experts_down", pairs, f, d, touched)]
        if mlp.shared_intermediate_size:
            fs = mlp.shared_intermediate_size
            ops += [linear(ctx, "shared_gate_up", m, d, 2 * fs, quantized=quant),
                    elementwise(ctx, "shared_act", 2 * m * fs, m * fs, 5),
                    linear(ctx, "shared_down", m, fs, d, quantized=quant)]
        ops.append(elementwise(ctx, "experts_combine", pairs * d, m * d, 2, shape=(pairs, d)))
    if ctx.sandwich:
        ops.append(norm(ctx, "post_mlp_norm", m, d))
    ops.append(elementwise(ctx, "mlp_residual", 2 * m * d, m * d))
    return ops


def layer_ops(ctx: _Ctx, layer: LayerSpec, context: int) -> list[Op]:
    return attention_block(ctx, layer.attention, context) + mlp_block(ctx, layer.mlp)


def forward_ops(spec: ModelSpec, precision: Precision, phase: str, batch: int, tokens: int,
                context: int) -> list[Op]:
    """Every op of one forward: embedding, each kind of layer (count = its layers), LM head.

    prefill: B sequences of T = tokens new tokens, empty caches; logits for the last token of
    each sequence only. decode: T = 1, each sequence attending to `context` tokens.
    """
    top = _Ctx(phase, precision, batch, tokens, spec.hidden_size)
    m, d, v = top.rows, spec.hidden_size, spec.vocab_size
    ops = [elementwise(top, "embed", m * d, m * d, 0)]
    labels = group_labels(spec)
    for layer, count in spec.layers:
        ctx = _Ctx(phase, precision, batch, tokens, d, count, labels[layer],
                   spec.model_type in SANDWICH_NORMS)
        ops += layer_ops(ctx, layer, context)
    # only the last token of each sequence needs the final norm and logits
    ops += [norm(top, "final_norm", batch, d),
            linear(top, "lm_head", batch, d, v, quantized=False)]
    return ops


def group_labels(spec: ModelSpec) -> dict[LayerSpec, str]:
    """A label per kind of layer, naming what sets it apart ("" when all layers are alike):
    its attention ("sliding W" or "global") where windows differ, its MLP ("dense", "moe")
    where those differ."""
    layers = [layer for layer, _ in spec.layers]
    windows = {layer.attention.window for layer in layers}
    mlps = {layer.mlp.kind for layer in layers}
    labels = {}
    for layer in layers:
        parts = []
        if len(windows) > 1:
            w = layer.attention.window
            parts.append(f"sliding {w}" if w else "global")
        if len(mlps) > 1:
            parts.append(layer.mlp.kind)
        labels[layer] = ", ".join(parts)
    return labels
