"""From a Hugging Face config.json to a ModelSpec, by the config's own field names.

Each family is a small mapping: which field gives the heads, the window, the experts. Adding an
architecture means adding a reader here and naming it in READERS.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any, Callable

from perfmodel.errors import ConfigError
from perfmodel.model.fields import (MAX_VOCAB, Config, boolean, first_dense, found,
                                    group_routing, integer, layer_flags, served_dtype,
                                    show)
from perfmodel.model.spec import Attention, LayerSpec, Mlp, ModelSpec


def _layers(cfg: Config) -> int:
    """L, num_hidden_layers; 100,000 layers is no model (and would not fit in memory here)."""
    return integer(cfg, "num_hidden_layers", maximum=100_000)


def _window(cfg: Config) -> int | None:
    """sliding_window in tokens, or None; checked even where the architecture then ignores it."""
    return integer(cfg, "sliding_window", default=None)


def _gqa(cfg: Config, window: int | None, **extra: Any) -> Attention:
    """GQA attention: N heads, K KV heads dividing N, head dim H (head_dim, else D / N)."""
    heads = integer(cfg, "num_attention_heads")
    hidden = integer(cfg, "hidden_size")
    kv_heads = integer(cfg, "num_key_value_heads", default=heads)
    if kv_heads > heads:
        raise ConfigError(f"'num_key_value_heads' {kv_heads} exceeds 'num_attention_heads' "
                          f"{heads}; fix one of them in the config")
    if heads % kv_heads:
        raise ConfigError(f"'num_attention_heads' {heads} is not a multiple of "
                          f"'num_key_value_heads' {kv_heads}; fix one of them in the config")
    head_dim = integer(cfg, "head_dim", default=None)
    if head_dim is None:
        if hidden % heads:
            raise ConfigError(f"'hidden_size' {hidden} is not a multiple of 'num_attention_heads' "
                              f"{heads} and there is no 'head_dim'; add head_dim to the config")
        head_dim = hidden // heads
    bias = boolean(cfg, "attention_bias", False)
    fields = {"qkv_bias": bias, "o_bias": bias, **extra}
    return Attention(kind="gqa", num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim,
                     v_head_dim=head_dim, window=window, **fields)


def _moe(cfg: Config, f_name: str, experts_names: tuple[str, ...],
         top_k_names: tuple[str, ...] = ("num_experts_per_tok",), **extra: Any) -> Mlp:
    """A routed-expert MLP: E experts of width F, k of them per token, 1 ≤ k ≤ E."""
    experts = integer(cfg, *experts_names)
    top_k = integer(cfg, *top_k_names)
    if top_k > experts:
        raise ConfigError(f"'{found(cfg, top_k_names)[0]}' is {top_k}, more than the {experts} "
                          f"experts of '{found(cfg, experts_names)[0]}'; fix it in the config")
    return Mlp(kind="moe", intermediate_size=integer(cfg, f_name), num_experts=experts,
               top_k=top_k, **extra)


def _window_flags(cfg: Config, layers: int, default_sliding: Callable[[int], bool]) -> list[bool]:
    """Which layers use the sliding window: `layer_types` when the config has it, else the rule."""
    types = cfg.get("layer_types")
    if types is not None:
        return layer_flags(types, layers)
    return [default_sliding(i) for i in range(layers)]


def _assemble(cfg: Config, per_layer: list[LayerSpec]) -> ModelSpec:
    counts = Counter(per_layer)
    ordered = tuple((layer, counts[layer]) for layer in dict.fromkeys(per_layer))
    return ModelSpec(
        model_type=cfg["model_type"], hidden_size=integer(cfg, "hidden_size"),
        vocab_size=integer(cfg, "vocab_size", maximum=MAX_VOCAB),
        tie_word_embeddings=boolean(cfg, "tie_word_embeddings", False), layers=ordered,
        max_position_embeddings=integer(cfg, "max_position_embeddings", default=None))


def _dense_mlp(cfg: Config) -> Mlp:
    return Mlp(kind="dense", intermediate_size=integer(cfg, "intermediate_size"))


def read_dense(cfg: Config, *, sliding: Callable[[int], bool] | None = None,
               qkv_bias: bool = False, qk_norm: bool = False) -> ModelSpec:
    """llama, mistral, qwen2, qwen3, phi3, gemma*: GQA attention and a gated MLP in every layer.

    The sliding window applies to the layers `sliding` selects (all layers when None and the
    config sets `sliding_window`); `layer_types` in the config overrides both.
    """
    layers = _layers(cfg)
    window = _window(cfg)
    rule = sliding or (lambda _: True)
    flags = _window_flags(cfg, layers, rule) if window else [False] * layers
    mlp = _dense_mlp(cfg)
    per_layer = []
    for is_sliding in flags:
        attn = _gqa(cfg, window if is_sliding else None, qk_norm=qk_norm,
                    **({"qkv_bias": True} if qkv_bias else {}))
        per_layer.append(LayerSpec(attn, mlp))
    return _assemble(cfg, per_layer)


def _qwen_window(cfg: Config) -> Config:
    """Qwen's sliding_window counts only with use_sliding_window (checked either way)."""
    _window(cfg)
    return cfg if boolean(cfg, "use_sliding_window", False) else {**cfg, "sliding_window": None}


