"""Proof that a change to serve's result left its output alone: run `perfmodel serve` over every
option that adds a block to its JSON document (--slo, --replicas, --disagg, --speculative,
--trace-in, --burstiness, --prefix-len, --warmup, ...), with `--json` and as the terminal
report, plus `plan` (which reads serve's result), in-process, and write the outputs to one JSON
file (`--out FILE`); `--check FILE` runs them again and compares byte for byte, as
tools/house_proof.py does for its wider set.

    PYTHONPATH=$PWD python tools/serve_proof.py --out /tmp/serve-base.json    # before
    PYTHONPATH=$PWD python tools/serve_proof.py --check /tmp/serve-base.json  # after
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from house_proof import proof_main  # noqa: E402  (tools/ is not a package)

M8, MOE, DSV3 = "meta-llama/Llama-3.1-8B", "Qwen/Qwen3-30B-A3B", "deepseek-ai/DeepSeek-V3"
H100, H200 = ("--gpu", "h100-sxm-measured"), ("--gpu", "h200-measured")
TRACE = "{trace}"  # replaced by a small trace file written in a temporary folder
SERVE: tuple[tuple[str, ...], ...] = (
    (M8, *H100, "--concurrency", "16", "--isl", "1024", "--osl", "256"),
    (M8, *H100, "--engine", "sglang", "--concurrency", "16", "--isl", "1024", "--osl", "256"),
    (M8, *H100, "--engine", "trtllm", "--concurrency", "16", "--isl", "1024", "--osl", "256"),
    (M8, *H200, "--request-rate", "8", "--num-requests", "80", "--slo", "ttft=200ms,tpot=20ms"),
    (M8, *H200, "--trace-in", TRACE, "--slo", "interactive:ttft=1s,tpot=50ms",
     "--slo", "batch:ttft=30s"),
    (M8, *H200, "--trace-in", TRACE, "--speedup", "2"),
    (M8, *H200, "--request-rate", "6", "--burstiness", "0.5", "--num-requests", "80"),
    (M8, *H200, "--request-rate", "6", "--range-ratio", "0.5", "--num-requests", "80"),
    (M8, *H200, "--request-rate", "6", "--length-dist", "lognormal", "--length-cv", "1",
     "--num-requests", "60"),
    (M8, *H200, "--concurrency", "8", "--replicas", "2", "--router", "least-loaded",
     "--num-requests", "60"),
    (M8, *H200, "--concurrency", "8", "--replicas", "2", "--replicas-per-gpu", "2",
     "--gpu-memory-utilization", "0.45", "--num-requests", "60", "--slo", "ttft=1s"),
    (M8, *H200, "--concurrency", "8", "--disagg", "1x1:1x1", "--num-requests", "60"),
    (M8, *H200, "--request-rate", "4", "--disagg", "1x1:1x2", "--num-requests", "60",
     "--warmup", "5"),
    (DSV3, "--gpu", "h200-measured", "--tp", "8", "--concurrency", "8", "--speculative", "mtp",
     "--spec-tokens", "1", "--acceptance", "1.8", "--num-requests", "40"),
    (M8, *H200, "--concurrency", "8", "--speculative", "ngram", "--spec-tokens", "3",
     "--acceptance", "2", "--num-requests", "40"),
    (M8, *H200, "--concurrency", "8", "--speculative", "eagle", "--spec-tokens", "3",
     "--acceptance", "2.5", "--num-requests", "40", "--slo", "tpot=10ms"),
    (M8, *H200, "--concurrency", "8", "--prefix-len", "512", "--num-prefixes", "2",
     "--num-requests", "60"),
    (M8, *H200, "--concurrency", "8", "--prefix-len", "512", "--no-prefix-caching",
     "--num-requests", "60", "--warmup", "8", "--lock-step"),
    (MOE, *H100, "--engine", "vllm@published", "--tp", "2", "--ep", "2", "--concurrency", "8",
     "--num-requests", "40"),
    (M8, *H100, "--concurrency", "400", "--num-requests", "400", "--isl", "8000", "--osl", "2000"),
    (M8, *H100, "--request-rate", "inf", "--num-requests", "50", "--host-overhead", "2ms",
     "--max-num-seqs", "16", "--no-chunked-prefill"),
)
PLAN: tuple[tuple[str, ...], ...] = (
    ("plan", M8, "--gpus", "h100-sxm-measured,h200-measured", "--max-gpus", "2",
     "--concurrency", "1-16x4", "--tpot-slo", "30ms", "--waves", "1", "--workers", "1", "--json"),
    ("plan", M8, "--gpus", "h200-measured", "--max-gpus", "2", "--concurrency", "4,16",
     "--waves", "1", "--workers", "1"),
)


def commands(trace: str) -> list[list[str]]:
    out = []
    for words in SERVE:
        args = ["serve", *(trace if w == TRACE else w for w in words)]
        out += [args + ["--json"], args]
    return out + [list(words) for words in PLAN]


def write_trace(path: Path) -> None:
    rows = ["arrival_s,input_len,output_len,slo_class"]
    for i in range(40):
        rows.append(f"{i * 0.37:.3f},{300 + 97 * (i % 7)},{40 + 13 * (i % 5)},"
                    f"{'batch' if i % 4 == 0 else 'interactive'}")
    path.write_text("\n".join(rows) + "\n")


def run_all() -> dict[str, dict[str, object]]:
    from typer.testing import CliRunner

    from perfmodel.cli import app

    runner = CliRunner()
    out: dict[str, dict[str, object]] = {}
    # one fixed path: the terminal report prints it
    trace = Path(tempfile.gettempdir()) / "perfmodel-serve-proof" / "trace.csv"
    trace.parent.mkdir(exist_ok=True)
    write_trace(trace)
    for args in commands(str(trace)):
        result = runner.invoke(app, args, env={"COLUMNS": "100", "NO_COLOR": "1"})
        key = " ".join(args).replace(str(trace), "TRACE")
        out[key] = {"exit_code": result.exit_code, "stdout": result.stdout}
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            out[key]["exception"] = repr(result.exception)
        print(f"{result.exit_code} {key}", file=sys.stderr)
    return out


def main(argv: list[str]) -> int:
    return proof_main(argv, __doc__, run_all)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
