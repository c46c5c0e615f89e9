"""perfmodel: a roofline performance model for LLM inference.

The data flows one way, through frozen records:
config.json -> ModelSpec; --precision -> Precision; flags -> Workload;
ops(...) -> Op; cost(op, GpuSpec) -> OpCost; predict(...) -> Prediction.
"""

__version__ = "0.1.0"