def _qwen2(cfg: Config) -> ModelSpec:
    """Qwen2 has Q/K/V biases; its window applies only with use_sliding_window, from layer
    max_window_layers on."""
    cfg = _qwen_window(cfg)
    first = integer(cfg, "max_window_layers", default=0, minimum=0)
    return read_dense(cfg, sliding=lambda i: i >= first, qkv_bias=True)


def _qwen3(cfg: Config) -> ModelSpec:
    cfg = _qwen_window(cfg)
    first = integer(cfg, "max_window_layers", default=0, minimum=0)
    return read_dense(cfg, sliding=lambda i: i >= first, qk_norm=True)


def _gemma2(cfg: Config) -> ModelSpec:
    """Gemma 2: even layers slide, odd layers see everything; embeddings tied by default."""
    cfg = {"tie_word_embeddings": True, **cfg}
    return read_dense(cfg, sliding=lambda i: i % 2 == 0)


def _gemma3(cfg: Config) -> ModelSpec:
    """Gemma 3: layer i slides unless (i+1) is a multiple of sliding_window_pattern (6).

    The 4B/12B/27B checkpoints leave vocab_size out of text_config and rely on
    transformers' Gemma3TextConfig default, 262_208.
    """
    cfg = {"tie_word_embeddings": True, "vocab_size": 262_208, **cfg}
    pattern = integer(cfg, "sliding_window_pattern", default=6)
    return read_dense(cfg, sliding=lambda i: (i + 1) % pattern != 0, qk_norm=True)


def _moe_layers(cfg: Config, attention_for: Callable[[int], Attention],
                is_moe: Callable[[int], bool], moe: Mlp) -> ModelSpec:
    dense = _dense_mlp(cfg) if not all(is_moe(i) for i in range(_layers(cfg))) \
        else None
    per_layer = [LayerSpec(attention_for(i), moe if is_moe(i) else dense)
                 for i in range(_layers(cfg))]
    return _assemble(cfg, per_layer)


def _mixtral(cfg: Config) -> ModelSpec:
    moe = _moe(cfg, "intermediate_size", ("num_local_experts",))
    attn = _gqa(cfg, _window(cfg))
    return _moe_layers(cfg, lambda i: attn, lambda i: True, moe)


