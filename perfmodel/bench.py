"""Benchmark: how long predictions take (`python -m perfmodel.bench [N]`, default 10,000), the
estimate's grid check (`python -m perfmodel.bench --grid`), and how long serve and plan take
beside one predict (`python -m perfmodel.bench --serve [--quick]`, docs/benchmark.md).

Inputs are resolved once (config, GPU profile, estimator), as a sweep would; each prediction
then costs every op of the prefill and of the mean decode step, limit and estimate. The grid
check runs every bundled model × profile × engine preset × precision × batch × length once,
prefill and decode, and lists where the estimate falls below the limit or falls as load grows.
"""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass, field

from perfmodel.cost.presets import engine_names
from perfmodel.cost.estimate import estimator_for
from perfmodel.cost.ops import forward_ops
from perfmodel.cost.precision import PRECISIONS, on_gpu, preset
from perfmodel.cost.predict import predict
from perfmodel.cost.roofline import cost
from perfmodel.cost.workload import Workload
from perfmodel.hardware.gpu import bundled_names, load_gpu
from perfmodel.model.architectures import model_spec
from perfmodel.model.source import bundled_models, load_model_config

GRID_BATCHES = (1, 2, 8, 32, 128, 512)
GRID_LENGTHS = (128, 1024, 8192, 32768, 131072)


def run(count: int = 10_000) -> tuple[float, int]:
    """Seconds for `count` predictions over bundled models × GPUs × workloads, and how many
    of them carried an estimate. Wall time; run_cpu gives the same loop's CPU time, which a
    busy machine does not inflate."""
    wall, _, estimated = run_cpu(count)
    return wall, estimated


