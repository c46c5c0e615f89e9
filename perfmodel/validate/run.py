"""`python -m perfmodel.validate.run`: measure a model on this machine's GPU, append JSON lines.

    python -m perfmodel.validate.run --model configs/models/meta-llama/Llama-3.1-8B.json \
        --precision bf16 --points prefill:1:1024,decode:8:2048 --out results.jsonl

Each line is one Measurement (Measurement.to_dict: seconds, samples, op_seconds in base units)
plus model, precision, kv_dtype, device name, torch and CUDA versions, date, engine and method.
A line is appended as soon as its point is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from perfmodel.architectures import model_spec
from perfmodel.errors import ConfigError, PerfmodelError
from perfmodel.precision import PRECISIONS, preset
from perfmodel.validate.measurement import Measurement, parse_points


def model_id(path: Path, cfg: dict[str, Any]) -> str:
    """configs/models/ORG/NAME.json -> ORG/NAME; else the config's _name_or_path, else the path."""
    parts = path.with_suffix("").parts
    if "models" in parts and "configs" in parts:
        return "/".join(parts[parts.index("models") + 1:])
    return str(cfg.get("_name_or_path") or path)


def load_config(path: Path) -> dict[str, Any]:
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"no config at {path}; pass the path of a config.json") from None
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON ({error}); pass a config.json") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m perfmodel.validate.run",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, type=Path, help="path of a config.json")
    parser.add_argument("--precision", default="bf16", choices=PRECISIONS)
    parser.add_argument("--points", required=True,
                        help="comma-separated PHASE:BATCH:TOKENS, e.g. decode:1:1024")
    parser.add_argument("--out", required=True, type=Path, help="JSON-lines file to append to")
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except PerfmodelError as error:
        if os.environ.get("PERFMODEL_DEBUG") == "1":
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    points = parse_points(args.points)
    cfg = load_config(args.model)
    spec, precision = model_spec(cfg), preset(args.precision)
    from perfmodel.validate.timing import environment, sweep

    header = {"model": model_id(args.model, cfg), "config": str(args.model),
              "precision": precision.name, "kv_dtype": precision.base_dtype,
              **environment(args.device)}
    print(f"config: {args.model}; precision: {precision.label}, KV {precision.base_dtype}; "
          f"device: {header['device_name']}", flush=True)

    def write(measurement: Measurement) -> None:
        with open(args.out, "a") as handle:
            handle.write(json.dumps({**header, **measurement.to_dict()}) + "\n")
        print(_summary(measurement), flush=True)

    sweep(spec, precision, points, device=args.device,
          on_skip=lambda note: print(note, file=sys.stderr, flush=True), on_result=write)
    return 0


def _summary(m: Measurement) -> str:
    top = sorted(m.op_seconds.items(), key=lambda item: -item[1])[:6]
    ops = ", ".join(f"{name} {seconds * 1e3:.3f}" for name, seconds in top)
    return (f"{m.phase:7s} b={m.batch:<4d} tokens={m.tokens:<6d} {m.seconds * 1e3:9.3f} ms "
            f"(n={len(m.samples)}, kernels {m.kernel_seconds * 1e3:.3f} ms in {m.kernels}) "
            f"top ms: {ops}")


if __name__ == "__main__":
    sys.exit(main())