def _qwen_moe(cfg: Config) -> ModelSpec:
    """qwen2_moe / qwen3_moe: layer i is sparse unless listed in mlp_only_layers or off the
    decoder_sparse_step; qwen2_moe adds a gated shared expert."""
    shared = integer(cfg, "shared_expert_intermediate_size", default=0, minimum=0)
    moe = _moe(cfg, "moe_intermediate_size", ("num_experts",),
               shared_intermediate_size=shared, shared_gate=shared > 0)
    step = integer(cfg, "decoder_sparse_step", default=1)
    dense_only = cfg.get("mlp_only_layers") or []
    if not isinstance(dense_only, list) or not all(isinstance(i, int) for i in dense_only):
        raise ConfigError(f"'mlp_only_layers' is {show(dense_only)}, not a list of layer "
                          "numbers; fix it in the config")
    qwen3 = cfg["model_type"] == "qwen3_moe"
    attn = _gqa(cfg, None, qk_norm=qwen3, **({} if qwen3 else {"qkv_bias": True}))
    return _moe_layers(cfg, lambda i: attn,
                       lambda i: i not in dense_only and (i + 1) % step == 0, moe)


def _deepseek(cfg: Config) -> ModelSpec:
    """deepseek_v2 / deepseek_v3: MLA in every layer; the first first_k_dense_replace layers
    have a dense MLP, the rest routed experts plus n_shared_experts shared ones."""
    nope, rope = integer(cfg, "qk_nope_head_dim"), integer(cfg, "qk_rope_head_dim")
    attn = Attention(kind="mla", num_heads=integer(cfg, "num_attention_heads"), num_kv_heads=1,
                     head_dim=nope + rope, v_head_dim=integer(cfg, "v_head_dim"),
                     q_lora_rank=integer(cfg, "q_lora_rank", default=None),
                     kv_lora_rank=integer(cfg, "kv_lora_rank"), qk_rope_head_dim=rope,
                     qk_nope_head_dim=nope)
    expert_f = integer(cfg, "moe_intermediate_size")
    moe = _moe(cfg, "moe_intermediate_size", ("n_routed_experts",),
               shared_intermediate_size=expert_f * integer(cfg, "n_shared_experts", default=0,
                                                         minimum=0),
               router_bias=cfg["model_type"] == "deepseek_v3")
    first = first_dense(cfg, _layers(cfg))
    group_routing(cfg, moe.num_experts)
    freq = integer(cfg, "moe_layer_freq", default=1)
    return _moe_layers(cfg, lambda i: attn, lambda i: i >= first and i % freq == 0, moe)


def _gpt_oss(cfg: Config) -> ModelSpec:
    """gpt-oss: GQA with attention sinks and biases, sliding and full layers alternating as
    layer_types says, every layer a biased MoE."""
    layers = _layers(cfg)
    window = integer(cfg, "sliding_window")
    flags = _window_flags(cfg, layers, lambda i: i % 2 == 0)
    moe = _moe(cfg, "intermediate_size", ("num_local_experts",),
               ("num_experts_per_tok", "experts_per_token"), router_bias=True, expert_bias=True)
    full = _gqa(cfg, None, sinks=True, qkv_bias=True, o_bias=True)
    sliding = replace(full, window=window)
    return _moe_layers(cfg, lambda i: sliding if flags[i] else full, lambda i: True, moe)


def _glm4_moe(cfg: Config) -> ModelSpec:
    """glm4_moe (GLM-4.5, GLM-4.5-Air, GLM-4.6): GQA with Q/K/V biases (attention_bias; the
    output projection has none) and Q/K norms where use_qk_norm; the first
    first_k_dense_replace layers dense, the rest n_routed_experts routed experts plus
    n_shared_experts shared ones of width moe_intermediate_size, a sigmoid router with a bias
    (noaux_tc, as DeepSeek-V3's). The MTP layers (num_nextn_predict_layers) are not part of the
    forward pass."""
    expert_f = integer(cfg, "moe_intermediate_size")
    moe = _moe(cfg, "moe_intermediate_size", ("n_routed_experts",),
               shared_intermediate_size=expert_f * integer(cfg, "n_shared_experts", default=0,
                                                         minimum=0),
               router_bias=True)
    attn = _gqa(cfg, None, qk_norm=boolean(cfg, "use_qk_norm", False), o_bias=False)
    first = first_dense(cfg, _layers(cfg))
    group_routing(cfg, moe.num_experts)
    return _moe_layers(cfg, lambda i: attn, lambda i: i >= first, moe)


