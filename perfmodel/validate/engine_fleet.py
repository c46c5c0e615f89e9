"""Engine replicas measured side by side against `serve --replicas`.

A replicas folder holds one run folder per replica (each its own server log and results, as
calibrate-engine or tools/vllm_h200.sh stage 7 writes them), all benchmarked at the same points
at the same time: two vLLM servers on one GPU, each with its own client. A point of the fleet is
the results of one tag across the replicas: its throughput is their sum, its TTFT and TPOT the
request-weighted means. serve simulates the same fleet: as many replicas, each at the memory
fraction its log states, sharing one GPU (`--replicas-per-gpu`), the clients and requests of
all the replicas' clients together, round-robin. Run:
    python -m perfmodel.validate.engine_fleet docs/data/engines/vllm-0.26.0-h200-replicas
"""

from __future__ import annotations

import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from perfmodel.validate.engine_runs import BenchRun, RunsError, read_runs


@dataclass(frozen=True)
class FleetPoint:
    """One point of a fleet of replicas: measured and serve's, side by side."""

    tag: str
    replicas: int
    isl: int
    osl: int
    concurrency: int  # all clients together
    num_requests: int
    measured_tok_s: float
    measured_ttft_s: float
    measured_tpot_s: float
    predicted_tok_s: float
    predicted_ttft_s: float
    predicted_tpot_s: float

    @property
    def tok_s_ratio(self) -> float:
        return self.predicted_tok_s / self.measured_tok_s


def fleet_points(folder: Path | str) -> dict[str, list[BenchRun]]:
    """The results of each point (the result file's tag), one per replica."""
    points: dict[str, list[BenchRun]] = defaultdict(list)
    for run in read_runs(folder):
        tag = Path(run.id).name.split(".", 1)[1].removesuffix(".json")
        points[tag].append(run)
    return dict(points)


def compare_fleet(folder: Path | str, gpu: str, engine: str = "vllm") -> tuple[FleetPoint, ...]:
    """Every point of the replicas folder against serve's fleet of the same replicas."""
    from perfmodel.serve import run_serve

    out = []
    for tag, runs in sorted(fleet_points(folder).items()):
        n = len(runs)
        if n < 2 or any(r.concurrency is None or r.request_rate is not None for r in runs):
            raise RunsError(f"point {tag}: a fleet point needs the closed-loop results of two "
                            f"or more replicas; found {n}")
        memory = {r.settings.gpu_memory_utilization for r in runs}
        if len(memory) != 1 or None in memory:
            raise RunsError(f"point {tag}: the replicas' logs do not state one memory fraction")
        requests = sum(r.num_requests for r in runs)
        first = runs[0]
        m = run_serve(first.model, gpu=gpu, engine=engine, isl=first.isl, osl=first.osl,
                      concurrency=sum(r.concurrency for r in runs), num_requests=requests,
                      replicas=n, replicas_per_gpu=n, gpu_memory_utilization=memory.pop(),
                      precision=first.precision, stagger=False).result
        out.append(FleetPoint(
            tag, n, first.isl, first.osl, sum(r.concurrency for r in runs), requests,
            sum(r.output_tok_s for r in runs),
            sum(r.ttft_s * r.num_requests for r in runs) / requests,
            sum(r.tpot_s * r.num_requests for r in runs) / requests,
            m.throughput.output_tok_s, m.ttft_s.mean, m.tpot_s.mean))
    return tuple(out)


def markdown(points: tuple[FleetPoint, ...]) -> str:
    lines = ["| point | replicas | clients | output tok/s measured / serve | TPOT ms measured / "
             "serve | TTFT ms measured / serve |", "|---|---|---|---|---|---|"]
    for p in points:
        lines.append(f"| {p.isl}/{p.osl} | {p.replicas} | {p.concurrency} | "
                     f"{p.measured_tok_s:.0f} / {p.predicted_tok_s:.0f} "
                     f"({p.tok_s_ratio - 1:+.1%}) | {p.measured_tpot_s * 1e3:.1f} / "
                     f"{p.predicted_tpot_s * 1e3:.1f} | {p.measured_ttft_s * 1e3:.0f} / "
                     f"{p.predicted_ttft_s * 1e3:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown(compare_fleet(sys.argv[1], sys.argv[2] if len(sys.argv) > 2
                                 else "h200-measured")))
