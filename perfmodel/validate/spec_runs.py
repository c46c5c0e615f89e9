"""Compare serve --speculative with vLLM's own speculative runs: the step time at the measured
acceptance, not the acceptance.

A runs folder as validate-serving --runs reads it (validate/engine_runs.py: `vllm bench serve
--save-result` JSONs beside the server log). From the log: the method and k
(`speculative_config=SpeculativeConfig(method='eagle', model=..., num_spec_tokens=3)`) and the
"SpecDecoding metrics" lines vLLM logs every 10 s (vllm/v1/spec_decode/metrics.py: accepted
and drafted tokens since the last line). The lines logged from the point's start to 10 s after
its end give its acceptance, a = 1 + accepted / drafts with drafts = drafted / k (every draft
of eagle, mtp and draft-model is k tokens long): vLLM's mean acceptance length. The lines cover
10 s each and a point lasts about as long, so a line may also count a neighbouring point's
steps: right where the acceptance is steady (a synthetic rejection sampler, one dataset), not a
per-point measurement otherwise. serve runs the point at that a, and what is compared is the
step time: mean TPOT (= step / a on both sides) and mean ITL where the result has it (one
streamed chunk per step: the step time). ngram drafts only on a match and vLLM's mean counts
the steps that drafted, so its points are not comparable this way (serve assumes every
sequence drafts k tokens every step). Points the runs reader excludes (a JIT compile during the
point, failed requests) are listed with the reason and not priced.

`python -m perfmodel.validate.spec_runs DIR [--gpu G] [--draft-model ID] [--draft-overhead S]
[--json]`
(--draft-model: the draft's config where the path the server loaded is not on this machine,
e.g. meta-llama/Llama-3.2-1B for tools/vllm_h200.sh stage 6's /tmp/draft.)
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from perfmodel.errors import PerfmodelError
from perfmodel.validate.engine_runs import _during, _load, read_runs

_CONFIG = re.compile(r"speculative_config=SpeculativeConfig\(method='([\w-]+)'(?:, model=([^,]+))?"
                     r".*?num_spec_tokens=(\d+)")
_METRICS = re.compile(r"(\d\d-\d\d \d\d:\d\d:\d\d) \[[\w.]+:\d+\] SpecDecoding metrics: "
                      r".*?Accepted: (\d+) tokens, Drafted: (\d+) tokens")
METHODS = {"ngram": "ngram", "eagle": "eagle", "eagle3": "eagle", "mtp": "mtp",
           "deepseek_mtp": "mtp", "draft_model": "draft-model"}


@dataclass(frozen=True)
class SpecLog:
    """What a vLLM server log says about speculation: the method (serve's name), the draft
    model's path as logged, k, and every metrics line (time, accepted, drafted tokens)."""

    method: str
    draft: str | None
    k: int
    lines: tuple[tuple[dt.datetime, int, int], ...]


def spec_log(text: str, year: int = 2026) -> SpecLog | None:
    """The speculative settings and metrics of a vLLM server log; None if it ran without."""
    config = _CONFIG.search(text)
    if not config:
        return None
    method = METHODS.get(config.group(1).lower())
    if method is None:
        return None
    draft = (config.group(2) or "").strip("'\" ") or None
    lines = tuple((dt.datetime.strptime(f"{year}-{m}", "%Y-%m-%d %H:%M:%S"), int(a), int(d))
                  for m, a, d in _METRICS.findall(text))
    return SpecLog(method, None if draft == "None" else draft, int(config.group(3)), lines)


@dataclass(frozen=True)
class SpecPoint:
    """One point: its acceptance from the log, and TPOT and ITL measured against serve's at
    that acceptance (seconds); excluded: why it is not priced."""

    id: str
    method: str
    k: int
    concurrency: int | None
    isl: int
    osl: int
    acceptance: float | None  # vLLM's mean acceptance length during the point
    tpot_s: float
    tpot_pred_s: float | None
    itl_s: float | None
    itl_pred_s: float | None
    excluded: str | None = None

    @property
    def tpot_ratio(self) -> float | None:
        return self.tpot_pred_s / self.tpot_s if self.tpot_pred_s else None


def acceptance(doc: dict, log: SpecLog) -> float | None:
    """vLLM's mean acceptance length over the metrics lines logged during the point (module
    docstring); None when none fall in it."""
    inside = [(a, d) for when, a, d in log.lines if _during((when,), doc, after_s=10)]
    drafted = sum(d for _, d in inside)
    if not drafted:
        return None
    return 1 + sum(a for a, _ in inside) / (drafted / log.k)


def compare(folder: Path | str, gpu: str, draft_model: str | None = None,
            engine: str = "vllm", draft_overhead_s: float | None = None) -> list[SpecPoint]:
    """Every speculative point under folder against serve (lock-step closed loops, as
    validate-serving --runs runs them); draft_overhead_s None: serve's own (the engine
    profile's synchronous host time where the method makes the engine synchronous)."""
    from perfmodel.serve import run_serve

    points = []
    for run in read_runs(folder):
        result = Path(folder) / run.id
        doc = _load(result) or {}
        logs = [p for p in sorted(result.parent.glob("*.log")) + sorted(
            result.parent.parent.glob("*.log")) if p.name != "bench.log"]
        log = next((s for s in (spec_log(p.read_text(errors="replace")) for p in logs) if s),
                   None)
        if log is None:
            continue
        got = None if run.excluded else acceptance(doc, log)
        pred = None
        draft = (draft_model or log.draft) if log.method == "draft-model" else None
        if draft is not None and draft == log.draft and not Path(draft).exists():
            raise PerfmodelError(f"{run.id}: the draft model {draft} its server loaded is not "
                                 "here; pass --draft-model ID (its config, e.g. "
                                 "meta-llama/Llama-3.2-1B)")
        if got and run.model:
            load = ({"concurrency": run.concurrency} if run.request_rate is None
                    else {"request_rate": run.request_rate})
            pred = run_serve(run.model, gpu=gpu, engine=engine, isl=run.isl, osl=run.osl,
                             num_requests=run.num_requests, precision=run.precision,
                             stagger=False, speculative=log.method, spec_tokens=log.k,
                             acceptance=min(got, log.k + 1), draft_model=draft,
                             draft_overhead_s=draft_overhead_s,
                             **load).result
        itl = doc.get("mean_itl_ms")
        points.append(SpecPoint(
            run.id, log.method, log.k, run.concurrency, run.isl, run.osl, got, run.tpot_s,
            pred.tpot_s.mean if pred else None, itl / 1e3 if itl is not None else None,
            pred.itl_s.mean if pred else None, run.excluded))
    return points


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m perfmodel.validate.spec_runs",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("folder")
    parser.add_argument("--gpu", default="h200-measured")
    parser.add_argument("--draft-model", default=None)
    parser.add_argument("--draft-overhead", type=float, default=None,
                        help="serve's host time per drafter pass, seconds (default: serve's "
                             "own, the engine profile's synchronous host time)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        points = compare(args.folder, args.gpu, args.draft_model,
                         draft_overhead_s=args.draft_overhead)
    except PerfmodelError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([{**asdict(p), "tpot_ratio": p.tpot_ratio} for p in points], indent=1))
        return 0
    print("| point | method, k | C | I/O | a (vLLM) | TPOT ms measured / serve | "
          "ITL ms measured / serve | excluded |\n|---|---|---|---|---|---|---|---|")

    def ms(x):
        return "—" if x is None else f"{x * 1e3:.2f}"
    for p in points:
        print(f"| {p.id.split('/')[-1]} | {p.method}, {p.k} | {p.concurrency} | "
              f"{p.isl}/{p.osl} | {'—' if p.acceptance is None else f'{p.acceptance:.2f}'} | "
              f"{ms(p.tpot_s)} / {ms(p.tpot_pred_s)} | {ms(p.itl_s)} / {ms(p.itl_pred_s)} | "
              f"{p.excluded or ''} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
