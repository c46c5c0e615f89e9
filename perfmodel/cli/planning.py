"""The `perfmodel sweep` and `perfmodel plan` commands (registered on the app in
perfmodel/cli/__init__.py).

Thin like the rest of the CLI: parse the lists, build points, call plan/, render with report/.
Nothing heavy is imported at start-up; each command imports what it uses.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer

from perfmodel.cli.options import friendly_errors
from perfmodel.fitted import PLAN_MARGIN, REQUESTS_PER_CLIENT

ModelArg = Annotated[str, typer.Argument(
    help="A bundled model id, a path to a config.json (or its folder), or a Hub repo id.")]
OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", help="Write every row to FILE.csv, FILE.jsonl or FILE.parquet (needs pyarrow).")]
PlotOpt = Annotated[Optional[Path], typer.Option(
    "--plot", help="Draw the figure to FILE.png or FILE.svg (pip install 'perfmodel[plot]').")]
WorkersOpt = Annotated[Optional[int], typer.Option(
    "--workers", help="Processes to evaluate on, 1-1024 (default: every core).")]


@contextlib.contextmanager
def _progress(enabled: bool = True) -> Iterator[tuple[Any, Any]]:
    """(set_total, advance) callbacks driving a rich progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress("{task.description}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=Console(stderr=True), transient=True, disable=not enabled)
    with bar:
        task = bar.add_task("evaluating", total=None)
        yield (lambda n: bar.update(task, total=n)), (lambda n: bar.advance(task, n))


def sweep(model: ModelArg,
          gpu: Annotated[str, typer.Option("--gpu", help="GPU profiles, comma-separated.")
                         ] = "h100-sxm-measured",
          precision: Annotated[Optional[str], typer.Option(
              "--precision", help="Precisions, comma-separated (default: the config's).")] = None,
          kv_dtype: Annotated[Optional[str], typer.Option(
              "--kv-dtype", help="KV-cache dtypes, comma-separated.")] = None,
          engine: Annotated[Optional[str], typer.Option(
              "--engine", help="Engines, comma-separated: predict's presets with --batch, "
                               "vllm | sglang | trtllm with --concurrency.")] = None,
          tp: Annotated[str, typer.Option("--tp", help="Tensor-parallel degrees.")] = "1",
          ep: Annotated[str, typer.Option("--ep", help="Expert-parallel degrees.")] = "1",
          dp: Annotated[str, typer.Option("--dp", help="Attention data-parallel degrees.")] = "1",
          pp: Annotated[str, typer.Option("--pp", help="Pipeline-parallel degrees.")] = "1",
          batch: Annotated[Optional[str], typer.Option(
              "--batch", "-b", help="Static batches (predict); e.g. 1-256x2. Default 1.")] = None,
          concurrency: Annotated[Optional[str], typer.Option(
              "--concurrency", "-c", help="Requests in flight (serve) instead of --batch.")
          ] = None,
          isl: Annotated[str, typer.Option("--isl", help="Input tokens per request.")] = "1024",
          osl: Annotated[str, typer.Option("--osl", help="Output tokens per request.")] = "128",
          num_requests: Annotated[Optional[int], typer.Option(
              "--num-requests", help="serve: requests simulated per point (default: "
                                            "serve's).")] = None,
          out: OutOpt = None, plot: PlotOpt = None, workers: WorkersOpt = None) -> None:
    """Evaluate a grid (every combination of the lists given) with predict, or with serve when
    --concurrency is given; one row per point, with an `error` column where a point cannot run."""
    import math
    from dataclasses import replace

    from perfmodel.errors import MAX_BATCH, MAX_DEGREE, MAX_REQUESTS, PerfmodelError, whole
    from perfmodel.plan.check import check_grid
    from perfmodel.plan.grid import PREDICT, SERVE, expand
    from perfmodel.plan.parse import parse_ints, parse_strs
    from perfmodel.plan.sweep import check_out_path, run_points, write_rows

    with friendly_errors():
        if batch is not None and concurrency is not None:
            raise PerfmodelError("give --batch (static batches, predict) or --concurrency "
                                 "(serving simulation), not both")
        method = SERVE if concurrency is not None else PREDICT
        _check_outputs(out, plot, check_out_path, [model, *parse_strs(gpu)])
        axes = dict(
            gpus=parse_strs(gpu), precisions=parse_strs(precision) or [None],
            kv_dtypes=parse_strs(kv_dtype) or [None], engines=parse_strs(engine) or [None],
            tps=parse_ints(tp, "--tp", MAX_DEGREE), eps=parse_ints(ep, "--ep", MAX_DEGREE),
            dps=parse_ints(dp, "--dp", MAX_DEGREE), pps=parse_ints(pp, "--pp", MAX_DEGREE),
            isls=parse_ints(isl, "--isl"), osls=parse_ints(osl, "--osl"))
        if not axes["gpus"]:
            raise PerfmodelError("--gpu needs at least one GPU profile")
        loads = parse_ints(concurrency or batch or "1",
                           "--concurrency" if concurrency else "--batch", MAX_BATCH)
        if num_requests is not None:
            whole(num_requests, "--num-requests", MAX_REQUESTS)
        check_grid(model, method=method, workers=workers,
                   points=len(loads) * math.prod(len(v) for v in axes.values()), **axes)
        points = expand(model, method=method, loads=loads, **axes)
        if num_requests and method == SERVE:
            points = [replace(p, requests=num_requests) for p in points]
        with _progress() as (set_total, advance), _interruptible():
            set_total(len(points))
            rows = run_points(points, workers=workers, on_progress=advance)
        if out is not None:
            write_rows(rows, out)
        if plot is not None:
            from perfmodel.report.plot import load_plot

            load_plot(rows, plot, title=model)
    failed = sum(r["error"] is not None for r in rows)
    if out is None:
        from rich.console import Console

        from perfmodel.report.plan_view import points_table

        Console().print(points_table(rows[:50], f"{model}: {len(rows)} points"))
        if len(rows) > 50:
            typer.echo(f"… {len(rows) - 50} more rows; --out FILE.csv writes them all")
    typer.echo(f"{len(rows)} points, {failed} with an error"
               + (f"; wrote {out}" if out else "") + (f"; plot {plot}" if plot else ""), err=True)


def _check_outputs(out: Path | None, plot: Path | None, check_out: Any,
                   inputs: list[str]) -> None:
    """--out and --plot checked before any work (perfmodel/outpath.py), never onto an input."""
    from perfmodel.outpath import input_files

    files = input_files(*inputs)
    if out is not None:
        check_out(out, inputs=files)
    if plot is not None:
        from perfmodel.report.plot import check_plot_path

        check_plot_path(plot, inputs=files)


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    """Ctrl-C while evaluating: one line and exit 130 (the workers ignore SIGINT, so none prints
    a traceback); nothing has been written yet, so every output is as it was."""
    try:
        yield
    except KeyboardInterrupt:
        typer.echo("interrupted: nothing written (existing outputs are unchanged)", err=True)
        raise typer.Exit(130) from None


def plan(model: ModelArg,
         ttft_slo: Annotated[Optional[str], typer.Option(
             "--ttft-slo", help="Mean TTFT target: 500ms, 0.5s, 50 ms.")] = None,
         tpot_slo: Annotated[Optional[str], typer.Option(
             "--tpot-slo", help="Mean TPOT (time per output token) target.")] = None,
         isl: Annotated[int, typer.Option("--isl", help="Input tokens per request.")] = 1024,
         osl: Annotated[int, typer.Option("--osl", help="Output tokens per request.")] = 128,
         gpus: Annotated[str, typer.Option("--gpus", help="GPU profiles to compare.")
                         ] = "h100-sxm-measured,h200-measured,b200",
         max_gpus: Annotated[int, typer.Option(
             "--max-gpus", help="Most GPUs per deployment (TP up to this power of two).")] = 8,
         tp: Annotated[Optional[str], typer.Option(
             "--tp", help="TP degrees to try (default: powers of two up to --max-gpus).")] = None,
         gpu_price: Annotated[Optional[str], typer.Option(
             "--gpu-price", help="Dollars per GPU-hour: h100-sxm-measured=2.49,b200=5.5. With a "
                                 "price for every GPU the front is cost against tokens/s per "
                                 "user.")] = None,
         precisions: Annotated[str, typer.Option(
             "--precisions", help="Precisions to try.")] = "bf16,fp8",
         concurrency: Annotated[Optional[str], typer.Option(
             "--concurrency", "-c", help="Concurrencies to try (default 1-512x2).")] = None,
         engine: Annotated[Optional[str], typer.Option(
             "--engine", help="Engine (serve: vllm | sglang | trtllm; default vllm).")] = None,
         method: Annotated[Optional[str], typer.Option(
             "--method", help="serve | predict (default: serve where this perfmodel has it).")
         ] = None,
         waves: Annotated[int, typer.Option(
             "--waves", help="serve: simulate max(WAVES × concurrency, 40) requests per "
                                    "point (as validate-serving does); 1-100.")
         ] = REQUESTS_PER_CLIENT,
         margin: Annotated[float, typer.Option(
             "--margin", help="Also show the best that keeps this share of headroom "
                                       "on every target (0.1: 10%, serve's median TPOT error "
                                       "against real engines; 0: off; at most 10).")] = PLAN_MARGIN,
         router: Annotated[Optional[str], typer.Option(
             "--router", help="Trade replicas against TP: each deployment fills --max-gpus "
                              "with replicas of its TP (8: 8×TP1, 4×TP2, 2×TP4, 1×TP8) behind "
                              "this router (round-robin | least-loaded | prefix-affinity); "
                              "the concurrency is the fleet's. serve only.")] = None,
         disagg: Annotated[bool, typer.Option(
             "--disagg", help="serve: also search disaggregated prefill/decode layouts "
                              "(docs/plan.md) and say whether they or aggregated ones won, "
                              "and by how much.")] = False,
         speculative: Annotated[Optional[str], typer.Option(
             "--speculative", help="serve: also search every aggregated deployment with "
                                   "speculative decoding (mtp | eagle | ngram | draft-model, "
                                   "as serve takes it) and say whether it won, by how much, "
                                   "and at which concurrency it stops paying.")] = None,
         spec_tokens: Annotated[Optional[int], typer.Option(
             "--spec-tokens", help="With --speculative: k draft tokens per step.")] = None,
         acceptance: Annotated[Optional[float], typer.Option(
             "--acceptance", help="With --speculative: mean tokens per step per sequence, "
                                  "bonus included (vLLM's figure), 1 ≤ a ≤ k + 1.")] = None,
         draft_model: Annotated[Optional[str], typer.Option(
             "--draft-model", help="With --speculative draft-model: the draft's id or "
                                   "config.json.")] = None,
         draft_overhead: Annotated[Optional[str], typer.Option(
             "--draft-overhead", help="With --speculative: host time per drafter pass, e.g. "
                                      "2ms (default 0).")] = None,
         request_rate: Annotated[Optional[str], typer.Option(
             "--request-rate", help="serve: open-loop request rates per second to try "
                                    "(1,2,4) instead of --concurrency; serve's 1,000 requests "
                                    "per point.")] = None,
         burstiness: Annotated[Optional[float], typer.Option(
             "--burstiness", help="With --request-rate: Gamma arrivals of this shape, as "
                                  "serve takes it (1 Poisson, < 1 burstier).")] = None,
         goodput: Annotated[Optional[float], typer.Option(
             "--goodput", help="serve: rank by goodput instead: --ttft-slo/--tpot-slo apply to "
                               "each request (as serve --slo), a point meets them when this "
                               "share of its requests does (0.9: 90%), and good requests/s "
                               "per GPU ranks the points; --margin is then off.")] = None,
         range_ratio: Annotated[Optional[float], typer.Option(
             "--range-ratio", help="serve: lengths uniform over ISL·(1±r) and OSL·(1±r), as "
                                   "serve takes it (0 ≤ r < 1).")] = None,
         prefix_len: Annotated[Optional[int], typer.Option(
             "--prefix-len", help="serve: a shared prefix of N tokens before every prompt "
                                  "(a prompt is then N + ISL tokens), reused by the engines' "
                                  "prefix caches, as serve takes it.")] = None,
         num_prefixes: Annotated[Optional[int], typer.Option(
             "--num-prefixes", help="With --prefix-len: K distinct prefixes, request i "
                                    "taking prefix i mod K.")] = None,
         json_out: Annotated[bool, typer.Option("--json", help="Print the JSON document.")
                             ] = False,
         plot: PlotOpt = None, workers: WorkersOpt = None) -> None:
    """Search GPU type and count, parallelism, precision and concurrency for the deployment that
    meets the latency targets with the most tokens/s per GPU (or the lowest cost), and print
    the Pareto front with the command that reproduces the best point."""
    from perfmodel.errors import MAX_BATCH, MAX_DEGREE, PerfmodelError
    from perfmodel.plan.check import check_grid, check_plan
    from perfmodel.plan.parse import (parse_duration, parse_ints, parse_prices, parse_rates,
                                      parse_strs)
    from perfmodel.plan.search import Slo, plan as run_plan, serve_available

    with friendly_errors():
        gpu_list = parse_strs(gpus)
        if not gpu_list:
            raise PerfmodelError("--gpus needs at least one GPU profile")
        if method not in (None, "serve", "predict"):
            raise PerfmodelError(f"--method is serve or predict, not {method!r}")
        if goodput is not None:
            if not 0 < goodput <= 1:
                raise PerfmodelError(f"--goodput is the share of requests that must meet the "
                                     f"targets, above 0 and at most 1 (0.9: 90%), not "
                                     f"{goodput!r}")
            if ttft_slo is None and tpot_slo is None:
                raise PerfmodelError("--goodput counts the requests meeting --ttft-slo and "
                                     "--tpot-slo; give at least one of them")
            margin = 0.0  # the share met already says how many requests miss
        slo = Slo(*(None if text is None else parse_duration(text, flag=flag)
                    for flag, text in (("--ttft-slo", ttft_slo), ("--tpot-slo", tpot_slo))),
                  goodput)
        prices = parse_prices(gpu_price, gpu_list)
        _check_outputs(None, plot, None, [model, *gpu_list])
        tp_list = parse_ints(tp, "--tp", MAX_DEGREE) if tp else None
        check_plan(max_gpus=max_gpus, tps=tp_list, waves=waves, margin=margin, isl=isl, osl=osl)
        if request_rate is not None and concurrency is not None:
            raise PerfmodelError("give --concurrency (closed loop) or --request-rate (open "
                                 "loop), not both")
        loads = parse_ints(concurrency or "1-512x2", "--concurrency", MAX_BATCH)
        rates = None if request_rate is None else parse_rates(request_rate)
        precision_list = parse_strs(precisions) or [None]
        method = method or ("serve" if serve_available() else "predict")
        spec, shape = _serve_extras(model, method, goodput, speculative, spec_tokens,
                                    acceptance, draft_model, draft_overhead, rates, burstiness,
                                    range_ratio, isl, osl, prefix_len, num_prefixes)
        if disagg and prefix_len:
            raise PerfmodelError("--prefix-len is not modelled with --disagg yet (serve refuses "
                                 "the two together); drop one")
        if router is not None:
            from perfmodel.serve.fleet import ROUTERS

            if router not in ROUTERS or method != "serve":
                raise PerfmodelError(f"--router takes {', '.join(ROUTERS)} (not {router!r}) "
                                     "and the serve method (not --method predict)")
        check_grid(model, method=method, gpus=gpu_list, precisions=precision_list,
                   kv_dtypes=[None], engines=[engine], tps=tp_list or [1], isls=[isl],
                   osls=[osl], workers=workers,
                   points=len(gpu_list) * len(precision_list) * len(rates or loads) * 2
                   * (2 if spec else 1) * (
                       len(tp_list) if tp_list else max_gpus.bit_length()))
        with _progress(not json_out) as (set_total, advance), _interruptible():
            result = run_plan(model, gpus=gpu_list, precisions=precision_list,
                              concurrencies=loads, isl=isl,
                              osl=osl, slo=slo, max_gpus=max_gpus,
                              tps=tp_list, prices=prices,
                              engine=engine, method=method, waves=waves, workers=workers,
                              on_total=set_total, on_progress=advance, margin=margin,
                              router=router, disagg=disagg, speculation=spec,
                              request_rates=rates, shape=shape)
        if plot is not None:
            from perfmodel.report.plot import pareto_plot

            valid = [r for r in result.rows if r["error"] is None and r["tok_s_per_user"]]
            pareto_plot(valid, result.pareto, plot, keys=result.keys, best=result.best,
                        tpot_slo=slo.tpot_s, title=f"{model}, ISL {isl} / OSL {osl}")
    from perfmodel.report.plan_view import plan_json, print_plan

    if json_out:
        typer.echo(json.dumps(plan_json(result, slo), indent=1, allow_nan=False))
    else:
        print_plan(result, slo)


def _serve_extras(model: str, method: str, goodput: float | None, speculative: str | None,
                  spec_tokens: int | None,
                  acceptance: float | None, draft_model: str | None,
                  draft_overhead: str | None, rates: list[float] | None,
                  burstiness: float | None, range_ratio: float | None, isl: int, osl: int,
                  prefix_len: int | None = None, num_prefixes: int | None = None
                  ) -> tuple[Any, dict[str, float]]:
    """plan's speculation (a serve.speculative.Speculation or None) and workload shape
    ({burstiness, range_ratio, prefix_len, num_prefixes} as given), checked as serve checks
    them, before any work."""
    from perfmodel.errors import PerfmodelError

    given = [flag for flag, v in (("--speculative", speculative), ("--request-rate", rates),
                                  ("--burstiness", burstiness), ("--range-ratio", range_ratio),
                                  ("--goodput", goodput), ("--prefix-len", prefix_len),
                                  ("--num-prefixes", num_prefixes)) if v is not None]
    if given and method != "serve":
        raise PerfmodelError(f"{given[0]} needs the serve method (not --method predict)")
    overhead = None
    if draft_overhead is not None:
        from perfmodel.plan.parse import parse_duration
        from perfmodel.serve.speculative import MAX_DRAFT_OVERHEAD_S
        overhead = parse_duration(draft_overhead, allow_zero=True, flag="--draft-overhead",
                                  maximum=MAX_DRAFT_OVERHEAD_S)
    from perfmodel.serve.speculative import speculation
    spec = speculation(speculative, spec_tokens, acceptance, draft_model, 1, overhead)
    if spec is not None and spec.method in ("mtp", "draft-model"):
        from perfmodel.model.architectures import model_spec, text_config
        from perfmodel.model.source import load_model_config
        from perfmodel.serve.drafter import head_spec

        cfg = load_model_config(spec.draft_model or model)  # an unknown draft: one line
        if spec.method == "mtp":  # a checkpoint without MTP layers: one line, not error rows
            head_spec(model_spec(cfg.config, cfg.where), text_config(cfg.config), "mtp",
                      cfg.where)
    shape: dict[str, float] = {}
    if burstiness is not None:
        if rates is None:
            raise PerfmodelError("--burstiness shapes open-loop arrivals; pass it with "
                                 "--request-rate, not --concurrency")
        import random

        from perfmodel.serve.workload import gamma_times
        gamma_times(1, 1.0, burstiness, random.Random(0))  # serve's own one-line check
        shape["burstiness"] = burstiness
    if range_ratio is not None:
        from perfmodel.serve.workload import length_bounds
        length_bounds(isl, osl, range_ratio)  # serve's own one-line checks
        shape["range_ratio"] = range_ratio
    if prefix_len is not None or num_prefixes is not None:
        from perfmodel.serve.requests import Arrivals, RequestSpec
        from perfmodel.serve.shared_prefix import with_prefixes
        with_prefixes(Arrivals((RequestSpec(isl, osl),), 1, None), prefix_len or 0,
                      1 if num_prefixes is None else num_prefixes)  # serve's own checks
        if prefix_len:
            shape["prefix_len"] = prefix_len
            if num_prefixes is not None:
                shape["num_prefixes"] = num_prefixes
    return spec, shape
