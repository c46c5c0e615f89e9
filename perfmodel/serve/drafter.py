"""The drafter of a speculative engine as a model the step costs can time (serve/speculative.py
says how its passes are costed): MTP and EAGLE as one-layer heads read from the target's config,
a draft model through the same loader as the target; ngram has none.

Memory (vLLM v1 allocates the drafter's KV in the same pool as the target's, and loads its
weights beside them): the drafter's KV bytes per token join the target's, and its weights take
room from the pool: a draft model's all, a head's one layer (its embedding and LM head are the
target's, shared: EagleProposer.load_model in vllm/v1/spec_decode/eagle.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from perfmodel.cost.parallel import Parallel
from perfmodel.cost.phases import memory
from perfmodel.cost.precision import Precision
from perfmodel.cost.workload import Workload
from perfmodel.errors import ConfigError, WorkloadError
from perfmodel.hardware.gpu import GpuSpec
from perfmodel.model.spec import Mlp, ModelSpec
from perfmodel.serve.ranks import Layout, layout
from perfmodel.serve.speculative import Speculation

# the config fields that count a checkpoint's MTP layers, as each family names them
MTP_FIELDS = ("num_nextn_predict_layers", "mtp_num_hidden_layers", "num_mtp_modules")


@dataclass(frozen=True)
class Drafter:
    """The drafter one GPU runs: its layout (model, ops, KV share), precision, the weights it
    adds to the GPU, and a label saying what it is."""

    lay: Layout
    precision: Precision
    weights_bytes: float
    label: str
    key: str  # names it in the step-cost cache

    def kv_spec(self, target: ModelSpec) -> ModelSpec:
        """The target's KV model with the drafter's layers beside its own (one pool)."""
        return replace(target, layers=target.layers + self.lay.kv_spec.layers)


def mtp_layers(config: dict) -> int:
    """How many MTP layers the checkpoint has (0: none), from MTP_FIELDS."""
    for name in MTP_FIELDS:
        value = config.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"'{name}' is {value!r}, not a whole number ≥ 0; fix it in "
                                  "the config")
            if name == "num_mtp_modules" and config.get("use_mtp") is False:
                return 0
            return value
    return 0


def head_spec(spec: ModelSpec, config: dict, method: str, where: str) -> ModelSpec:
    """The one-layer drafter of MTP or EAGLE as a ModelSpec of the target's width and vocab."""
    kinds = [layer for layer, _ in spec.layers]
    if method == "mtp":
        if not mtp_layers(config):
            raise WorkloadError(f"{where} has no MTP layers (none of {', '.join(MTP_FIELDS)}); "
                                "use --speculative eagle, ngram or draft-model")
        layer = next((k for k in reversed(kinds) if k.mlp.kind == "moe"), kinds[-1])
    else:
        full = next((k for k in kinds if k.attention.window is None), kinds[0])
        dense = next((k.mlp for k in kinds if k.mlp.kind == "dense"), None)
        width = dense.intermediate_size if dense else config.get("intermediate_size")
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            width = full.mlp.intermediate_size
        layer = replace(full, attention=replace(full.attention, window=None),
                        mlp=Mlp("dense", width))
    return replace(spec, layers=((layer, 1),))




def drafter_for(req: Speculation, spec: ModelSpec, config: dict, where: str, model_id: str,
                prec: Precision, gpu: GpuSpec, par: Parallel, precision: str | None,
                kv_dtype: str | None, act_quant: str | None) -> Drafter | None:
    """The drafter of `req` for the target `spec` (its config dict and where it came from), on
    one GPU of the layout `par` (the draft runs at the target's TP, as vLLM's does by
    default); None for ngram."""
    if req.method == "ngram":
        return None
    if req.method == "draft-model":
        from perfmodel.api import resolve_precision
        from perfmodel.model.architectures import model_spec
        from perfmodel.model.source import load_model_config

        cfg = load_model_config(req.draft_model)
        dspec = model_spec(cfg.config, cfg.where)
        dprec = resolve_precision(cfg.config, precision, kv_dtype, act_quant, gpu)
        lay = layout(dspec, dprec, gpu, par)
        return Drafter(lay, dprec, lay.weights_bytes, f"draft model {cfg.model_id} "
                       f"({dspec.num_layers} layers)", f"draft {cfg.model_id} {cfg.source}")
    head = head_spec(spec, config, req.method, where)
    lay = layout(head, prec, gpu, par)
    local = lay.local
    weights = memory(local, prec, gpu, Workload(1, 1, 1)).weights_bytes - memory(
        replace(local, layers=()), prec, gpu, Workload(1, 1, 1)).weights_bytes
    what = "MTP layer" if req.method == "mtp" else "EAGLE head"
    return Drafter(lay, prec, weights, f"{what} (one decoder layer + the target's LM head)",
                   f"{req.method} head of {model_id}")


def speculative_cost(target, req: Speculation, drafter: Drafter | None, build):
    """The SpeculativeStep over the target's step costs; build(drafter) makes the drafter's
    (run_serve builds them as the target's: the same engine kernels and fused-MoE tables)."""
    from perfmodel.serve.speculative import SpeculativeStep

    return SpeculativeStep(target, build(drafter) if drafter else None, req)


def speculative_doc(req: Speculation, drafter: Drafter | None, plain, cost, requests,
                    max_batch: int) -> dict:
    """The "speculative" object of serve --json (docs/json.md): the request, the drafter, and
    the speedup per decode step against batch size with its crossover."""
    from perfmodel.serve.speculative import crossover

    isl = sum(r.isl for r in requests) / len(requests)
    osl = sum(r.osl for r in requests) / len(requests)
    return {"method": req.method, "spec_tokens": req.spec_tokens, "acceptance": req.acceptance,
            "draft_model": req.draft_model, "draft_overhead_s": req.draft_overhead_s,
            "drafter": drafter.label if drafter else "n-gram lookup on the CPU (no GPU work)",
            "drafter_weights_bytes": drafter.weights_bytes if drafter else 0.0,
            **crossover(plain, cost, isl + osl / 2, max_batch)}
