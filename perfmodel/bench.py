"""Benchmark: how long predictions take (`python -m perfmodel.bench [N]`, default 10,000).

Inputs are resolved once (config, GPU profile, estimator), as a sweep would; each prediction
then costs every op of the prefill and of the mean decode step, limit and estimate.
"""

from __future__ import annotations

import itertools
import sys
import time

from perfmodel.model.architectures import model_spec
from perfmodel.model.source import bundled_models, load_model_config
from perfmodel.cost.estimate import estimator_for
from perfmodel.hardware.gpu import bundled_names, load_gpu
from perfmodel.cost.precision import preset
from perfmodel.cost.predict import predict
from perfmodel.cost.workload import Workload


def run(count: int = 10_000) -> tuple[float, int]:
    """Seconds for `count` predictions over bundled models × GPUs × workloads, and how many
    of them carried an estimate."""
    specs = [model_spec(load_model_config(m).config) for m in bundled_models()]
    gpus = [load_gpu(n) for n in bundled_names()]
    precisions = [preset(p) for p in ("bf16", "fp8", "int4")]
    estimators = {(g.name, p.name): estimator_for(g, p, None).estimator
                  for g in gpus for p in precisions}
    workloads = [Workload(b, i, o) for b in (1, 8, 64) for i in (128, 2048, 32768)
                 for o in (2, 256)]
    cases = itertools.cycle(itertools.product(specs, gpus, precisions, workloads))
    estimated = 0
    start = time.perf_counter()
    for _ in range(count):
        spec, gpu, prec, work = next(cases)
        if gpu.peak(prec.compute_dtype) is None:
            prec = precisions[0]
        pred = predict(spec, prec, gpu, work, estimators[(gpu.name, prec.name)])
        estimated += pred.estimate is not None
    return time.perf_counter() - start, estimated


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    seconds, estimated = run(n)
    print(f"{n} predictions in {seconds:.2f} s ({1e3 * seconds / n:.3f} ms each; "
          f"{estimated} with an estimate)")
