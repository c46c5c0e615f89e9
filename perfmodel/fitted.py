"""Every value in perfmodel chosen to match measurements rather than read from an engine's code,
a datasheet or a profile: its rule, the data it came from, and the half it was fitted on.

Everything else is either a measurement of a box (GPU and engine profiles under configs/, each
with its own source and method) or a fact with a cited source (an engine's file and release).
The code reads these values from here and nowhere else; FITTED lists them for the reader and
for docs/serving.md. The train/test split of the published serving rows is
`validate.silicon.is_training`: a row trains iff int(sha1(row id), 16) is even.
"""

from __future__ import annotations

from dataclasses import dataclass

# Host time per engine step (scheduling, input preparation, sampling bookkeeping, detokenizer
# hand-off) of the presets (serve/engines.py, `--engine vllm@published` and the like; an engine
# profile brings its own). Rule: for each training row of an engine, the TPOT residual at zero
# overhead divided by dTPOT/d(overhead) (a probe run at 1 ms); the median over the engine's
# rows, floored at 0 (`perfmodel validate-serving --fit` prints it; 2026-11-27).
HOST_OVERHEAD_S: dict[str, float] = {"vllm": 1.04e-3, "sglang": 0.0, "trtllm": 2.51e-3}

# Requests simulated per published serving row, and per plan point: max(4·C, 40) for C clients
# (the rows do not record how many the benchmark sent). 4·C was chosen over 10·C on the
# training half (TTFT median |error| 38% against 57%); 40, a floor of a few closed-loop rounds
# for small C, was set with the rule and never compared with another value.
REQUESTS_PER_CLIENT = 4
MIN_REQUESTS = 40

# plan's default --margin: the serving simulation's median TPOT |error| against real engines,
# 9.4% on one GPU and 9.95% on 2-8 GPUs, rounded to 10% (test half of the aiconfigurator
# rows, 2026-11-27; docs/validation.md, "Real serving engines").
PLAN_MARGIN = 0.10

# An engine profile's two constants (configs/engines/*.yaml, host_overhead_s and
# request_latency_s), fitted by validate/engine_fit.py `fit` on the profile's own runs; the
# profile records this rule, its training and test points under `fit`.
ENGINE_PROFILE_RULE = ("validate/engine_fit.py: request_latency_s = median over the training "
                       "half's one-client points of measured - simulated median TTFT; "
                       "host_overhead_s = median of measured - simulated mean TPOT there, "
                       "at least 0; simulated with this profile's settings and tables and "
                       "both constants at 0")


@dataclass(frozen=True)
class Fitted:
    """One fitted value as the reader sees it: where it is read, its rule, data and half."""

    name: str  # the constant above
    read_by: tuple[str, ...]  # the modules that read it
    rule: str
    data: str
    half: str


_AICONFIGURATOR = "the published serving rows (aiconfigurator's silicon tables, ../shared)"

FITTED: tuple[Fitted, ...] = (
    Fitted("HOST_OVERHEAD_S", ("perfmodel.serve.common",),  # host_overhead() picks it
           "per engine, the median over its rows of the per-step overhead that would make the "
           "simulated TPOT match, floored at 0", _AICONFIGURATOR + ": every aggregated row, "
           "one GPU and many (TensorRT-LLM 291 rows, vLLM 169, SGLang 76)", "training"),
    Fitted("REQUESTS_PER_CLIENT", ("perfmodel.validate.silicon", "perfmodel.plan.search",
                                   "perfmodel.cli.planning"),
           "4·C over 10·C by TTFT median |error| (38% against 57%)",
           _AICONFIGURATOR + ": the one-GPU rows", "training"),
    Fitted("MIN_REQUESTS", ("perfmodel.validate.silicon", "perfmodel.plan.search"),
           "a floor set with REQUESTS_PER_CLIENT, never compared with another value",
           "none", "none"),
    Fitted("PLAN_MARGIN", ("perfmodel.cli.planning",),
           "serve's median TPOT |error| against real engines (9.4% one GPU, 9.95% 2-8), "
           "rounded", _AICONFIGURATOR, "test"),
    Fitted("ENGINE_PROFILE_RULE", ("perfmodel.validate.engine_fit",),
           "medians of measured - simulated TTFT and TPOT at one client (the rule's text)",
           "an engine profile's own benchmark runs (docs/data/engines/...)",
           "training (sha1 of the result's path even)"),
)
