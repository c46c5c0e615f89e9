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
        return "batch" if self.method == PREDICT else "concurrency"

    def columns(self) -> dict[str, object]:
        """The point as the leading columns of a sweep row."""
        row = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name != "load" and (f.name != "requests" or self.method != PREDICT)
               and (f.name != "max_num_batched_tokens" or self.max_num_batched_tokens)
               and (f.name != "disagg" or self.disagg)
               and (f.name not in ("replicas", "router") or self.replicas != 1)}
        row[self.load_name] = self.load
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
            parts += ["--concurrency", str(self.load), "--isl", str(self.isl),
                      "--osl", str(self.osl)]
            if self.requests:
                parts += ["--num-requests", str(self.requests)]
            if self.max_num_batched_tokens:
                parts += ["--max-num-batched-tokens", str(self.max_num_batched_tokens)]
            if self.replicas != 1:
                parts += ["--replicas", str(self.replicas), "--router",
                          self.router or "round-robin"]
        return " ".join(parts)


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
