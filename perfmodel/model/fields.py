"""Typed reads of config.json fields: whole numbers, booleans, and errors that name the field.

JSON (and Python's json module) accepts NaN, Infinity, 1.5, "8" and true where a config means a
count; each reader refuses them with a ConfigError of one line that names the field as the file
spells it. The caller (architectures.model_spec) adds which file.
"""

from __future__ import annotations

import json
import math
from typing import Any

from perfmodel.errors import ConfigError

Config = dict[str, Any]
_MISSING = object()


def found(cfg: Config, names: tuple[str, ...]) -> tuple[str, Any]:
    """(name, value) of the first of `names` present in cfg and not null; (names[0], None) if none."""
    for name in names:
        if cfg.get(name) is not None:
            return name, cfg[name]
    return names[0], None


def show(value: Any) -> str:
    """A value as the config file spells it: NaN, Infinity, "yes", 0 (a number of more than 20
    digits summarized)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return f"a {len(str(abs(value)))}-digit number"
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _field(cfg: Config, *names: str, default: Any = _MISSING) -> Any:
    """The first of `names` present in cfg (and not null), else default, else a ConfigError."""
    name, value = found(cfg, names)
    if value is not None:
        return value
    if default is _MISSING:
        kind = cfg.get("model_type", "this")
        raise ConfigError(f"no '{name}', which {kind} models need; pass the model's complete "
                          "config.json")
    return default


def integer(cfg: Config, *names: str, default: Any = _MISSING, minimum: int = 1,
         maximum: int = 2**53) -> int:
    """A whole number in [minimum, maximum] (JSON's NaN, Infinity, 1.5, "8", true are refused)."""
    name, value = found(cfg, names)
    if value is None:
        return _field(cfg, *names, default=default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or (isinstance(value, float) and not math.isfinite(value)) \
            or value != int(value) or value < minimum:
        raise ConfigError(f"'{name}' is {show(value)}, not a whole number ≥ {minimum}; "
                          "fix it in the config")
    if value > maximum:
        raise ConfigError(f"'{name}' is {show(value)}, above {maximum:,}; fix it in the config")
    return int(value)


def boolean(cfg: Config, name: str, default: bool) -> bool:
    """A true/false field; "yes", 1 and the like are refused rather than guessed."""
    value = cfg.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"'{name}' is {show(value)}, not true or false; fix it in the config")
    return value


# V: the largest released vocabulary is Gemma 3's 262,208; 16 times that is no tokenizer, and a
# typo there would silently multiply the embedding and LM-head costs.
MAX_VOCAB = 4_194_304
LAYER_TYPES = ("full_attention", "sliding_attention")  # what the readers cost


def first_dense(cfg: Config, layers: int) -> int:
    """first_k_dense_replace: the leading dense layers, fewer than L (at L or above, the MoE
    model would silently become a dense one: DeepSeek-V3 would shrink from 671B to 37B)."""
    value = integer(cfg, "first_k_dense_replace", default=0, minimum=0)
    if value >= layers:
        raise ConfigError(f"'first_k_dense_replace' is {value}, not below the {layers} layers of "
                          "'num_hidden_layers' (it would leave no MoE layer); fix it in the "
                          "config")
    return value


def group_routing(cfg: Config, experts: int) -> None:
    """n_group and topk_group (DeepSeek-V3's group-limited routing), where the config has them:
    n_group ≥ 1 dividing the routed experts, 1 ≤ topk_group ≤ n_group. They choose which
    experts a token visits, not how many, so the cost does not read them; a config that no
    engine would load is refused rather than guessed."""
    groups = integer(cfg, "n_group", default=None)
    if groups is not None and experts % groups:
        raise ConfigError(f"'n_group' {groups} does not divide the {experts} routed experts; "
                          "fix it in the config")
    top = integer(cfg, "topk_group", default=None)
    if top is not None and top > (groups or 1):
        raise ConfigError(f"'topk_group' is {top}, more than the {groups or 1} groups of "
                          "'n_group'; fix it in the config")


def layer_flags(types: list, layers: int) -> list[bool]:
    """Which layers slide, from `layer_types` (a list of L names, each one of LAYER_TYPES)."""
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise ConfigError(f"'layer_types' is {show(types)}, not a list of layer names; "
                          "fix it in the config")
    if len(types) != layers:
        raise ConfigError(f"'layer_types' names {len(types)} layers, 'num_hidden_layers' "
                          f"{layers}; fix the config so that they agree")
    unknown = next((t for t in types if t not in LAYER_TYPES), None)
    if unknown is not None:
        raise ConfigError(f"'layer_types' holds {show(unknown)}, which this reader does not "
                          f"cost (it knows {' and '.join(LAYER_TYPES)}); fix it in the config")
    return [t == "sliding_attention" for t in types]


# A checkpoint's torch_dtype -> the dtype it is served in (vLLM's dtype="auto": float32 as bf16).
DTYPES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "bf16",
          "float": "bf16"}


def served_dtype(cfg: Config) -> str | None:
    """bf16 or fp16 from the config's torch_dtype (or dtype), None where it has neither; an
    unknown name is refused, not read as bf16."""
    for name in ("torch_dtype", "dtype"):
        dtype = cfg.get(name)
        if dtype is None:
            continue
        kind = DTYPES.get(dtype.removeprefix("torch.")) if isinstance(dtype, str) else None
        if kind is None:
            raise ConfigError(f"'{name}' is {show(dtype)}, not a dtype a checkpoint is served in "
                              f"({', '.join(DTYPES)}); fix it in the config")
        return kind
    return None