def _minimax_m2(cfg: Config) -> ModelSpec:
    """minimax_m2 (MiniMax-M2, M2.5): GQA with Q/K norms (use_qk_norm) and full attention in
    every layer; every layer a MoE of num_local_experts experts of width intermediate_size,
    num_experts_per_tok per token, a sigmoid router with a bias (use_routing_bias), shared
    experts of shared_intermediate_size (0 in the released models). attn_type_list marks
    lightning (linear) attention layers with 0, which MiniMax-Text-01 has and this reader
    does not cost; the MTP modules (use_mtp) are not part of the forward pass."""
    types = cfg.get("attn_type_list")
    if types is not None and (not isinstance(types, list) or any(t != 1 for t in types)):
        raise ConfigError(f"'attn_type_list' is {show(types)}: only full-attention layers (1) "
                          "are supported, not lightning attention (0)")
    moe = _moe(cfg, "intermediate_size", ("num_local_experts",),
               shared_intermediate_size=integer(cfg, "shared_intermediate_size", default=0,
                                                minimum=0),
               router_bias=boolean(cfg, "use_routing_bias", False))
    attn = _gqa(cfg, None, qk_norm=boolean(cfg, "use_qk_norm", False))
    return _moe_layers(cfg, lambda i: attn, lambda i: True, moe)


READERS: dict[str, Callable[[Config], ModelSpec]] = {
    "llama": read_dense,
    "mistral": read_dense,
    "phi3": read_dense,
    "qwen2": _qwen2,
    "qwen3": _qwen3,
    "gemma": lambda cfg: read_dense({"tie_word_embeddings": True, **cfg}),
    "gemma2": _gemma2,
    "gemma3_text": _gemma3,
    "mixtral": _mixtral,
    "qwen2_moe": _qwen_moe,
    "qwen3_moe": _qwen_moe,
    "deepseek_v2": _deepseek,
    "deepseek_v3": _deepseek,
    "gpt_oss": _gpt_oss,
    "minimax_m2": _minimax_m2,
    "glm4_moe": _glm4_moe,
}

# Multimodal wrappers whose decoder lives in text_config.
_WRAPPERS = {"gemma3": "gemma3_text", "mistral3": "mistral", "llama4": None}


def text_config(cfg: Config) -> Config:
    """The decoder's config: a nested text_config (multimodal wrappers) merged over the top."""
    inner = cfg.get("text_config")
    if not isinstance(inner, dict):
        return cfg
    merged = {k: v for k, v in cfg.items() if k not in ("text_config", "vision_config")}
    merged.update(inner)
    outer = cfg.get("model_type")
    wrapped = _WRAPPERS.get(outer) if isinstance(outer, str) else None
    if wrapped and inner.get("model_type") in (None, cfg.get("model_type")):
        merged["model_type"] = wrapped
    return merged


def model_spec(cfg: Config, where: str = "config.json") -> ModelSpec:
    """Read a config.json (already parsed) into a ModelSpec, or raise a ConfigError that names
    `where` (the file or repo the config came from) and the field at fault."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where} must hold a JSON object; pass the model's config.json")
    cfg = text_config(cfg)
    kind = cfg.get("model_type")
    reader = READERS.get(kind) if isinstance(kind, str) else None
    if reader is None:
        raise ConfigError(f"{where}: model_type {show(kind)} is not supported; supported: "
                          f"{', '.join(sorted(READERS))}")
    try:
        served_dtype(cfg)
        return reader(cfg)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from error
