"""One decoder layer of the torch-cudagraph engine: attention, then a dense MLP or an MoE.

Every region runs inside `record_function(NAME)` with the names of measurement.py, so that the
profiler can charge each kernel to its op. x is the residual stream, shape (B, T, D); the KV cache
of a layer is a pair of (B, S, K, H) tensors, written at positions [start, start + T).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.profiler import record_function

from perfmodel.errors import WorkloadError
from perfmodel.model.spec import Attention, LayerSpec, Mlp
from perfmodel.torchblocks.linear import GroupedExperts, make_linear, randn

EPS = 1e-6


class Step:
    """What one forward needs besides weights: phase, positions and the layer's rope tables.

    start is the first position written (0 for prefill, C - 1 for decode); length is T; masks maps
    a window to the banded causal mask of a prefill longer than that window.
    """

    def __init__(self, prefill: bool, start: int, length: int, cos: torch.Tensor,
                 sin: torch.Tensor, masks: dict[int, torch.Tensor]):
        self.prefill, self.start, self.length = prefill, start, length
        self.cos, self.sin, self.masks = cos, sin, masks

    @property
    def end(self) -> int:
        return self.start + self.length


def reduced(block, y: torch.Tensor, name: str) -> torch.Tensor:
    """y summed over the tensor-parallel ranks where the block is sharded (block.reduce is set by
    validate/distributed.py), in its own region `name`; y unchanged on one GPU."""
    if block.reduce is None:
        return y
    with record_function(name):
        return block.reduce(y)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Unfused rotate-half RoPE over the last dim of (B, T, heads, H); cos/sin are (T, 1, H)."""
    return x * cos + rotate_half(x) * sin


def banded_causal_mask(length: int, window: int, device: str) -> torch.Tensor:
    """True where query i may see key j: j ≤ i and i - j < window."""
    i = torch.arange(length, device=device)[:, None]
    j = torch.arange(length, device=device)[None, :]
    return (j <= i) & (i - j < window)


class AttentionBlock:
    """GQA attention: fused QKV, optional per-head Q/K norm, RoPE, KV write, SDPA, O projection.

    Attention sinks (gpt-oss) are ignored; MLA is not implemented.
    """

    reduce = None  # the tensor-parallel all-reduce after o_proj (validate/distributed.py)

    def __init__(self, spec: Attention, hidden: int, weight_dtype: str, dtype: torch.dtype,
                 device: str):
        if spec.kind != "gqa":
            raise WorkloadError(f"the torch-cudagraph engine does not implement {spec.kind} "
                                "attention (DeepSeek's MLA); pick a GQA model")
        self.spec = spec
        heads, kv, h = spec.num_heads, spec.num_kv_heads, spec.head_dim
        self.split = (heads * h, kv * h, kv * h)
        self.norm = torch.ones(hidden, dtype=dtype, device=device)
        self.qkv = make_linear(weight_dtype, sum(self.split), hidden, bias=spec.qkv_bias,
                               dtype=dtype, device=device)
        self.o = make_linear(weight_dtype, hidden, heads * h, bias=spec.o_bias, dtype=dtype,
                             device=device)
        self.q_norm = torch.ones(h, dtype=dtype, device=device) if spec.qk_norm else None
        self.k_norm = torch.ones(h, dtype=dtype, device=device) if spec.qk_norm else None

    def __call__(self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor],
                 step: Step) -> torch.Tensor:
        spec, (b, t, d) = self.spec, x.shape
        h = spec.head_dim
        with record_function("attn_norm"):
            y = F.rms_norm(x, (d,), self.norm, EPS)
        with record_function("qkv"):
            q, k, v = self.qkv(y).split(self.split, dim=-1)
        q, k, v = q.view(b, t, -1, h), k.view(b, t, -1, h), v.view(b, t, -1, h)
        if self.q_norm is not None:
            with record_function("qk_norm"):
                q = F.rms_norm(q, (h,), self.q_norm, EPS)
                k = F.rms_norm(k, (h,), self.k_norm, EPS)
        with record_function("rope"):
            q = apply_rope(q, step.cos, step.sin)
            k = apply_rope(k, step.cos, step.sin)
        cache_k, cache_v = cache
        with record_function("kv_write"):
            cache_k[:, step.start:step.end].copy_(k)
            cache_v[:, step.start:step.end].copy_(v)
        with record_function("attention"):
            out = self._attend(q, k, v, cache_k, cache_v, step)
            out = out.transpose(1, 2).reshape(b, t, -1)
        with record_function("o_proj"):
            out = self.o(out)
        out = reduced(self, out, "attn_all_reduce")
        with record_function("attn_residual"):
            return x + out

    def _attend(self, q, k, v, cache_k, cache_v, step: Step) -> torch.Tensor:
        window = self.spec.window
        q = q.transpose(1, 2)
        if step.prefill:
            k, v = k.transpose(1, 2), v.transpose(1, 2)
            if window is not None and step.length > window:
                return F.scaled_dot_product_attention(q, k, v, attn_mask=step.masks[window],
                                                      enable_gqa=True)
            return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        lo = 0 if window is None else max(0, step.end - window)
        k = cache_k[:, lo:step.end].transpose(1, 2)
        v = cache_v[:, lo:step.end].transpose(1, 2)
        return F.scaled_dot_product_attention(q, k, v, enable_gqa=True)


