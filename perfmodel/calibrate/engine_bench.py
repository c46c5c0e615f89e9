"""Design points of an engine calibration, and the benchmark client that measures them.

A point is `ISL:OSL:C:N[:RATE][+pP][+bB][+rR]`: N requests of ISL random prompt tokens and OSL
output tokens (`--ignore-eos`), sent by C clients in a closed loop (RATE omitted or inf) or as a
stream of RATE requests per second capped at C in flight. Options: `+pP` puts one random prefix
of P tokens before every prompt (`--random-prefix-len P`: a prompt is then P + ISL tokens, all
sharing the first P), `+bB` draws the gaps between requests from a Gamma distribution of shape B
(`--burstiness B`; 1, the default, is Poisson), `+rR` draws each prompt and output length
uniformly from [L·(1 − R), L·(1 + R)] (`--random-range-ratio R`; default 0, fixed lengths).
Each point gets its own seed, so no prompt repeats an earlier one and, without `+p`, the engine's
prefix cache never hits (a hit would shorten the prefill the point measures).

The client is the engine's own benchmark: vLLM's `vllm bench serve` (vllm/benchmarks/serve.py
`add_cli_args` and `main`, v0.26.0), called in one process for every point of a model so that
its start-up (about 10 s of imports) is paid once. Its result JSON (`--save-result`) is the
format `perfmodel validate-serving --runs` reads. Run on the engine's box:
    python -m perfmodel.calibrate.engine_bench URL MODEL_DIR OUT_DIR LABEL SEED POINT [POINT ...]
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

from perfmodel.errors import WorkloadError

MAX_TOKENS = 1 << 20  # per prompt or output: far above any model's context
MAX_REQUESTS = 100_000


@dataclass(frozen=True)
class BenchPoint:
    """One benchmark point: N requests of ISL in / OSL out, C clients, RATE req/s (inf: none),
    a shared prefix of prefix_len tokens, Gamma arrivals of shape burstiness, lengths drawn with
    range_ratio (module docstring)."""

    isl: int
    osl: int
    concurrency: int
    num_prompts: int
    rate: float = math.inf
    prefix_len: int = 0
    burstiness: float = 1.0
    range_ratio: float = 0.0

    @property
    def _options(self) -> str:
        return "".join(f"+{key}{value:g}" for key, value, default in (
            ("p", self.prefix_len, 0), ("b", self.burstiness, 1.0), ("r", self.range_ratio, 0.0))
            if value != default)

    @property
    def tag(self) -> str:
        rate = "inf" if math.isinf(self.rate) else f"{self.rate:g}"
        return f"{self.isl}.{self.osl}.c{self.concurrency}.r{rate}" + \
            self._options.replace("+", ".")

    @property
    def text(self) -> str:
        rate = "" if math.isinf(self.rate) else f":{self.rate:g}"
        return f"{self.isl}:{self.osl}:{self.concurrency}:{self.num_prompts}{rate}{self._options}"


def parse_point(text: str) -> BenchPoint:
    """`ISL:OSL:C:N[:RATE][+pP][+bB][+rR]` as a BenchPoint, or a WorkloadError naming the
    form."""
    head, *options = text.strip().split("+")
    parts = head.split(":")
    form = (f"point {text!r}: use ISL:OSL:C:N[:RATE][+pPREFIX][+bBURSTINESS][+rRANGE], e.g. "
            "1024:256:32:128 or 1024:256:64:200:4+b0.5")
    if len(parts) not in (4, 5):
        raise WorkloadError(form)
    try:
        isl, osl, c, n = (int(p) for p in parts[:4])
        rate = float(parts[4]) if len(parts) == 5 else math.inf
        found = {option[:1]: float(option[1:]) for option in options}
    except (ValueError, IndexError):
        raise WorkloadError(form) from None
    prefix, burst, ratio = found.pop("p", 0.0), found.pop("b", 1.0), found.pop("r", 0.0)
    if found or len(options) != len(set(o[:1] for o in options)):
        raise WorkloadError(form)
    if not (0 < isl <= MAX_TOKENS and 0 < osl <= MAX_TOKENS and 0 < c <= MAX_REQUESTS
            and 0 < n <= MAX_REQUESTS) or not rate > 0 or math.isnan(rate):
        raise WorkloadError(f"{form}; each number ≥ 1 (lengths up to {MAX_TOKENS}, C and N up "
                            f"to {MAX_REQUESTS}), RATE > 0")
    if not (prefix == int(prefix) and 0 <= prefix <= MAX_TOKENS and 0 < burst < math.inf
            and 0 <= ratio < 1):
        raise WorkloadError(f"{form}; PREFIX a whole number ≥ 0, BURSTINESS > 0, "
                            "0 ≤ RANGE < 1")
    return BenchPoint(isl, osl, c, n, rate, int(prefix), burst, ratio)


def parse_points(text: str) -> tuple[BenchPoint, ...]:
    """Space- or comma-separated points."""
    points = tuple(parse_point(p) for p in text.replace(",", " ").split())
    if not points:
        raise WorkloadError("no benchmark points: give --points 'ISL:OSL:C:N[:RATE] ...'")
    return points


# The default design for one model (docs/serving.md, "Engine profiles"): concurrency 1 isolates
# the per-step host cost against the weights' read; 16-256 clients move the batch through the
# CUDA-graph sizes; 2048-8192-token prompts at 32-128 clients fill the 8192-token budget and
# chunk; two Poisson streams load it open-loop. About 3 minutes for an 8B model on an H200.
DEFAULT_POINTS = ("128:128:1:8 1024:256:1:6 8192:256:1:4 1024:256:16:64 1024:256:64:192 "
                  "1024:256:256:512 4096:512:32:96 2048:128:128:384 1024:256:256:80:4 "
                  "512:512:256:120:8")


def bench_args(point: BenchPoint, url: str, model_dir: str, out_dir: str, label: str,
               seed: int) -> list[str]:
    """`vllm bench serve` arguments for one point (result file LABEL.TAG.json in out_dir)."""
    rate = "inf" if math.isinf(point.rate) else f"{point.rate:g}"
    return ["--backend", "vllm", "--base-url", url, "--model", "m", "--tokenizer", model_dir,
            "--dataset-name", "random", "--random-input-len", str(point.isl),
            "--random-output-len", str(point.osl),
            "--random-range-ratio", f"{point.range_ratio:g}",
            "--random-prefix-len", str(point.prefix_len), "--burstiness", f"{point.burstiness:g}",
            "--num-prompts", str(point.num_prompts), "--max-concurrency",
            str(point.concurrency), "--request-rate", rate, "--ignore-eos", "--seed", str(seed),
            "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99",
            "--save-result", "--result-dir", out_dir,
            "--result-filename", f"{label}.{point.tag}.json"]


PREFIX_COUNTERS = ("vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total")


def prefix_counters(text: str) -> tuple[float, float] | None:
    """(queries, hits) of vLLM's prefix-cache counters, summed over engines, from its /metrics
    (Prometheus text); None where the server exports neither."""
    found = {name: 0.0 for name in PREFIX_COUNTERS}
    seen = False
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in found:
            try:
                found[name] += float(line.rsplit(" ", 1)[1])
                seen = True
            except (IndexError, ValueError):
                continue
    return (found[PREFIX_COUNTERS[0]], found[PREFIX_COUNTERS[1]]) if seen else None


def _scrape(url: str) -> tuple[float, float] | None:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
            return prefix_counters(response.read().decode("utf-8", "replace"))
    except OSError:
        return None


def _record_point(path: Path, point: BenchPoint, before, after) -> None:
    """Add to the point's result JSON what vLLM's own leaves out: the dataset's prefix length
    and range ratio, and the prefix-cache queries and hits (tokens, from the server's counters),
    so a reader can tell a point whose prefills the cache shortened."""
    if not path.is_file():
        return
    import json

    doc = json.loads(path.read_text())
    doc["random_prefix_len"] = point.prefix_len
    doc["random_range_ratio"] = point.range_ratio
    if before is not None and after is not None:
        doc["prefix_cache_queries"] = after[0] - before[0]
        doc["prefix_cache_hits"] = after[1] - before[1]
    path.write_text(json.dumps(doc))


def run_points(url: str, model_dir: str, out_dir: str, label: str, seed: int,
               points: tuple[BenchPoint, ...]) -> None:
    """Every point through vLLM's benchmark, in this process (needs vllm importable), each
    result with the prefix-cache tokens the server counted during it."""
    from vllm.benchmarks.serve import add_cli_args, main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    for i, point in enumerate(points):
        parser = FlexibleArgumentParser()
        add_cli_args(parser)
        args = parser.parse_args(bench_args(point, url, model_dir, out_dir, label, seed + i))
        print(f"engine bench: point {i + 1}/{len(points)} {point.text}", flush=True)
        before = _scrape(url)
        main(args)
        _record_point(Path(out_dir) / f"{label}.{point.tag}.json", point, before, _scrape(url))


if __name__ == "__main__":
    url_, model_, out_, label_, seed_ = sys.argv[1:6]
    run_points(url_, model_, out_, label_, int(seed_), tuple(parse_point(p) for p in sys.argv[6:]))
