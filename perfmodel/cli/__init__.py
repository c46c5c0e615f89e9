"""The perfmodel command line: each command parses, calls one core function, renders.

The app is built here and every command registered on it; the commands live in core (predict,
models, gpus, calibrate-gpu, validate), planning (sweep, plan), serving (serve,
validate-serving) and engine_calibration (calibrate-engine), and share perfmodel.cli.options.
torch is never imported here; calibrate-gpu and validate import it inside their own packages.
"""

from __future__ import annotations

import sys

import click
import typer
from typer.core import TyperGroup

from perfmodel.cli import core, engine_calibration, planning, serving
from perfmodel.cli.options import refuse_empty_paths


class OneLineErrors(TyperGroup):
    """Usage errors (a value of the wrong type, an unknown option, a missing argument, an empty
    path) as one `error:` line that names the fix, exit 2, like every other perfmodel error;
    help with no arguments as usual."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        args = sys.argv[1:] if args is None else list(args)
        try:
            refuse_empty_paths(self.commands, args)
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else exc.format_message())
            code = 2
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "perfmodel"
            click.echo(f"error: {exc.format_message().rstrip('.')}; see '{where} --help'",
                       err=True)
            code = 2
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            code = 130
        if not standalone_mode:
            return code
        sys.exit(code if isinstance(code, int) else 0)

app = typer.Typer(
    help="Roofline performance model for LLM inference: TTFT, ITL and throughput of a model on "
         "a GPU, from its config.json and a measured or datasheet GPU profile.",
    epilog="Output files (--out, --plot, --trace, --csv) are checked before any work: a new or "
           "regular file in an existing folder; an empty path, links, devices, /proc, /sys, "
           "/dev, the filesystem root, the command's own inputs and perfmodel's bundled "
           "configs/ are refused. Bounds: tokens per request ≤ 100,000,000; batch or concurrency ≤ "
           "1,000,000; requests ≤ 10,000,000; parallel degrees ≤ 4096; points per sweep or "
           "plan ≤ 100,000; values per list ≤ 10,000; latency targets ≤ 1 day; "
           "--host-overhead ≤ 10 s; --waves ≤ 100; --workers ≤ 1024.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
    cls=OneLineErrors)


app.command()(core.predict)
app.command()(core.models)
app.command()(core.gpus)
app.command("calibrate-gpu")(core.calibrate_gpu)
app.command()(core.validate)
app.command()(planning.sweep)
app.command()(planning.plan)
app.command()(serving.serve)
app.command("validate-serving")(serving.validate_serving)
app.command("calibrate-engine")(engine_calibration.calibrate_engine)


def main() -> None:
    """Console-script entry point."""
    app()
