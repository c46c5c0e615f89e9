"""From a Hugging Face config.json to a ModelSpec, by the config's own field names.

Each family is a small mapping: which field gives the heads, the window, the experts. Adding an
architecture means adding a reader here and naming it in READERS.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any, Callable

from perfmodel.errors import ConfigError
from perfmodel.model.spec import Attention, LayerSpec, Mlp, ModelSpec

Config = dict[str, Any]
_MISSING = object()


def _field(cfg: Config, *names: str, default: Any = _MISSING) -> Any:
    """The first of `names` present in cfg (and not null), else default, else a ConfigError."""
    for name in names:
        if cfg.get(name) is not None:
            return cfg[name]
    if default is _MISSING:
        kind = cfg.get("model_type", "this")
        raise ConfigError(
            f"config.json lacks '{names[0]}', which {kind} models need; "
            "pass the model's complete config.json")
    return default


def _int(cfg: Config, *names: str, default: Any = _MISSING) -> int:
    value = _field(cfg, *names, default=default)
    if value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or value < 0:
        raise ConfigError(f"config.json field '{names[0]}' is {value!r}; it must be a "
                          "non-negative whole number")
    return int(value)


def _gqa(cfg: Config, window: int | None, **extra: Any) -> Attention:
    heads = _int(cfg, "num_attention_heads")
    hidden = _int(cfg, "hidden_size")
    head_dim = _int(cfg, "head_dim", default=0) or hidden // heads
    bias = bool(cfg.get("attention_bias", False))
    fields = {"qkv_bias": bias, "o_bias": bias, **extra}
    return Attention(kind="gqa", num_heads=heads,
                     num_kv_heads=_int(cfg, "num_key_value_heads", default=heads),
                     head_dim=head_dim, v_head_dim=head_dim, window=window, **fields)


def _window_flags(cfg: Config, layers: int, default_sliding: Callable[[int], bool]) -> list[bool]:
    """Which layers use the sliding window: `layer_types` when the config has it, else the rule."""
    types = cfg.get("layer_types")
    if types is not None:
        if len(types) != layers:
            raise ConfigError(f"config.json has {len(types)} layer_types for {layers} layers; "
                              "fix the config so that they agree")
        return [t == "sliding_attention" for t in types]
    return [default_sliding(i) for i in range(layers)]


def _assemble(cfg: Config, per_layer: list[LayerSpec]) -> ModelSpec:
    counts = Counter(per_layer)
    ordered = tuple((layer, counts[layer]) for layer in dict.fromkeys(per_layer))
    return ModelSpec(
        model_type=cfg["model_type"], hidden_size=_int(cfg, "hidden_size"),
        vocab_size=_int(cfg, "vocab_size"),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)), layers=ordered,
        max_position_embeddings=_int(cfg, "max_position_embeddings", default=None))


def _dense_mlp(cfg: Config) -> Mlp:
    return Mlp(kind="dense", intermediate_size=_int(cfg, "intermediate_size"))


def read_dense(cfg: Config, *, sliding: Callable[[int], bool] | None = None,
               qkv_bias: bool = False, qk_norm: bool = False) -> ModelSpec:
    """llama, mistral, qwen2, qwen3, phi3, gemma*: GQA attention and a gated MLP in every layer.

    The sliding window applies to the layers `sliding` selects (all layers when None and the
    config sets `sliding_window`); `layer_types` in the config overrides both.
    """
    layers = _int(cfg, "num_hidden_layers")
    window = _int(cfg, "sliding_window", default=None)
    rule = sliding or (lambda _: True)
    flags = _window_flags(cfg, layers, rule) if window else [False] * layers
    mlp = _dense_mlp(cfg)
    per_layer = []
    for is_sliding in flags:
        attn = _gqa(cfg, window if is_sliding else None, qk_norm=qk_norm,
                    **({"qkv_bias": True} if qkv_bias else {}))
        per_layer.append(LayerSpec(attn, mlp))
    return _assemble(cfg, per_layer)


def _qwen2(cfg: Config) -> ModelSpec:
    """Qwen2 has Q/K/V biases; its window applies only with use_sliding_window, from layer
    max_window_layers on."""
    if not cfg.get("use_sliding_window", False):
        cfg = {**cfg, "sliding_window": None}
    first = _int(cfg, "max_window_layers", default=0)
    return read_dense(cfg, sliding=lambda i: i >= first, qkv_bias=True)


def _qwen3(cfg: Config) -> ModelSpec:
    if not cfg.get("use_sliding_window", False):
        cfg = {**cfg, "sliding_window": None}
    first = _int(cfg, "max_window_layers", default=0)
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
    pattern = _int(cfg, "sliding_window_pattern", default=6)
    return read_dense(cfg, sliding=lambda i: (i + 1) % pattern != 0, qk_norm=True)


def _moe_layers(cfg: Config, attention_for: Callable[[int], Attention],
                is_moe: Callable[[int], bool], moe: Mlp) -> ModelSpec:
    dense = _dense_mlp(cfg) if not all(is_moe(i) for i in range(_int(cfg, "num_hidden_layers"))) \
        else None
    per_layer = [LayerSpec(attention_for(i), moe if is_moe(i) else dense)
                 for i in range(_int(cfg, "num_hidden_layers"))]
    return _assemble(cfg, per_layer)


def _mixtral(cfg: Config) -> ModelSpec:
    moe = Mlp(kind="moe", intermediate_size=_int(cfg, "intermediate_size"),
              num_experts=_int(cfg, "num_local_experts"), top_k=_int(cfg, "num_experts_per_tok"))
    attn = _gqa(cfg, _int(cfg, "sliding_window", default=None))
    return _moe_layers(cfg, lambda i: attn, lambda i: True, moe)


def _qwen_moe(cfg: Config) -> ModelSpec:
    """qwen2_moe / qwen3_moe: layer i is sparse unless listed in mlp_only_layers or off the
    decoder_sparse_step; qwen2_moe adds a gated shared expert."""
    shared = _int(cfg, "shared_expert_intermediate_size", default=0)
    moe = Mlp(kind="moe", intermediate_size=_int(cfg, "moe_intermediate_size"),
              num_experts=_int(cfg, "num_experts"), top_k=_int(cfg, "num_experts_per_tok"),
              shared_intermediate_size=shared, shared_gate=shared > 0)
    step = _int(cfg, "decoder_sparse_step", default=1) or 1
    dense_only = set(cfg.get("mlp_only_layers") or [])
    qwen3 = cfg["model_type"] == "qwen3_moe"
    attn = _gqa(cfg, None, qk_norm=qwen3, **({} if qwen3 else {"qkv_bias": True}))
    return _moe_layers(cfg, lambda i: attn,
                       lambda i: i not in dense_only and (i + 1) % step == 0, moe)


def _deepseek(cfg: Config) -> ModelSpec:
    """deepseek_v2 / deepseek_v3: MLA in every layer; the first first_k_dense_replace layers
    have a dense MLP, the rest routed experts plus n_shared_experts shared ones."""
    nope, rope = _int(cfg, "qk_nope_head_dim"), _int(cfg, "qk_rope_head_dim")
    attn = Attention(kind="mla", num_heads=_int(cfg, "num_attention_heads"), num_kv_heads=1,
                     head_dim=nope + rope, v_head_dim=_int(cfg, "v_head_dim"),
                     q_lora_rank=_int(cfg, "q_lora_rank", default=None),
                     kv_lora_rank=_int(cfg, "kv_lora_rank"), qk_rope_head_dim=rope,
                     qk_nope_head_dim=nope)
    expert_f = _int(cfg, "moe_intermediate_size")
    moe = Mlp(kind="moe", intermediate_size=expert_f, num_experts=_int(cfg, "n_routed_experts"),
              top_k=_int(cfg, "num_experts_per_tok"),
              shared_intermediate_size=expert_f * _int(cfg, "n_shared_experts", default=0),
              router_bias=cfg["model_type"] == "deepseek_v3")
    first_dense = _int(cfg, "first_k_dense_replace", default=0)
    freq = _int(cfg, "moe_layer_freq", default=1) or 1
    return _moe_layers(cfg, lambda i: attn, lambda i: i >= first_dense and i % freq == 0, moe)


def _gpt_oss(cfg: Config) -> ModelSpec:
    """gpt-oss: GQA with attention sinks and biases, sliding and full layers alternating as
    layer_types says, every layer a biased MoE."""
    layers = _int(cfg, "num_hidden_layers")
    window = _int(cfg, "sliding_window")
    flags = _window_flags(cfg, layers, lambda i: i % 2 == 0)
    moe = Mlp(kind="moe", intermediate_size=_int(cfg, "intermediate_size"),
              num_experts=_int(cfg, "num_local_experts"),
              top_k=_int(cfg, "num_experts_per_tok", "experts_per_token"),
              router_bias=True, expert_bias=True)
    full = _gqa(cfg, None, sinks=True, qkv_bias=True, o_bias=True)
    sliding = replace(full, window=window)
    return _moe_layers(cfg, lambda i: sliding if flags[i] else full, lambda i: True, moe)


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
    wrapped = _WRAPPERS.get(cfg.get("model_type", ""))
    if wrapped and inner.get("model_type") in (None, cfg.get("model_type")):
        merged["model_type"] = wrapped
    return merged


def model_spec(cfg: Config) -> ModelSpec:
    """Read a config.json (already parsed) into a ModelSpec, or raise a ConfigError."""
    if not isinstance(cfg, dict):
        raise ConfigError("config.json must hold a JSON object; pass the model's config.json")
    cfg = text_config(cfg)
    kind = cfg.get("model_type")
    reader = READERS.get(kind)
    if reader is None:
        raise ConfigError(f"model_type {kind!r} is not supported; supported: "
                          f"{', '.join(sorted(READERS))}")
    return reader(cfg)
