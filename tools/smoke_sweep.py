"""Robustness sweep: every bundled model × GPU profile × parallelism × precision × KV dtype ×
engine through predict, and a seeded sample of the same space through serve. A user error is a
PerfmodelError (a refusal that names the fix); anything else is a bug and is listed.

    PYTHONPATH=. python3 tools/smoke_sweep.py [--serve-sample 2500]

About 3 min (predict, 39,600 combinations) and 1 min (serve) on the 2-core box.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import random
import time

from perfmodel.api import run_predict
from perfmodel.errors import PerfmodelError
from perfmodel.hardware.gpu import bundled_names
from perfmodel.model.source import bundled_models
from perfmodel.serve import run_serve

PARALLEL = [(1, 1, 1, 1), (2, 1, 1, 1), (4, 1, 1, 2), (1, 1, 4, 4), (2, 1, 2, 4), (1, 2, 1, 1),
            (8, 1, 1, 8), (2, 2, 1, 1), (1, 4, 1, 1), (1, 2, 2, 2)]  # tp, pp, dp, ep


def sweep(run, combos) -> tuple[int, int, dict]:
    """(ran, refused, bugs by exception kind) over the combinations."""
    ran = refused = 0
    bugs: dict = collections.OrderedDict()
    for combo in combos:
        try:
            run(*combo)
            ran += 1
        except PerfmodelError:
            refused += 1
        except Exception as e:  # noqa: BLE001 - the point is to list them
            bugs.setdefault((type(e).__name__, str(e)[:80]), []).append(combo)
    return ran, refused, bugs


def predict_one(model, gpu, par, precision, kv, engine):
    tp, pp, dp, ep = par
    run_predict(model, gpu=gpu, precision=precision, kv_dtype=kv, batch=4, input_len=512,
                output_len=8, engine=engine, tp=tp, pp=pp, dp=dp, ep=ep)


def serve_one(model, gpu, par, precision, kv, engine, load):
    (tp, pp, dp, ep), (c, isl, osl) = par, load
    m = run_serve(model, gpu=gpu, engine=engine, concurrency=c, num_requests=2 * c, isl=isl,
                  osl=osl, tp=tp, pp=pp, dp=dp, ep=ep, precision=precision, kv_dtype=kv).metrics
    if not (m["ttft_s"]["mean"] > 0 and m["tpot_s"]["mean"] >= 0):
        raise AssertionError("a latency is not positive")
    if m["limit"]["ttft_s"]["mean"] > m["ttft_s"]["mean"] * (1 + 1e-9):
        raise AssertionError("the TTFT limit is above the estimate")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve-sample", type=int, default=2500)
    args = parser.parse_args()
    models, gpus = bundled_models(), bundled_names()
    precisions, kvs = [None, "fp16", "fp8", "int8", "int4"], [None, "fp8"]
    for name, run, combos in (
            ("predict", predict_one, list(itertools.product(
                models, gpus, PARALLEL, precisions, kvs, [None, "vllm", "trtllm"]))),
            ("serve", serve_one, random.Random(1).sample(list(itertools.product(
                models, gpus, PARALLEL, [None, "fp8", "int4", "int8"], kvs,
                ["vllm", "sglang", "trtllm"], [(4, 64, 32), (64, 2048, 16), (1, 8192, 4)])),
                args.serve_sample))):
        start = time.time()
        ran, refused, bugs = sweep(run, combos)
        print(f"{name}: {ran} ran, {refused} refused with a message, {sum(map(len, bugs.values()))}"
              f" bugs, {time.time() - start:.0f} s")
        for kind, where in bugs.items():
            print("  ", kind, len(where), where[:2])


if __name__ == "__main__":
    main()
