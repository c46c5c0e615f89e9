"""Grid points: one deployment and one load, and the product of the axes a sweep gives."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, fields

PREDICT, SERVE = "predict", "serve"


@dataclass(frozen=True)
class Point:
    """One thing to evaluate. method 'predict' runs a static batch of `load` sequences; 'serve'
    simulates an engine with `load` requests in flight (closed loop). None means the default
    (the config's precision, the activation dtype for the KV cache, the method's engine)."""

    model: str
    gpu: str
    method: str = PREDICT
    precision: str | None = None
    kv_dtype: str | None = None
    engine: str | None = None
    tp: int = 1
    ep: int = 1
    dp: int = 1
    pp: int = 1
    load: int = 1
    isl: int = 1024
    osl: int = 128
    requests: int | None = None  # serve: requests simulated (None: serve's default)
    max_num_batched_tokens: int | None = None  # serve: the engine's token budget (None: default)
    disagg: str | None = None  # serve: disaggregated pools P x TPa : D x TPb (None: aggregated)
    replicas: int = 1  # serve: instances of this layout behind `router` (load: the fleet's)
    router: str | None = None
    speculative: str | None = None  # serve: mtp | eagle | ngram | draft-model (None: none)
    spec_tokens: int | None = None  # serve, speculative: k draft tokens per step
    acceptance: float | None = None  # serve, speculative: mean tokens per step, bonus included
    draft_model: str | None = None  # serve, speculative draft-model: the draft's id
    draft_overhead_s: float | None = None  # serve, speculative: host time per drafter pass
    request_rate: float | None = None  # serve: open-loop requests/s instead of `load` clients
    shape: tuple[tuple[str, float], ...] = ()  # serve: (burstiness | range_ratio, value)
    slo_targets: tuple[tuple[str, float], ...] = ()  # serve --slo: (ttft_s | tpot_s, seconds)

    @property
    def gpus(self) -> int:
        """GPUs the deployment takes: TP × DP × PP (EP spreads experts over those same GPUs),
        times the replicas; disaggregated, P·TPa + D·TPb."""
        if self.disagg:
            (p, a), (d, b) = (map(int, pool.split("x")) for pool in self.disagg.split(":"))
            return p * a + d * b
        return self.tp * self.dp * self.pp * self.replicas

    @property
    def parallel(self) -> bool:
        return self.gpus > 1 or self.ep > 1

    @property
    def load_name(self) -> str:
        if self.request_rate is not None:
            return "request_rate"
        return "batch" if self.method == PREDICT else "concurrency"

    @property
    def serve_options(self) -> dict[str, object]:
        """run_serve's keyword arguments for the options a point sets beyond its layout and
        load: speculation, an open-loop rate, the workload's shape (none: {})."""
        opts: dict[str, object] = dict(self.shape)
        if self.slo_targets:
            opts["slo"] = {None: dict(self.slo_targets)}
        if self.speculative:
            opts.update(speculative=self.speculative, spec_tokens=self.spec_tokens,
                        acceptance=self.acceptance, draft_model=self.draft_model)
            if self.draft_overhead_s is not None:
                opts["draft_overhead_s"] = self.draft_overhead_s
        return opts

    def columns(self) -> dict[str, object]:
        """The point as the leading columns of a sweep row."""
        row = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name != "load" and (f.name != "requests" or self.method != PREDICT)
               and (f.name != "max_num_batched_tokens" or self.max_num_batched_tokens)
               and (f.name != "disagg" or self.disagg)
               and (f.name not in ("replicas", "router") or self.replicas != 1)
               and f.name not in _SPEC + ("request_rate", "shape", "slo_targets")}
        if self.speculative:
            row.update({name: getattr(self, name) for name in _SPEC})
        row.update(self.shape)
        row[self.load_name] = self.load if self.request_rate is None else self.request_rate
        row["gpus"] = self.gpus
        return row

    def command(self, model_arg: str | None = None) -> str:
        """The perfmodel command line that evaluates this point alone."""
        parts = ["perfmodel", self.method, _quote(model_arg or self.model), "--gpu", self.gpu]
        if self.engine:
            parts += ["--engine", self.engine]
        if self.precision:
            parts += ["--precision", self.precision]
        if self.kv_dtype:
            parts += ["--kv-dtype", self.kv_dtype]
        for name in ("tp", "ep", "dp", "pp"):
            if getattr(self, name) != 1:
                parts += [f"--{name}", str(getattr(self, name))]
        if self.disagg:
            parts += ["--disagg", self.disagg]
        if self.method == PREDICT:
            parts += ["--batch", str(self.load), "--input-len", str(self.isl),
                      "--output-len", str(self.osl)]
        else:
            parts += (["--request-rate", f"{self.request_rate:g}"]
                      if self.request_rate is not None else ["--concurrency", str(self.load)])
            parts += ["--isl", str(self.isl), "--osl", str(self.osl)]
            for name, value in self.shape:
                parts += [f"--{name.replace('_', '-')}", f"{value:g}"]
            if self.requests:
                parts += ["--num-requests", str(self.requests)]
            if self.max_num_batched_tokens:
                parts += ["--max-num-batched-tokens", str(self.max_num_batched_tokens)]
            if self.replicas != 1:
                parts += ["--replicas", str(self.replicas), "--router",
                          self.router or "round-robin"]
            if self.slo_targets:
                parts += ["--slo", ",".join(f"{name[:-2]}={value * 1e3:g}ms"
                                            for name, value in self.slo_targets)]
            if self.speculative:
                parts += ["--speculative", self.speculative, "--spec-tokens",
                          str(self.spec_tokens), "--acceptance", f"{self.acceptance:g}"]
                if self.draft_model:
                    parts += ["--draft-model", _quote(self.draft_model)]
                if self.draft_overhead_s:
                    parts += ["--draft-overhead", f"{self.draft_overhead_s * 1e3:g}ms"]
        return " ".join(parts)


_SPEC = ("speculative", "spec_tokens", "acceptance", "draft_model", "draft_overhead_s")


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def expand(model: str, *, method: str, gpus: list[str], loads: list[int],
           precisions: list[str | None] = (None,), kv_dtypes: list[str | None] = (None,),
           engines: list[str | None] = (None,), tps: list[int] = (1,), eps: list[int] = (1,),
           dps: list[int] = (1,), pps: list[int] = (1,), isls: list[int] = (1024,),
           osls: list[int] = (128,)) -> list[Point]:
    """Every combination of the axes, in a fixed order (GPU slowest, load fastest)."""
    axes = itertools.product(gpus, precisions, kv_dtypes, engines, tps, eps, dps, pps, isls, osls,
                             loads)
    return [Point(model, gpu, method, prec, kv, eng, tp, ep, dp, pp, load, isl, osl)
            for gpu, prec, kv, eng, tp, ep, dp, pp, isl, osl, load in axes]
