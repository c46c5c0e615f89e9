"""Plant one-line bugs that move results and check that the tests catch each (issue 19, "tests
that bite"; docs/validation.md). Each plant is applied alone to a temporary copy of this tree
(the checkout itself is never touched); the plant's test files then run there, and the plant
is caught when pytest fails.

    PYTHONPATH=. python3 tools/plant_bugs.py              # the tests/test_planted_*.py files
    PYTHONPATH=. python3 tools/plant_bugs.py --existing   # the suite without those files
    PYTHONPATH=. python3 tools/plant_bugs.py --only a,e   # some plants

First the chosen tests run unplanted and must pass (a plant "caught" by a broken test proves
nothing). About 1 min on the 2-core box (--existing: the whole suite once per plant, ~15 min).
The temporary copy has no ../shared beside it, so tests needing it skip as on a fresh clone.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Plant:
    key: str
    what: str
    path: str
    old: str  # one whole line of the file, found exactly once
    new: str
    tests: tuple[str, ...]


PLANTS = (
    Plant("a", "Poisson arrivals replaced by even spacing", "perfmodel/serve/requests.py",
          "                t += rng.expovariate(request_rate)",
          "                t += 1 / request_rate",
          ("tests/test_planted_serve.py",)),
    Plant("b", "a closed loop running C+1 clients", "perfmodel/serve/simulate.py",
          "        first = min(arrivals.concurrency, len(self.specs)) if self.closed else 0",
          "        first = min(arrivals.concurrency + 1, len(self.specs)) if self.closed else 0",
          ("tests/test_planted_serve.py",)),
    Plant("c", "vLLM admitting max_num_seqs + 1", "perfmodel/serve/scheduler.py",
          "    while state.waiting and budget > 0 and len(state.running) < facts.max_num_seqs:\n"
          "        seq = state.waiting[0]\n        _lookup(state, seq)\n"
          "        take = min(seq.remaining, budget)\n"
          "        if take < seq.remaining and not facts.chunked_prefill:\n            break",
          "    while state.waiting and budget > 0 and len(state.running) <= facts.max_num_seqs:\n"
          "        seq = state.waiting[0]\n        _lookup(state, seq)\n"
          "        take = min(seq.remaining, budget)\n"
          "        if take < seq.remaining and not facts.chunked_prefill:\n            break",
          ("tests/test_planted_serve.py",)),
    Plant("d", "ITL percentiles over steps rather than tokens", "perfmodel/serve/metrics.py",
          "    median, p90, p99 = _grouped_quantiles(sorted(Counter(pairs).items()), total,",
          "    median, p90, p99 = _grouped_quantiles(sorted(Counter((v, 1) for v, _ in pairs)"
          ".items()), len(pairs),",
          ("tests/test_planted_serve.py",)),
    Plant("e", "vLLM's KV pool ignoring gpu_memory_utilization", "perfmodel/serve/kv.py",
          "        pool = total * facts.memory_fraction - weights - work",
          "        pool = total - weights - work",
          ("tests/test_planted_serve.py",)),
    Plant("f", "PP throughput scaled by the request share instead of the clients",
          "perfmodel/serve/ranks.py",
          "        scale = full.concurrency / rank.concurrency",
          "        scale = len(full.requests) / len(rank.requests)",
          ("tests/test_planted_serve.py",)),
    Plant("g", "EP dispatch/combine bytes not divided by TP", "perfmodel/cost/parallel.py",
          "            copies = m / par.tp * mlp.top_k",
          "            copies = m * mlp.top_k",
          ("tests/test_planted_parallel.py",)),
    Plant("h", "plan's margin pick ignoring the margin", "perfmodel/plan/search.py",
          "                pick_best(valid, slo.tightened(margin), by_cost, main) if margin > 0 else None,",
          "                pick_best(valid, slo, by_cost, main) if margin > 0 else None,",
          ("tests/test_planted_plan.py",)),
    Plant("i", "calibrate-gpu's peak taken as the median of the repeats, not the best",
          "perfmodel/calibrate/peaks.py",
          "        return self.spread.max",
          "        return self.spread.median",
          ("tests/test_planted_calibrate.py",)),
    Plant("j", "sweep's per-GPU throughput column holding the whole deployment's",
          "perfmodel/plan/evaluate.py",
          "               tok_s_per_gpu=r.throughput.output_tok_s_per_gpu,",
          "               tok_s_per_gpu=r.throughput.output_tok_s,",
          ("tests/test_planted_plan.py",)),
    # the serving features of issues 21 and 22, each against the tests written with it
    Plant("k", "least-loaded routing to the busiest replica", "perfmodel/serve/fleet.py",
          "    return counts.index(min(counts))",
          "    return counts.index(max(counts))",
          ("tests/test_serve_fleet.py",)),
    Plant("l", "the disaggregated KV transfer sized by the smaller shard",
          "perfmodel/serve/disagg_layout.py",
          "    return isl * max(prefill_bytes_per_token, decode_bytes_per_token)",
          "    return isl * min(prefill_bytes_per_token, decode_bytes_per_token)",
          ("tests/test_serve_disagg.py",)),
    Plant("m", "vLLM's prefix hits at token rather than block granularity",
          "perfmodel/serve/prefix_cache.py",
          "        self.unit = engine_block if grain == \"block\" else 1",
          "        self.unit = 1",
          ("tests/test_serve_prefix.py",)),
    Plant("n", "speculation emitting one token a step whatever the acceptance",
          "perfmodel/serve/speculative.py",
          "        self.tokens_per_step = spec.acceptance",
          "        self.tokens_per_step = 1.0",
          ("tests/test_serve_speculative.py",)),
    Plant("o", "Gamma arrivals drawn with shape 1 (Poisson) whatever the burstiness",
          "perfmodel/serve/workload.py",
          "        gaps = [rng.gammavariate(burstiness, scale) for _ in range(count)]",
          "        gaps = [rng.gammavariate(1.0, 1.0 / rate) for _ in range(count)]",
          ("tests/test_serve_workloads.py",)),
    Plant("p", "goodput's TPOT target loosened twofold", "perfmodel/serve/slo.py",
          "                and (self.tpot_s is None or tpot is None or tpot <= self.tpot_s)",
          "                and (self.tpot_s is None or tpot is None or tpot <= 2 * self.tpot_s)",
          ("tests/test_serve_trace_in.py", "tests/test_serve_result.py")),
    Plant("q", "open-loop TTFT counted from the step boundary a request joins at",
          "perfmodel/serve/simulate.py",
          "            self._arrive(self.specs[self.next].arrival)  # TTFT counts from the arrival itself",
          "            self._arrive()",
          ("tests/test_serve_instance.py", "tests/test_serve_fleet.py")),
)


def copy_tree(dest: Path) -> Path:
    """The tracked and untracked-but-not-ignored files of this checkout, under dest/tree."""
    tree = dest / "tree"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tree / name)
    return tree


def pytest(tree: Path, tests: list[str]) -> tuple[int, str]:
    """pytest's exit status and its last line, run in `tree` on its own code."""
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          *tests], cwd=tree, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"})
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    return run.returncode, lines[-1] if lines else run.stderr.strip()[-200:]


