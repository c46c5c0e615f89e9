"""What the perfmodel commands share: the Annotated option aliases, `friendly_errors` (one line
and exit 2 for a PerfmodelError) and the parser of comma-separated whole numbers. Imports no
command module and nothing heavy.
"""

from __future__ import annotations

import contextlib
import os
from typing import Annotated, Iterator, Mapping, Optional, Sequence

import click
import typer

from perfmodel.errors import PerfmodelError

ModelArg = Annotated[str, typer.Argument(
    help="A bundled model id (see `perfmodel models`), a path to a config.json or a folder "
         "holding one, or any Hugging Face repo id (only its config.json is fetched).")]
GpuOpt = Annotated[str, typer.Option(
    "--gpu", help="A bundled GPU profile (see `perfmodel gpus`) or a path to a profile .yaml.")]
PrecisionOpt = Annotated[Optional[str], typer.Option(
    "--precision", help="bf16 | fp16 | fp8 (W8A8) | int8 (W8A8) | int4 (W4A16) | fp4 (NVFP4 "
                        "W4A4; weight-only where the GPU has no FP4 rate) | mxfp4 (W4A16). "
                        "Default: the config's quantization_config, else the model's dtype.")]
KvOpt = Annotated[Optional[str], typer.Option(
    "--kv-dtype", help="KV-cache dtype: bf16 | fp16 | fp8 | int8. Default: the checkpoint's "
                       "kv_cache_scheme, else the model's dtype (as vLLM and SGLang).")]
ActQuantOpt = Annotated[Optional[str], typer.Option(
    "--act-quant", help="How W8A8/fp4 activations are quantized: static | dynamic-tensor | "
                        "dynamic-token. Default: the config's quantization_config, else "
                        "dynamic-token.")]
BatchOpt = Annotated[int, typer.Option("--batch", "-b", help="Sequences in flight (B).")]
InputOpt = Annotated[int, typer.Option("--input-len", "-i", help="Prompt tokens per sequence (I).")]
OutputOpt = Annotated[int, typer.Option("--output-len", "-o",
                                        help="Generated tokens per sequence (O).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the JSON document (docs/json.md).")]
EngineOpt = Annotated[Optional[str], typer.Option(
    "--engine", help="Engine preset for the estimate: torch-cudagraph | tuned | vllm | sglang | "
                "trtllm (docs/engines.md, docs/serving.md).")]
TpOpt = Annotated[int, typer.Option("--tp", help="Tensor parallelism: GPUs splitting each layer "
                                                 "(docs/parallel.md).")]
PpOpt = Annotated[int, typer.Option("--pp", help="Pipeline parallelism: stages of layers.")]
EpOpt = Annotated[int, typer.Option("--ep", help="Expert parallelism: GPUs the MoE experts "
                                                 "spread over (divides tp·dp).")]
DpOpt = Annotated[int, typer.Option("--dp", help="Attention data parallelism (DeepSeek style; "
                                                 "needs --ep tp·dp).")]


def refuse_empty_paths(commands: Mapping[str, click.Command], args: Sequence[str]) -> None:
    """A usage error for an empty value of any path option (--out "", --plot=, --trace ""):
    typer reads "" as Path("."), the current folder, so an empty output path would write there
    (perfmodel/outpath.py's rule never sees the ""). Checked on the command line before
    parsing, for every command's path options, present and future."""
    name = next((a for a in args if not a.startswith("-")), None)
    command = commands.get(name) if name else None
    if command is None:
        return
    flags = {opt for param in command.params if isinstance(param.type, click.Path)
             for opt in param.opts if opt.startswith("--")}
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        empty = value == "" if eq else (i + 1 < len(args) and args[i + 1] == "")
        if flag in flags and empty:
            raise click.UsageError(f'{flag} "" names no file: an empty path means the '
                                   "current folder; pass a file path",
                                   ctx=click.Context(command, info_name=f"perfmodel {name}"))


@contextlib.contextmanager
def friendly_errors() -> Iterator[None]:
    """A PerfmodelError becomes one line on stderr and exit 2 (a traceback if PERFMODEL_DEBUG=1)."""
    try:
        yield
    except PerfmodelError as exc:
        if os.environ.get("PERFMODEL_DEBUG") == "1":
            raise
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


def comma_ints(text: str, flag: str, maximum: int) -> list[int]:
    """Comma-separated whole numbers from 1 to `maximum` (validate's --batch and --input-len)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:  # not a number, or more than 4,300 digits
        values = []
    if not values or min(values) < 1 or max(values) > maximum:
        raise PerfmodelError(f"{flag} takes whole numbers from 1 to {maximum:,}, "
                             f"comma-separated, not {text[:40]!r}")
    return values
