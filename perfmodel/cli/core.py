"""`perfmodel predict`, `models`, `gpus`, `calibrate-gpu` and `validate`: each parses, calls one
core function, renders (registered on the app in perfmodel/cli/__init__.py).

torch is never imported here; calibrate-gpu and validate import it inside their own packages.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from perfmodel.cli.options import (ActQuantOpt, BatchOpt, DpOpt, EngineOpt, EpOpt, GpuOpt,
                                   InputOpt, JsonOpt, KvOpt, ModelArg, OutputOpt, PpOpt,
                                   PrecisionOpt, TpOpt, friendly_errors, comma_ints)


def predict(model: ModelArg, gpu: GpuOpt = "h100-sxm", precision: PrecisionOpt = None,
            kv_dtype: KvOpt = None, act_quant: ActQuantOpt = None,
            batch: BatchOpt = 1, input_len: InputOpt = 1024,
            output_len: OutputOpt = 256, engine: EngineOpt = None, json_out: JsonOpt = False,
            matmul_only: Annotated[bool, typer.Option(
                "--matmul-only", help="List only matmul and attention ops.")] = False,
            revision: Annotated[Optional[str], typer.Option(
                "--revision", help="Hub revision (branch, tag or commit) of the config.")] = None,
            plot: Annotated[Optional[Path], typer.Option(
                "--plot", help="Also draw every op on the GPU's roofline to FILE.png or .svg "
                               "(pip install 'perfmodel[plot]').")] = None,
            tp: TpOpt = 1, pp: PpOpt = 1, ep: EpOpt = 1, dp: DpOpt = 1,
            ) -> None:
    """Predict TTFT, ITL and throughput: the roofline limit and the engine estimate, op by op.

    MODEL is a bundled model id (`perfmodel models`), a path to a config.json or to a folder
    holding one, or any Hugging Face repo id, of which only config.json is fetched.
    """
    from perfmodel.api import run_predict
    from perfmodel.report.render import to_json

    with friendly_errors():
        if plot is not None:
            from perfmodel.outpath import input_files
            from perfmodel.report.plot import check_plot_path

            check_plot_path(plot, inputs=input_files(model, gpu))
        report = run_predict(model, gpu=gpu, precision=precision, kv_dtype=kv_dtype,
                             batch=batch, input_len=input_len, output_len=output_len,
                             engine=engine, revision=revision, act_quant=act_quant,
                             tp=tp, pp=pp, ep=ep, dp=dp)
        if plot is not None:
            from perfmodel.report.plot import roofline_plot

            roofline_plot(report.prediction, plot)
    if json_out:
        doc = to_json(report.prediction, model_id=report.model_id,
                      model_source=report.model_source, estimate_note=report.estimate.note,
                      matmul_only=matmul_only)
        doc["warnings"] = list(report.warnings)
        par = report.prediction.parallel
        doc["parallel"] = par.to_dict() if par is not None else None
        typer.echo(json.dumps(doc, indent=1, allow_nan=False))
        return
    from perfmodel.report.display import print_report

    print_report(report, matmul_only=matmul_only)


def models() -> None:
    """List the bundled models (usable offline)."""
    from perfmodel.api import bundled_model_specs
    from perfmodel.report.display import print_models

    with friendly_errors():
        print_models(bundled_model_specs())


def gpus() -> None:
    """List the bundled GPU profiles; measured ones beside their datasheet, in % of spec."""
    from perfmodel.api import bundled_gpu_specs
    from perfmodel.report.display import print_gpus

    with friendly_errors():
        print_gpus(bundled_gpu_specs())


def calibrate_gpu(
        out: Annotated[Optional[Path], typer.Option(
            "--out", help="Where to write the profile YAML (default ./<name>.yaml).")] = None,
        quick: Annotated[bool, typer.Option(
            "--quick", help="A thinned sweep: about a minute on an H100.")] = False,
        device: Annotated[Optional[str], typer.Option(
            "--device", help="cuda:N or cpu (default cuda:0).")] = None,
        name: Annotated[Optional[str], typer.Option(
            "--name", help="Profile name (default <datasheet>-measured).")] = None,
        gpus: Annotated[Optional[str], typer.Option(
            "--gpus", help="N or all: measure NCCL collectives (and a custom-style "
                           "symmetric-memory all-reduce) over N GPUs instead, into "
                           "collectives/<profile>.yaml beside --out (docs/parallel.md).")] = None,
        ) -> None:
    """Measure this box (matmul FLOP/s per dtype, bandwidth, small kernels) into a profile."""
    if gpus is not None:
        from perfmodel.calibrate.collectives_cli import calibrate_collectives
        from perfmodel.outpath import check_out_path

        with friendly_errors():
            check_out_path(out)
            typer.echo(calibrate_collectives(gpus, out=out, quick=quick, name=name))
        return
    with friendly_errors():
        from perfmodel.calibrate import calibrate
        from perfmodel.hardware.gpu import load_gpu

        try:
            path = calibrate(out=out, quick=quick, device=device, name=name)
        except KeyboardInterrupt:
            typer.echo("interrupted: no profile written (an existing one is unchanged)", err=True)
            raise typer.Exit(130) from None
        spec = load_gpu(str(path))
    peaks = ", ".join(f"{d} {v / 1e12:.4g}" for d, v in spec.peak_flops.items() if v)
    typer.echo(f"wrote {path} in {spec.extra['run_time_s']:.1f} s: peak TFLOP/s {peaks}; "
               f"copy {spec.mem_bandwidth / 1e9:.4g} GB/s")


def validate(model: ModelArg, precision: Annotated[str, typer.Option(
                 "--precision", help="bf16 | fp16 | fp8 | int8 | int4")] = "bf16",
             batch: Annotated[str, typer.Option(
                 "--batch", "-b", help="Batches, comma-separated (e.g. 1,8,32).")] = "1",
             input_len: Annotated[str, typer.Option(
                 "--input-len", "-i", help="Prompt lengths = decode contexts, comma-separated."
             )] = "1024",
             gpu: Annotated[Optional[str], typer.Option(
                 "--gpu", help="Profile to predict with (default: the bundled measured profile "
                               "of this GPU).")] = None,
             engine: EngineOpt = None, json_out: JsonOpt = False,
             out: Annotated[Optional[Path], typer.Option(
                 "--out", help="Append the raw measurements (JSON lines) here.")] = None,
             ops: Annotated[bool, typer.Option("--ops", help="Also compare op by op.")] = False,
             max_prefill_tokens: Annotated[int, typer.Option(
                 "--max-prefill-tokens", help="Measure prefill only where B·I is at most this."
             )] = 32768,
             tp: Annotated[int, typer.Option(
                 "--tp", help="Shard the engine over this many GPUs (Megatron TP, NCCL).")] = 1,
             act_quant: Annotated[Optional[str], typer.Option(
                 "--act-quant", help="How the engine quantizes fp8/int8 activations: static | "
                                     "dynamic-tensor | dynamic-token (default); recorded.")] = None,
             ) -> None:
    """Measure the model on this CUDA GPU (lean PyTorch engine, random weights, CUDA graphs) and
    print predicted limit and estimate beside the measured TTFT and decode step."""
    with friendly_errors():
        from perfmodel.hardware.gpu import load_gpu
        from perfmodel.validate.compare import check_args, compare, default_gpu_profile, measure

        from perfmodel.errors import MAX_BATCH, MAX_DEGREE, MAX_TOKENS, whole

        batches = comma_ints(batch, "--batch", MAX_BATCH)
        lengths = comma_ints(input_len, "--input-len", MAX_TOKENS)
        whole(tp, "--tp", MAX_DEGREE)
        check_args(model, precision, gpu, out, act_quant, tp)
        if tp > 1:
            from perfmodel.validate.distributed import measure_tp, points_for

            records = measure_tp([{"model": model, "precision": precision, "points": points_for(
                batches, lengths, max_prefill_tokens)}], tp, out=out, ops=ops)
        else:
            records = measure(model, precision, batches, lengths, out=out,
                              max_prefill_tokens=max_prefill_tokens, act_quant=act_quant,
                              on_note=lambda note: typer.echo(note, err=True))
        profile = load_gpu(gpu or default_gpu_profile(records[0]["device_name"])) \
            if records else None
        points = [compare(r, profile, engine) for r in records]
    from perfmodel.report.display import print_points

    print_points(points, json_out=json_out, ops=ops)
