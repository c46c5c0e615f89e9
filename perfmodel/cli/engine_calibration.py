"""`perfmodel calibrate-engine`: a thin typer command over perfmodel.calibrate.engine_run (serve
a weightless model, measure it with the engine's own benchmark) and perfmodel.validate.engine_fit
(fit an engine profile on the runs). Registered on the app in perfmodel/cli/__init__.py. No
torch here."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from perfmodel.cli.options import friendly_errors


def calibrate_engine(
        model: Annotated[Optional[str], typer.Argument(
            help="Model to serve and measure: a bundled id, a config.json or its folder. "
                 "Omit it to only fit --profile from the runs already in --runs.")] = None,
        runs: Annotated[Path, typer.Option(
            "--runs", help="Folder of runs: this model's run goes to RUNS/LABEL (never "
                           "replaced); the fit reads every run in it.")] = Path("engine-runs"),
        engine: Annotated[str, typer.Option("--engine", help="The engine to run: vllm.")] = "vllm",
        label: Annotated[Optional[str], typer.Option(
            "--label", help="Name of this run's folder (default: the model's name).")] = None,
        serve_args: Annotated[str, typer.Option(
            "--serve-args", help="Extra server arguments, e.g. '--quantization fp8'.")] = "",
        points: Annotated[Optional[str], typer.Option(
            "--points", help="Benchmark points 'ISL:OSL:C:N[:RATE] ...' (default: the "
                             "design of docs/serving.md, 'Engine profiles').")] = None,
        profile: Annotated[Optional[Path], typer.Option(
            "--profile", help="Fit an engine profile on every run in --runs and write it "
                              "here (YAML).")] = None,
        gpu: Annotated[str, typer.Option(
            "--gpu", help="The GPU profile the runs' box is priced with in the fit.")]
        = "h200-measured",
        port: Annotated[int, typer.Option("--port", help="The server's port on 127.0.0.1.")]
        = 8011) -> None:
    """Measure a serving engine on this box with its own benchmark, and fit an engine profile."""
    from perfmodel.calibrate.engine_bench import DEFAULT_POINTS, parse_points

    with friendly_errors():
        if model is None and profile is None:
            from perfmodel.errors import WorkloadError
            raise WorkloadError("give a MODEL to run, or --profile FILE to fit a profile on "
                                "--runs, or both")
        if profile is not None:
            from perfmodel.outpath import check_out_path
            check_out_path(profile, folder_ok=False, flag="--profile")
        if runs.exists() and not runs.is_dir():
            from perfmodel.errors import WorkloadError
            raise WorkloadError(f"--runs {runs} is not a folder; pass a folder for the runs")
        if model is not None:
            run = _engine_run(model, engine, label, serve_args,
                              parse_points(points or DEFAULT_POINTS), port)
            typer.echo(f"wrote {_run(run, runs)}")
        if profile is not None:
            from perfmodel.validate.engine_fit import write_profile
            typer.echo(write_profile(runs, profile, gpu))


def _engine_run(model: str, engine: str, label: str | None, serve_args: str, points, port: int):
    import shlex

    from perfmodel.calibrate.engine_run import EngineRun
    from perfmodel.model.source import load_model_config

    import re

    from perfmodel.errors import WorkloadError

    if not 1024 <= port <= 65535:
        raise WorkloadError(f"--port {port}: use a free port from 1024 to 65535")
    cfg = load_model_config(model)
    name = label or cfg.model_id.rsplit("/", 1)[-1]
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise WorkloadError(f"--label {name!r}: use letters, digits, '.', '_' and '-' (it names "
                            "a folder inside --runs)")
    return EngineRun(engine, cfg.model_id, dict(cfg.config), name,
                     tuple(shlex.split(serve_args)), points, port)


def _run(run, runs: Path) -> Path:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
        TimeElapsedColumn

    from perfmodel.calibrate.engine_run import run_engine

    from perfmodel.calibrate.engine_run import EngineRunError, engine_version

    if (runs / run.label).exists():
        raise EngineRunError(f"{runs / run.label} exists; calibrate-engine never replaces a "
                             "run: pick another --label or --runs folder")
    engine_version(run.engine)
    try:
        runs.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EngineRunError(f"--runs {runs}: cannot create it ({exc.strerror}); pass a "
                             "writable folder") from None
    with Progress(TextColumn(f"{run.label}: {{task.description}}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), transient=False) as bar:
        task = bar.add_task("starting the engine", total=len(run.points))

        def on_point(done: int, total: int) -> None:
            bar.update(task, completed=done, description="benchmark points")

        try:
            return run_engine(run, runs, on_point)
        except KeyboardInterrupt:
            typer.echo(f"interrupted: no run written under {runs / run.label}", err=True)
            raise typer.Exit(130) from None
