"""Architecture records: what a decoder is made of, and how many parameters that is.

Nothing here knows about GPUs, precisions or workloads. Letters follow the scaling book:
D model dim, F MLP dim, N query heads, K KV heads, H head dim, L layers, V vocab, E experts,
k experts per token.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Attention:
    """One layer's attention block.

    kind "gqa" covers MHA (K = N), GQA and MQA (K = 1): Q has N·H columns, K and V K·H each.
    kind "mla" is DeepSeek's multi-head latent attention: Q through an optional low-rank
    q_lora_rank bottleneck, K and V through a shared kv_lora_rank latent plus a qk_rope_head_dim
    rotary key; the KV cache holds the latent and the rotary key only.
    window is the sliding-window length in tokens, None for full attention.
    """

    kind: str
    num_heads: int
    num_kv_heads: int
    head_dim: int
    v_head_dim: int
    window: int | None = None
    qkv_bias: bool = False
    o_bias: bool = False
    sinks: bool = False
    qk_norm: bool = False
    q_lora_rank: int | None = None
    kv_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0

    @property
    def q_dim(self) -> int:
        """Columns of Q: N·H (for MLA H is the nope + rope head dim)."""
        return self.num_heads * self.head_dim

    @property
    def kv_cache_elems_per_token(self) -> int:
        """Elements one token adds to this layer's KV cache: 2·K·H, or MLA's latent + rotary key."""
        if self.kind == "mla":
            return self.kv_lora_rank + self.qk_rope_head_dim
        return self.num_kv_heads * (self.head_dim + self.v_head_dim)

    def params_for(self, hidden: int) -> int:
        """Weights, biases, sinks and Q/K (or MLA latent) norms of this block at width D = hidden."""
        heads = self.num_heads
        out = heads * self.v_head_dim * hidden + (hidden if self.o_bias else 0)
        if self.kind == "mla":
            q_in = self.q_lora_rank or hidden
            q = (hidden * self.q_lora_rank + self.q_lora_rank) if self.q_lora_rank else 0
            q += q_in * heads * self.head_dim
            kv = hidden * (self.kv_lora_rank + self.qk_rope_head_dim) + self.kv_lora_rank
            kv += self.kv_lora_rank * heads * (self.qk_nope_head_dim + self.v_head_dim)
            return q + kv + out
        cols = heads * self.head_dim + self.num_kv_heads * (self.head_dim + self.v_head_dim)
        extra = (cols if self.qkv_bias else 0) + (heads if self.sinks else 0)
        extra += 2 * self.head_dim if self.qk_norm else 0
        return hidden * cols + extra + out


@dataclass(frozen=True)
class Mlp:
    """One layer's feed-forward block: a gated MLP (three D×F matrices) or a mixture of experts.

    For kind "moe", intermediate_size is each routed expert's F, num_experts is E, top_k is k,
    and shared_intermediate_size is the total width of the always-on shared experts (0 if none).
    """

    kind: str
    intermediate_size: int
    num_experts: int = 0
    top_k: int = 0
    shared_intermediate_size: int = 0
    shared_gate: bool = False
    router_bias: bool = False
    expert_bias: bool = False

    def params_for(self, hidden: int) -> tuple[int, int, int, int]:
        """(dense, routed experts, shared experts, router) parameters in a model of width D."""
        ffn = 3 * hidden * self.intermediate_size
        if self.kind == "dense":
            return ffn, 0, 0, 0
        bias = (2 * self.intermediate_size + hidden) if self.expert_bias else 0
        experts = self.num_experts * (ffn + bias)
        shared = 3 * hidden * self.shared_intermediate_size + (hidden if self.shared_gate else 0)
        router = hidden * self.num_experts + (self.num_experts if self.router_bias else 0)
        return 0, experts, shared, router


@dataclass(frozen=True)
class LayerSpec:
    """One decoder layer: attention, feed-forward, and its two norms."""

    attention: Attention
    mlp: Mlp


@dataclass(frozen=True)
class ParamCount:
    """Parameters by role, so that each role can take its own precision."""

    embedding: int
    lm_head: int
    attention: int
    dense_mlp: int
    experts: int
    shared_experts: int
    router: int
    norms: int
    active_experts: int

    @property
    def total(self) -> int:
        """All parameters, the tied embedding counted once."""
        return (self.embedding + self.lm_head + self.attention + self.dense_mlp + self.experts
                + self.shared_experts + self.router + self.norms)

    @property
    def active(self) -> int:
        """Parameters one token uses: all but the routed experts it is not sent to.

        Counts the embedding table and the LM head, as Mistral, Qwen and DeepSeek publish it.
        """
        return self.total - self.experts + self.active_experts


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer, as read from its config.json.

    layers holds each distinct kind of layer once with how many layers are of that kind; the
    order of layers does not change the cost of a forward pass.
    """

    model_type: str
    hidden_size: int
    vocab_size: int
    tie_word_embeddings: bool
    layers: tuple[tuple[LayerSpec, int], ...]
    max_position_embeddings: int | None = None

    @property
    def num_layers(self) -> int:
        return sum(count for _, count in self.layers)

    @property
    def is_moe(self) -> bool:
        return any(layer.mlp.kind == "moe" for layer, _ in self.layers)

    @property
    def params(self) -> ParamCount:
        """Parameter counts by role (biases and norms included)."""
        d, v = self.hidden_size, self.vocab_size
        attn = dense = experts = shared = router = active = 0
        norms = d  # final norm
        for layer, count in self.layers:
            attn += count * layer.attention.params_for(d)
            dn, ex, sh, ro = layer.mlp.params_for(d)
            dense, experts, shared, router = dense + count * dn, experts + count * ex, \
                shared + count * sh, router + count * ro
            if layer.mlp.kind == "moe":
                active += count * ex * layer.mlp.top_k // layer.mlp.num_experts
            norms += count * 2 * d
        return ParamCount(
            embedding=v * d, lm_head=0 if self.tie_word_embeddings else v * d,
            attention=attn, dense_mlp=dense, experts=experts, shared_experts=shared,
            router=router, norms=norms, active_experts=active)

    def kv_cache_elems(self, context: int) -> int:
        """KV-cache elements one sequence of `context` tokens holds across all layers.

        A sliding-window layer keeps only its last `window` tokens.
        """
        total = 0
        for layer, count in self.layers:
            kept = context if layer.attention.window is None else min(context, layer.attention.window)
            total += count * kept * layer.attention.kv_cache_elems_per_token
        return total