def tests_for(plant: Plant, existing: bool, tree: Path) -> list[str]:
    if not existing:
        return list(plant.tests)
    planted = sorted(str(p.relative_to(tree)) for p in (tree / "tests").glob("test_planted_*.py"))
    return ["tests", *(f"--ignore={p}" for p in planted)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--existing", action="store_true",
                        help="run the suite without tests/test_planted_*.py instead")
    parser.add_argument("--only", help="comma-separated plant keys (a-q)")
    args = parser.parse_args()
    chosen = [p for p in PLANTS if not args.only or p.key in args.only.split(",")]
    with tempfile.TemporaryDirectory(prefix="plant-") as tmp:
        tree = copy_tree(Path(tmp))
        for plant in chosen:  # every plant must still match this tree's code, exactly once
            text = (tree / plant.path).read_text()
            if text.count(plant.old) != 1:
                print(f"{plant.key}: the line to plant is not in {plant.path} exactly once; "
                      "update PLANTS")
                return 2
        baseline = sorted({t for p in chosen for t in tests_for(p, args.existing, tree)})
        rc, last = pytest(tree, baseline)
        print(f"unplanted: {'pass' if rc == 0 else 'FAIL'} ({last})")
        if rc != 0:
            return 2
        caught = 0
        for plant in chosen:
            path = tree / plant.path
            original = path.read_text()
            path.write_text(original.replace(plant.old, plant.new))
            try:
                rc, last = pytest(tree, tests_for(plant, args.existing, tree))
            finally:
                path.write_text(original)
            caught += rc != 0
            print(f"{plant.key}: {'caught' if rc else 'MISSED'}  {plant.what} "
                  f"({plant.path}; {last})")
        print(f"{caught} of {len(chosen)} caught")
    return 0 if caught == len(chosen) else 1


if __name__ == "__main__":
    sys.exit(main())
