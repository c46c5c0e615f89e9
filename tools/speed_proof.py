"""Proof that the serve fast path changed no number: tools/house_proof.py's byte-for-byte
comparison over `serve --json` runs chosen to reach every path of the stepping loop (vLLM,
SGLang, TensorRT-LLM; closed, open and lock-step loops; preemption; SGLang's output clip;
prefix caching; speculative decoding; replicas; disaggregated pools).

    python tools/speed_proof.py --out /tmp/speed-baseline.json     # before the change
    python tools/speed_proof.py --check /tmp/speed-baseline.json   # after it: exit 1 on a change
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import house_proof  # noqa: E402

M8, M70 = "meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B"
H100, H200 = ("--gpu", "h100-sxm-measured"), ("--gpu", "h200-measured")
ENGINES = ("vllm", "sglang", "trtllm")


def _commands() -> tuple[tuple[str, ...], ...]:
    cmds: list[tuple[str, ...]] = []
    for e in ENGINES:
        eng = ("--engine", e)
        cmds += [
            ("serve", M8, *H100, *eng, "--concurrency", "16", "--isl", "1024", "--osl", "256",
             "--num-requests", "200", "--json"),
            ("serve", M8, *H200, *eng, "--max-num-seqs", "1", "--isl", "200", "--osl", "300",
             "--concurrency", "4", "--num-requests", "40", "--json"),
            ("serve", M8, *H200, *eng, "--request-rate", "6", "--isl", "1024", "--osl", "512",
             "--num-requests", "200", "--json"),
            ("serve", M70, *H200, *eng, "--tp", "2", "--isl", "3000", "--osl", "1000",
             "--request-rate", "inf", "--num-requests", "200", "--json"),
            ("serve", M8, *H100, *eng, "--concurrency", "96", "--isl", "2000", "--osl", "2000",
             "--gpu-memory-utilization", "0.3", "--num-requests", "200", "--json"),
            ("serve", M8, *H100, *eng, "--concurrency", "8", "--isl", "512", "--osl", "300",
             "--num-requests", "64", "--lock-step", "--json"),
            ("serve", M8, *H100, *eng, "--concurrency", "12", "--isl", "256", "--osl", "200",
             "--prefix-len", "1024", "--num-prefixes", "3", "--num-requests", "80", "--json"),
            ("serve", M8, *H100, *eng, "--request-rate", "10", "--burstiness", "0.5",
             "--isl", "800", "--osl", "400", "--range-ratio", "0.5", "--num-requests", "150",
             "--json"),
        ]
    cmds += [
        ("serve", M8, *H100, "--engine", "sglang", "--concurrency", "24", "--isl", "500",
         "--osl", "5000", "--num-requests", "48", "--json"),
        ("serve", M8, *H100, "--engine", "sglang", "--concurrency", "64", "--isl", "1500",
         "--osl", "5000", "--gpu-memory-utilization", "0.35", "--num-requests", "96", "--json"),
        ("serve", "deepseek-ai/DeepSeek-V3", "--gpu", "h200-measured", "--tp", "8",
         "--speculative", "mtp", "--spec-tokens", "1", "--acceptance", "1.85",
         "--concurrency", "16", "--isl", "1000", "--osl", "300", "--num-requests", "64",
         "--json"),
        ("serve", M8, *H100, "--speculative", "ngram", "--spec-tokens", "3", "--acceptance",
         "1.5", "--concurrency", "8", "--isl", "1000", "--osl", "300", "--num-requests", "48",
         "--json"),
        ("serve", M8, *H100, "--replicas", "2", "--concurrency", "32", "--isl", "1000",
         "--osl", "300", "--num-requests", "160", "--json"),
        ("serve", M70, *H200, "--disagg", "1x2:1x2", "--request-rate", "4", "--isl", "2000",
         "--osl", "300", "--num-requests", "100", "--json"),
        ("serve", M8, *H100, "--concurrency", "16", "--isl", "1024", "--osl", "256", "--json"),
        ("serve", M8, *H100, "--engine", "sglang", "--concurrency", "16", "--isl", "1024",
         "--osl", "256", "--json"),
        ("serve", M8, *H100, "--engine", "trtllm", "--concurrency", "16", "--isl", "1024",
         "--osl", "256", "--json"),
    ]
    return tuple(cmds)


if __name__ == "__main__":
    house_proof.COMMANDS = _commands()
    sys.exit(house_proof.main(sys.argv[1:]))