def silu_mul(y: torch.Tensor) -> torch.Tensor:
    """SiLU(gate)·up over the two halves of a fused gate/up output (two kernels)."""
    gate, up = y.chunk(2, dim=-1)
    return F.silu(gate) * up


def gated_mlp(y: torch.Tensor, gate_up, down, prefix: str = "") -> torch.Tensor:
    """Fused gate/up, SiLU·up, down, in the regions <prefix>gate_up, <prefix>act, <prefix>down."""
    with record_function(prefix + "gate_up"):
        y = gate_up(y)
    with record_function(prefix + "act"):
        y = silu_mul(y)
    with record_function(prefix + "down"):
        return down(y)


class DenseMlp:
    """Gated MLP: fused gate/up, SiLU(gate)·up, down."""

    reduce = None  # the tensor-parallel all-reduce after down (validate/distributed.py)

    def __init__(self, spec: Mlp, hidden: int, weight_dtype: str, dtype: torch.dtype,
                 device: str):
        self.norm = torch.ones(hidden, dtype=dtype, device=device)
        self.gate_up = make_linear(weight_dtype, 2 * spec.intermediate_size, hidden, bias=False,
                                   dtype=dtype, device=device)
        self.down = make_linear(weight_dtype, hidden, spec.intermediate_size, bias=False,
                                dtype=dtype, device=device)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with record_function("mlp_norm"):
            y = F.rms_norm(x, (x.shape[-1],), self.norm, EPS)
        y = reduced(self, gated_mlp(y, self.gate_up, self.down), "mlp_all_reduce")
        with record_function("mlp_residual"):
            return x + y


