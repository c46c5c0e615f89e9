"""Issues 9 and 10 on a lent 4-GPU box in one call: collectives at 2 and 4 GPUs, an independent
all-reduce timing, and `validate --tp 2` / `--tp 4` over dense and MoE models, bf16 and fp8.

    PYTHONPATH=. python3 scripts/parallel_device_run.py OUT_DIR [--budget-s 480] [--dry-run]
        [--stages collectives,allreduce_check,tp2,tp4,tp2more]

Each stage appends to its file under OUT_DIR as it goes (a stage that fails or runs out of the
budget leaves what it measured): collectives.json, allreduce_check.json, validate_tp2.jsonl,
validate_tp4.jsonl. --dry-run runs the same stages on the CPU with gloo and tiny points.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

LONG = 1024
TP2_JOBS = [  # (model, precision, points): prefill (B, T) and decode (B, C)
    ("meta-llama/Llama-3.1-8B", "bf16", [["prefill", 1, LONG], ["prefill", 8, LONG],
                                         ["decode", 1, LONG], ["decode", 32, LONG],
                                         ["decode", 128, LONG]]),
    ("Qwen/Qwen3-30B-A3B", "bf16", [["prefill", 1, LONG], ["decode", 1, LONG],
                                    ["decode", 128, LONG]]),
    ("meta-llama/Llama-3.1-70B", "fp8", [["prefill", 1, LONG], ["decode", 1, LONG],
                                         ["decode", 64, LONG]]),
    ("meta-llama/Llama-3.1-8B", "fp8", [["prefill", 1, LONG], ["decode", 1, LONG],
                                        ["decode", 64, LONG]]),
    ("Qwen/Qwen3-32B", "bf16", [["prefill", 1, LONG], ["decode", 1, LONG],
                                ["decode", 64, LONG]]),
    ("Qwen/Qwen3-30B-A3B", "fp8", [["prefill", 1, LONG], ["decode", 1, LONG],
                                   ["decode", 64, LONG]]),
]
TP4_JOBS = [
    ("meta-llama/Llama-3.1-70B", "bf16", [["prefill", 1, LONG], ["decode", 1, LONG],
                                          ["decode", 64, LONG]]),
    ("meta-llama/Llama-3.1-8B", "bf16", [["prefill", 1, LONG], ["decode", 1, LONG],
                                         ["decode", 64, LONG]]),
    ("Qwen/Qwen3-30B-A3B", "bf16", [["prefill", 1, LONG], ["decode", 1, LONG],
                                    ["decode", 64, LONG]]),
]
TP2_MORE_JOBS = [  # stage tp2more (a 2-GPU box, 2026-11-27 session 2): two more dense models
    ("Qwen/Qwen2.5-14B-Instruct", "bf16", [["prefill", 1, LONG], ["decode", 1, LONG],
                                           ["decode", 64, LONG]]),
    ("mistralai/Mistral-Small-24B-Instruct-2501", "bf16", [["prefill", 1, LONG],
                                                           ["decode", 1, LONG],
                                                           ["decode", 64, LONG]]),
]
DRY_JOBS = [("meta-llama/Llama-3.2-1B", "bf16", [["prefill", 1, 16], ["decode", 2, 16]])]


def log(*parts) -> None:
    print(f"[{time.strftime('%H:%M:%S')}]", *parts, flush=True)


def collectives(out: Path, counts: list[int], dry: bool) -> None:
    from perfmodel.calibrate.collectives import measure_collectives
    from perfmodel.calibrate.links import describe_link

    import torch

    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    doc = {"device_name": name, "torch": torch.__version__,
           "nccl": ".".join(map(str, torch.cuda.nccl.version())) if not dry else None,
           "date": time.strftime("%Y-%m-%d"), "link": describe_link(name), "results": {}}
    for n in counts:
        log(f"collectives on {n} GPUs")
        doc["results"][str(n)] = measure_collectives(n, quick=dry,
                                                     backend="gloo" if dry else "nccl")
        out.write_text(json.dumps(doc, indent=1))
        log("best bus bandwidth GB/s", {k: round(v / 1e9, 1) for k, v in
                                         doc["results"][str(n)]["best_bus_bandwidth"].items()})


def allreduce_check(out: Path, counts: list[int], dry: bool) -> None:
    """The independent timing: torchrun, a graph of 100 all-reduces, wall clock."""
    for n in counts:
        log(f"independent all-reduce check on {n} GPUs")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               f"--nproc_per_node={n}", "scripts/allreduce_check.py", str(out), str(n)]
        if dry:
            cmd.append("--gloo")
        subprocess.run(cmd, check=True, timeout=120)


def validate(out: Path, tp: int, jobs, deadline: float, dry: bool) -> None:
    from perfmodel.validate.distributed import measure_tp

    for model, precision, points in jobs:
        if time.time() > deadline:
            log(f"budget spent: skipping TP{tp} {model} {precision}")
            continue
        log(f"validate TP{tp} {model} {precision} {points}")
        try:
            measure_tp([{"model": model, "precision": precision, "points": points}], tp,
                       out=out, backend="gloo" if dry else "nccl", ops=True)
        except Exception:  # noqa: BLE001 - keep the other models' measurements
            traceback.print_exc()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--budget-s", type=float, default=480.0)
    parser.add_argument("--dry-run", action="store_true")
    parser.add_argument("--stages", default="collectives,allreduce_check,tp2,tp4")
    parser.add_argument("--check-gpus", default="2,4")
    args = parser.parse_args()
    for key, value in (("NCCL_NVLS_ENABLE", "0"), ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"),
                       ("NVSHMEM_DISABLE_NVLS", "1")):
        os.environ[key] = value
    started, out, dry = time.time(), args.out, args.dry_run
    out.mkdir(parents=True, exist_ok=True)
    counts = [2] if dry else [2, 4]
    stages = [
        ("collectives", lambda: collectives(out / "collectives.json", counts, dry)),
        ("allreduce_check", lambda: allreduce_check(
            out / "allreduce_check.json",
            [2] if dry else [int(n) for n in args.check_gpus.split(",")], dry)),
        ("tp2", lambda: validate(out / "validate_tp2.jsonl", 2, DRY_JOBS if dry else TP2_JOBS,
                                 started + args.budget_s, dry)),
        ("tp4", lambda: validate(out / "validate_tp4.jsonl", 2 if dry else 4,
                                 DRY_JOBS if dry else TP4_JOBS, started + args.budget_s, dry)),
        ("tp2more", lambda: validate(out / "validate_tp2_more.jsonl", 2,
                                     DRY_JOBS if dry else TP2_MORE_JOBS,
                                     started + args.budget_s, dry)),
    ]
    for name, stage in stages:
        if name not in args.stages.split(","):
            continue
        try:
            stage()
        except Exception:  # noqa: BLE001 - one stage failing must not lose the others
            log(f"stage {name} failed")
            traceback.print_exc()
        log(f"{name} done at {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
