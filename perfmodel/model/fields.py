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
    """A value as the config file spells it: NaN, Infinity, "yes", 0."""
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
            or not math.isfinite(value) or value != int(value) or value < minimum:
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
