"""Proof that a refactor changed no behaviour: run a fixed set of perfmodel commands in-process
(typer's CliRunner, `--json`) and write their outputs to one JSON file; with `--check FILE`, run
them again and compare byte for byte with FILE, printing the first difference.

    python tools/house_proof.py --out /tmp/house-baseline.json     # before the change
    python tools/house_proof.py --check /tmp/house-baseline.json   # after it: exit 1 on a change
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Callable

M8, M70, MOE, DSV3 = ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B", "Qwen/Qwen3-30B-A3B",
                      "deepseek-ai/DeepSeek-V3")
SERVE = ["--num-requests", "60", "--json"]
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("predict", M8, "--gpu", "h100-sxm-measured", "--json"),
    ("predict", M8, "--gpu", "h200-measured", "--precision", "fp8", "-b", "16", "-i", "4096",
     "--json"),
    ("predict", M70, "--gpu", "h100-sxm-measured", "--tp", "2", "--json"),
    ("predict", MOE, "--gpu", "b200", "--precision", "fp8", "--kv-dtype", "fp8", "--json"),
    ("predict", M8, "--gpu", "a100-sxm-80gb", "--engine", "vllm", "-b", "8", "--json"),
    ("predict", "openai/gpt-oss-120b", "--gpu", "h200-measured", "--engine", "trtllm", "--json"),
    ("predict", DSV3, "--gpu", "b200", "--tp", "8", "--ep", "8", "--json"),
    ("predict", M8, "--gpu", "mi300x", "--precision", "int4", "--engine", "tuned", "--json"),
    ("serve", M8, "--gpu", "h100-sxm-measured", "--concurrency", "8", *SERVE),
    ("serve", M8, "--gpu", "h200-measured", "--engine", "vllm@published", "--concurrency", "16",
     *SERVE),
    ("serve", M8, "--gpu", "h200-measured", "--engine", "vllm", "--concurrency", "4", *SERVE),
    ("serve", MOE, "--gpu", "h100-sxm-measured", "--engine", "trtllm", "--request-rate", "4",
     *SERVE),
    ("serve", M70, "--gpu", "h100-sxm-measured", "--engine", "sglang", "--tp", "2",
     "--concurrency", "8", *SERVE),
    ("sweep", M8, "--gpu", "h100-sxm-measured,b200", "--precision", "bf16,fp8", "-b", "1,16",
     "--tp", "1,2", "--workers", "1"),
    ("sweep", MOE, "--gpu", "h200-measured", "--concurrency", "1,8", "--num-requests", "40",
     "--workers", "1"),
    ("plan", M8, "--gpus", "h100-sxm-measured,h200-measured", "--max-gpus", "2",
     "--precisions", "bf16,fp8", "--concurrency", "1-16x4", "--tpot-slo", "30ms",
     "--waves", "1", "--workers", "1", "--json"),
    ("plan", M8, "--gpus", "h100-sxm-measured", "--max-gpus", "2", "--method", "predict",
     "--concurrency", "1-64x4", "--workers", "1", "--json"),
)


def run_all() -> dict[str, dict[str, object]]:
    """Every command's exit code and stdout (a sweep's: the CSV it wrote, read back)."""
    from typer.testing import CliRunner

    from perfmodel.cli import app

    runner = CliRunner()
    out: dict[str, dict[str, object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, words in enumerate(COMMANDS):
            args = list(words)
            csv = Path(tmp) / f"sweep{i}.csv"
            if words[0] == "sweep":
                args += ["--out", str(csv)]
            result = runner.invoke(app, args, env={"COLUMNS": "100", "NO_COLOR": "1"})
            key = " ".join(words)
            out[key] = {"exit_code": result.exit_code, "stdout": result.stdout}
            if words[0] == "sweep":
                out[key]["csv"] = csv.read_text() if csv.exists() else None
            if result.exception is not None and not isinstance(result.exception, SystemExit):
                out[key]["exception"] = repr(result.exception)
            print(f"{result.exit_code} {key}", file=sys.stderr)
    return out


def proof_main(argv: list[str], doc: str, run: Callable[[], dict]) -> int:
    """--out FILE writes run()'s outputs; --check FILE runs them again and compares byte for
    byte, printing the first difference (exit 1). Shared with tools/serve_proof.py."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", type=Path, help="write the outputs here")
    group.add_argument("--check", type=Path, help="compare the outputs with this file")
    args = parser.parse_args(argv)
    results = run()
    text = json.dumps(results, indent=1, sort_keys=True) + "\n"
    if args.out is not None:
        args.out.write_text(text)
        print(f"wrote {args.out} ({len(results)} commands)")
        return 0
    old = args.check.read_text()
    if old == text:
        print(f"same bytes: {len(results)} commands, {len(text):,} characters")
        return 0
    for n, (a, b) in enumerate(zip(old.splitlines(), text.splitlines()), 1):
        if a != b:
            print(f"first difference at line {n}:\n- {a}\n+ {b}")
            break
    else:
        print(f"one output is a prefix of the other ({len(old):,} vs {len(text):,} characters)")
    return 1


def main(argv: list[str]) -> int:
    return proof_main(argv, __doc__, run_all)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