def run_cpu(count: int = 10_000) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, predictions with an estimate) of `count` predictions."""
    specs = [model_spec(load_model_config(m).config) for m in bundled_models()]
    gpus = [load_gpu(n) for n in bundled_names()]
    precisions = [preset(p) for p in ("bf16", "fp8", "int4")]
    estimators = {(g.name, p.name): estimator_for(g, p, None).estimator
                  for g in gpus for p in precisions}
    workloads = [Workload(b, i, o) for b in (1, 8, 64) for i in (128, 2048, 32768)
                 for o in (2, 256)]
    cases = itertools.cycle(itertools.product(specs, gpus, precisions, workloads))
    estimated = 0
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        spec, gpu, prec, work = next(cases)
        if gpu.peak(prec.compute_dtype) is None:
            prec = precisions[0]
        pred = predict(spec, prec, gpu, work, estimators[(gpu.name, prec.name)])
        estimated += pred.estimate is not None
    return time.perf_counter() - start, time.process_time() - cpu, estimated


@dataclass
class GridCheck:
    """What the grid check found: points checked, and each failure as a readable line."""

    points: int = 0
    below_limit: list[str] = field(default_factory=list)
    falls: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _phase_steps(spec, prec, phase, batches, lengths):
    """forward_ops of one step at every (batch, length) of the grid."""
    return {(b, n): forward_ops(spec, prec, phase, b, n if phase == "prefill" else 1, n)
            for b in batches for n in lengths}


def check_grid(models=None, gpus=None, engines=None, precisions=PRECISIONS,
               batches=GRID_BATCHES, lengths=GRID_LENGTHS) -> GridCheck:
    """Prefill (B, T) and decode (B, C) steps over the grid, each computed once: the estimate
    must never fall below the limit, nor fall as B or the length grows. The mean decode step
    of a prediction averages such steps, so it inherits both properties."""
    found, start = GridCheck(), time.perf_counter()
    specs = {m: model_spec(load_model_config(m).config) for m in models or bundled_models()}
    profiles = [load_gpu(n) for n in gpus or bundled_names()]
    steps: dict = {}
    for gpu, name in itertools.product(profiles, precisions):
        prec = on_gpu(preset(name), gpu.peak_flops, gpu.name)
        if gpu.peak(prec.compute_dtype) is None:
            continue
        estimators = [(e, estimator_for(gpu, prec, e).estimator) for e in engines or engine_names()]
        limits: dict = {}
        for (model, spec), phase in itertools.product(specs.items(), ("prefill", "decode")):
            key = (model, prec, phase)
            if key not in steps:
                steps[key] = _phase_steps(spec, prec, phase, batches, lengths)
            for engine, est in estimators:
                if est is not None:
                    where = f"{model} {gpu.name} {name} {engine} {phase}"
                    _check(steps[key], gpu, est, limits, where, found, (batches, lengths))
    found.seconds = time.perf_counter() - start
    return found


def _check(grid, gpu, est, limits, where, found: GridCheck, axes) -> None:
    values, memo = {}, {}
    for point, ops in grid.items():
        limit = estimate = 0.0
        for op in ops:
            if op not in limits:
                limits[op] = cost(op, gpu).limit_s
            if op not in memo:
                memo[op] = est(op)
            estimate += memo[op]
            limit += 0.0 if op.fusable else limits[op]
        values[point] = estimate
        found.points += 1
        if estimate < limit * (1 - 1e-9):
            found.below_limit.append(f"{where} B={point[0]} len={point[1]}: estimate "
                                     f"{estimate:.4g} s < limit {limit:.4g} s")
    for (b, n), value in values.items():
        for nxt in ((_next(axes[0], b), n), (b, _next(axes[1], n))):
            if nxt in values and values[nxt] < value * (1 - 1e-9):
                found.falls.append(f"{where} B={b} len={n} -> B={nxt[0]} len={nxt[1]}: "
                                   f"{value:.4g} s -> {values[nxt]:.4g} s")


def _next(axis: tuple[int, ...], value: int) -> int | None:
    i = axis.index(value)
    return axis[i + 1] if i + 1 < len(axis) else None


# `python -m perfmodel.bench --serve`: each command from the shell, timed beside `predict` in the
# same run (docs/benchmark.md gives each as seconds and as a ratio to predict's seconds, which a
# faster or busier machine scales alike). (label, CLI arguments, target in seconds on the
# reference machine or None)
SERVE_COMMANDS = (
    ("predict", "predict meta-llama/Llama-3.1-8B --gpu h100-sxm-measured --json", None),
    ("serve trtllm 20000/2000, 1,000 requests",
     "serve meta-llama/Llama-3.1-8B --gpu h200-measured --engine trtllm --isl 20000 --osl 2000 "
     "--precision fp8 --kv-dtype fp8 --request-rate inf --num-requests 1000 --json", 2.0),
    ("serve vllm 20000/2000, 2,000 requests",
     "serve meta-llama/Llama-3.1-8B --gpu h200-measured --engine vllm --isl 20000 --osl 2000 "
     "--precision fp8 --kv-dtype fp8 --request-rate inf --num-requests 2000 --json", 2.0),
    ("serve sglang 20000/2000, 2,000 requests",
     "serve meta-llama/Llama-3.1-8B --gpu h200-measured --engine sglang --isl 20000 --osl 2000 "
     "--precision fp8 --kv-dtype fp8 --request-rate inf --num-requests 2000 --json", 2.0),
    ("serve vllm C=64, 1,000 requests",
     "serve meta-llama/Llama-3.1-8B --gpu h100-sxm-measured --engine vllm --concurrency 64 "
     "--num-requests 1000 --json", 2.0),
    ("serve one sequence at a time, 2,000 requests of 2000/2000 (4,000,000 steps)",
     "serve meta-llama/Llama-3.1-8B --gpu h200-measured --max-num-seqs 1 --isl 2000 --osl 2000 "
     "--concurrency 4 --num-requests 2000 --json", 2.0),
    ("serve vllm 70B TP2 30000/4000, 2,000 requests",
     "serve meta-llama/Llama-3.1-70B --gpu h200-measured --tp 2 --isl 30000 --osl 4000 "
     "--request-rate inf --num-requests 2000 --json", 2.0),
    ("serve vllm C=64, 1,000,000 requests",
     "serve meta-llama/Llama-3.1-8B --gpu h100-sxm-measured --engine vllm --concurrency 64 "
     "--num-requests 1000000 --json", 20.0),
    ("plan (README example)",
     "plan meta-llama/Llama-3.1-70B --ttft-slo 2s --tpot-slo 50ms --isl 2048 --osl 512", 20.0),
)


def time_commands(commands=SERVE_COMMANDS, repeats: int = 1) -> list[tuple]:
    """(label, command, best wall seconds of `repeats` runs from the shell, target, best CPU
    seconds (user + system) of the same runs, which other jobs on the machine inflate less)
    for each; the first command is the reference the ratios divide by."""
    import resource
    import shlex
    import subprocess

    def children_cpu() -> float:
        use = resource.getrusage(resource.RUSAGE_CHILDREN)
        return use.ru_utime + use.ru_stime

    rows = []
    for label, args, target in commands:
        best = best_cpu = float("inf")
        for _ in range(repeats):
            start, cpu = time.perf_counter(), children_cpu()
            subprocess.run([sys.executable, "-c", "import sys; from perfmodel.cli import main; "
                            "sys.exit(main())", *shlex.split(args)], check=True,
                           stdout=subprocess.DEVNULL)
            best = min(best, time.perf_counter() - start)
            best_cpu = min(best_cpu, children_cpu() - cpu)
        rows.append((label, args, best, target, best_cpu))
    return rows


def serve_table(rows) -> str:
    """The Markdown table of docs/benchmark.md: command, wall seconds and × predict's, CPU
    seconds and × predict's."""
    ref, ref_cpu = rows[0][2], rows[0][4]
    lines = ["| command | wall s | × predict | CPU s | × predict | target |",
             "|---|---|---|---|---|---|"]
    for label, args, seconds, target, cpu in rows:
        goal = "" if target is None else f"≤ {target:g} s"
        lines.append(f"| {label}: `perfmodel {args}` | {seconds:.2f} | {seconds / ref:.1f} | "
                     f"{cpu:.2f} | {cpu / ref_cpu:.1f} | {goal} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--serve"]:
        quick = argv[1:] == ["--quick"]  # leave out the 1,000,000-request run and the plan
        cmds = SERVE_COMMANDS[:-2] if quick else SERVE_COMMANDS
        print(serve_table(time_commands(cmds, repeats=3 if quick else 1)))
        return 0
    if argv[:1] == ["--grid"]:
        found = check_grid()
        print(f"{found.points} grid points in {found.seconds:.1f} s: "
              f"{len(found.below_limit)} below the limit, {len(found.falls)} falling")
        for line in (found.below_limit + found.falls)[:20]:
            print(" ", line)
        return 1 if found.below_limit or found.falls else 0
    if argv and not (argv[0].isdigit() and int(argv[0]) > 0 and len(argv) == 1):
        print("usage: python -m perfmodel.bench [N predictions, default 10000] | --grid | "
              "--serve [--quick]",
              file=sys.stderr)
        return 0 if argv[0] in ("-h", "--help") else 2
    n = int(argv[0]) if argv else 10_000
    seconds, cpu, estimated = run_cpu(n)
    print(f"{n} predictions in {seconds:.2f} s wall, {cpu:.2f} s CPU "
          f"({1e3 * seconds / n:.3f} ms each; {estimated} with an estimate)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
