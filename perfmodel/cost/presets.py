"""The registry of engine presets by name: the torch ones of cost/engines.py and the serving
engines' of cost/serving_engines.py (imported only when one of those is asked for). Imports run
one way: this module imports both; neither imports it.
"""

from __future__ import annotations

from perfmodel.cost.engines import TORCH_CUDAGRAPH, TUNED, EnginePreset
from perfmodel.errors import WorkloadError

PRESETS = {p.name: p for p in (TORCH_CUDAGRAPH, TUNED)}


def engine_names() -> list[str]:
    """Every engine preset's name: the torch presets', then the serving engines'."""
    from perfmodel.cost.serving_engines import SERVING_PRESETS  # vllm, sglang, trtllm

    return list({**PRESETS, **SERVING_PRESETS})


def engine_preset(name: str | None) -> EnginePreset:
    """The kernel preset of an engine; name@version (vllm@0.26.0, vllm@published) names the
    engine's kernels whatever the release (serve/engine_profile.py picks the release)."""
    if name is None:
        return TORCH_CUDAGRAPH
    name = name.partition("@")[0]
    if name in PRESETS:
        return PRESETS[name]
    from perfmodel.cost.serving_engines import SERVING_PRESETS  # vllm, sglang, trtllm

    presets = {**PRESETS, **SERVING_PRESETS}
    if name not in presets:
        raise WorkloadError(f"unknown engine {name!r}; use one of {', '.join(presets)}")
    return presets[name]