def route(logits: torch.Tensor, top_k: int, family: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights, expert ids), each (M, k): softmax → top-k → renormalise, as the family does.

    qwen2_moe keeps the top-k probabilities unnormalised (norm_topk_prob false); gpt_oss takes
    the top-k logits and softmaxes over them.
    """
    if family == "gpt_oss":
        values, ids = torch.topk(logits, top_k, dim=-1)
        return torch.softmax(values.float(), dim=-1), ids
    probs = torch.softmax(logits.float(), dim=-1)
    weights, ids = torch.topk(probs, top_k, dim=-1)
    if family != "qwen2_moe":
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights, ids


class MoeMlp:
    """Router, routed experts through a grouped GEMM on expert-sorted tokens, shared experts.

    router is one bf16 linear with E columns (E + 1 when qwen2_moe's shared experts have a
    sigmoid gate) plus softmax/top-k. experts_gate_up includes sorting the M·k (token, expert)
    pairs by expert and gathering their rows. experts_combine scatters the rows back to token
    order, weights them, sums the k experts of each token and adds the shared experts' output;
    shared_down includes the shared gate's sigmoid and multiply. Expert biases (gpt-oss) and
    its clamped SwiGLU are not modelled: SiLU(gate)·up.
    """

    reduce = None  # the tensor-parallel all-reduce after the combine (validate/distributed.py)

    def __init__(self, spec: Mlp, hidden: int, weight_dtype: str, family: str,
                 dtype: torch.dtype, device: str):
        self.spec, self.family = spec, family
        e, f, fs = spec.num_experts, spec.intermediate_size, spec.shared_intermediate_size
        gated = bool(fs and spec.shared_gate)
        self.norm = torch.ones(hidden, dtype=dtype, device=device)
        self.router = randn((e + int(gated), hidden), hidden, dtype, device)
        self.router_bias = randn((e,), e, dtype, device) if spec.router_bias else None
        self.experts_gate_up = GroupedExperts(weight_dtype, e, 2 * f, hidden, dtype=dtype,
                                              device=device)
        self.experts_down = GroupedExperts(weight_dtype, e, hidden, f, dtype=dtype, device=device)
        self.expert_ids = torch.arange(e, device=device)
        self.shared_gate_up = self.shared_down = None
        self.shared_gated = gated
        if fs:
            self.shared_gate_up = make_linear(weight_dtype, 2 * fs, hidden, bias=False,
                                              dtype=dtype, device=device)
            self.shared_down = make_linear(weight_dtype, hidden, fs, bias=False, dtype=dtype,
                                           device=device)

    @property
    def graphable(self) -> bool:
        return not (self.experts_gate_up.looped or self.experts_down.looped)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        k, e = self.spec.top_k, self.spec.num_experts
        with record_function("mlp_norm"):
            y = F.rms_norm(x, (x.shape[-1],), self.norm, EPS).reshape(-1, x.shape[-1])
        with record_function("router"):
            logits = F.linear(y, self.router)
            logits, shared_gate = logits[:, :e], logits[:, e:]
            if self.router_bias is not None:
                logits = logits + self.router_bias
            weights, ids = route(logits, k, self.family)
        with record_function("experts_gate_up"):
            flat = ids.reshape(-1)
            order = torch.argsort(flat, stable=True)
            offs = torch.searchsorted(flat[order], self.expert_ids, right=True, out_int32=True)
            rows = self.experts_gate_up(y.index_select(0, order // k), offs)
        with record_function("experts_act"):
            rows = silu_mul(rows)
        with record_function("experts_down"):
            rows = self.experts_down(rows, offs)
        shared = self._shared(y, shared_gate) if self.shared_gate_up is not None else None
        with record_function("experts_combine"):
            routed = torch.empty_like(rows).index_copy_(0, order, rows)
            routed = routed.view(-1, k, y.shape[-1]) * weights.unsqueeze(-1).to(rows.dtype)
            routed = routed.sum(dim=1)
            if shared is not None:
                routed = routed + shared
        routed = reduced(self, routed, "moe_all_reduce")
        with record_function("mlp_residual"):
            return x + routed.view(x.shape)

    def _shared(self, y: torch.Tensor, shared_gate: torch.Tensor) -> torch.Tensor:
        s = gated_mlp(y, self.shared_gate_up, self.shared_down, prefix="shared_")
        if self.shared_gated:
            with record_function("shared_down"):
                s = s * torch.sigmoid(shared_gate)
        return s


def build_layer(layer: LayerSpec, hidden: int, weight_dtype: str, family: str,
                dtype: torch.dtype, device: str):
    """(attention, mlp) callables of one layer with fresh random weights."""
    attention = AttentionBlock(layer.attention, hidden, weight_dtype, dtype, device)
    if layer.mlp.kind == "moe":
        mlp = MoeMlp(layer.mlp, hidden, weight_dtype, family, dtype, device)
    else:
        mlp = DenseMlp(layer.mlp, hidden, weight_dtype, dtype, device)
    return attention, mlp


def rope_tables(head_dim: int, positions: int, dtype: torch.dtype, device: str,
                theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of shape (positions, 1, H), rotate-half layout."""
    inv = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(positions, dtype=torch.float32), inv)
    angles = torch.cat((angles, angles), dim=-1)[:, None, :]
    return angles.cos().to(dtype).to(device), angles.sin().to(dtype).to(device)
