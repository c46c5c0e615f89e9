"""`perfmodel serve` and `perfmodel validate-serving`: thin typer commands over perfmodel.serve
and perfmodel.validate.silicon (registered on the app in perfmodel/cli/__init__.py). No torch
here."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from perfmodel.cli.options import (ActQuantOpt, GpuOpt, JsonOpt, KvOpt, ModelArg, PrecisionOpt,
                                   friendly_errors)

IntOpt = Optional[int]


def _opt(flag: str, text: str):
    return typer.Option(flag, help=text)


MAX_HOST_OVERHEAD_S = 10.0  # host time per engine step; measured ones are ~1-10 ms


def _check_serve_args(model: str, gpu: str, lengths: str | None, trace: Path | None,
                      request_rate: float | None, lock_step: bool,
                      trace_in: str | None = None) -> None:
    """Before any work: --trace's path (perfmodel/outpath.py, never an input of this run) and
    --lock-step only with a closed loop."""
    from perfmodel.errors import WorkloadError
    from perfmodel.outpath import check_out_path, input_files

    if lock_step and request_rate is not None:
        raise WorkloadError("--lock-step keeps closed-loop clients in step; with --request-rate "
                            "(open loop) drop it, or use --concurrency")
    if trace is not None:
        check_out_path(trace, folder_ok=False, flag="--trace",
                       inputs=input_files(model, gpu, lengths, trace_in))


def serve(model: ModelArg, gpu: GpuOpt = "h100-sxm",
          engine: Annotated[str, _opt("--engine", "vllm | sglang | trtllm: whose scheduler, "
                                      "defaults and kernels (docs/serving.md); the newest "
                                      "measured profile of it for this GPU (configs/engines), "
                                      "or ENGINE@VERSION, or ENGINE@published for the preset "
                                      "fitted to published rows.")] = "vllm",
          engine_profile: Annotated[Optional[str], _opt(
              "--engine-profile", "An engine profile YAML (perfmodel calibrate-engine "
              "--profile) instead of the bundled ones.")] = None,
          concurrency: Annotated[IntOpt, _opt("--concurrency", "Closed loop: C requests in "
                                              "flight, the next sent as one ends.")] = None,
          request_rate: Annotated[Optional[float], _opt("--request-rate", "Open loop: Poisson "
                                                        "arrivals per second; inf sends all "
                                                        "at once.")] = None,
          isl: Annotated[int, _opt("--isl", "Prompt tokens per request (I).")] = 1024,
          osl: Annotated[int, _opt("--osl", "Output tokens per request (O).")] = 128,
          lengths: Annotated[Optional[str], _opt("--lengths", "JSONL of {\"input_len\", "
                                                 "\"output_len\"} per request.")] = None,
          num_requests: Annotated[IntOpt, _opt("--num-requests", "Requests to run (default "
                                               "max(10·C, 100), or 1000).")] = None,
          prefix_len: Annotated[int, _opt("--prefix-len", "A prefix of N tokens before every "
                                          "prompt, shared by all requests (a prompt is N + ISL "
                                          "tokens, as vllm bench serve --random-prefix-len)."
                                          )] = 0,
          num_prefixes: Annotated[int, _opt("--num-prefixes", "With --prefix-len: K distinct "
                                            "prefixes, request i taking prefix i mod K.")] = 1,
          prefix_caching: Annotated[bool, typer.Option(
              "--prefix-caching/--no-prefix-caching", help="Engine: reuse the KV of shared "
              "prefixes (on by default in vLLM, SGLang and TensorRT-LLM).")] = True,
          warmup: Annotated[int, _opt("--warmup", "Requests run first and left out of the "
                                      "latency figures, as a benchmark's warm-up.")] = 0,
          lock_step: Annotated[bool, _opt("--lock-step", "Closed loop: the clients stay in "
                                          "lock-step after their first wave, as a benchmark "
                                          "without jitter keeps them (default: they drift "
                                          "apart; docs/serving.md).")] = False,
          max_num_seqs: Annotated[IntOpt, _opt("--max-num-seqs", "Engine: most requests "
                                               "running at once.")] = None,
          max_num_batched_tokens: Annotated[IntOpt, _opt("--max-num-batched-tokens",
                                                         "Engine: token budget per step.")] = None,
          gpu_memory_utilization: Annotated[Optional[float], _opt(
              "--gpu-memory-utilization", "Engine: memory fraction (SGLang: "
              "mem_fraction_static; TensorRT-LLM: free_gpu_memory_fraction).")] = None,
          block_size: Annotated[IntOpt, _opt("--block-size", "Engine: KV block (page) size "
                                             "in tokens.")] = None,
          chunked_prefill: Annotated[Optional[bool], typer.Option(
              "--chunked-prefill/--no-chunked-prefill", help="Engine: chunk long prefills "
              "(default: the engine's).")] = None,
          precision: PrecisionOpt = None, kv_dtype: KvOpt = None, act_quant: ActQuantOpt = None,
          tp: Annotated[int, _opt("--tp", "Tensor parallelism.")] = 1,
          ep: Annotated[int, _opt("--ep", "Expert parallelism.")] = 1,
          dp: Annotated[int, _opt("--dp", "Attention data parallelism.")] = 1,
          pp: Annotated[int, _opt("--pp", "Pipeline parallelism.")] = 1,
          replicas: Annotated[Optional[int], _opt(
              "--replicas", "Engine instances of this TP/EP/DP/PP layout, each on its own "
              "GPUs, behind --router (docs/serving.md, Fleets); default 1.")] = None,
          router: Annotated[Optional[str], _opt("--router", "With --replicas: round-robin | "
                                      "least-loaded (fewest waiting + running requests) | "
                                      "prefix-affinity (same prefix id, same replica); "
                                      "default round-robin.")]
          = None,
          replicas_per_gpu: Annotated[int, _opt(
              "--replicas-per-gpu", "With --replicas: replicas sharing each GPU (its memory "
              "by --gpu-memory-utilization each, its compute time-shared).")] = 1,
          seed: Annotated[int, _opt("--seed", "Seed of the Poisson arrivals.")] = 0,
          burstiness: Annotated[Optional[float], _opt(
              "--burstiness", "Open loop: Gamma arrivals of shape B as `vllm bench serve "
              "--burstiness` draws them (1 Poisson, < 1 burstier, inf evenly spaced; "
              "docs/serving.md).")] = None,
          range_ratio: Annotated[Optional[float], _opt(
              "--range-ratio", "Lengths uniform over [I·(1−r), I·(1+r)] and [O·(1−r), "
              "O·(1+r)], as vLLM's --random-range-ratio (0 ≤ r < 1).")] = None,
          length_dist: Annotated[Optional[str], _opt(
              "--length-dist", "fixed | uniform (with --range-ratio) | normal | lognormal "
              "(with --length-cv): lengths drawn around --isl and --osl.")] = None,
          length_cv: Annotated[Optional[float], _opt(
              "--length-cv", "Coefficient of variation (std/mean) of --length-dist normal "
              "or lognormal.")] = None,
          trace_in: Annotated[Optional[str], _opt(
              "--trace-in", "Replay a CSV or JSONL trace: arrival, input and output length "
              "per request (Azure, BurstGPT, Mooncake or arrival_s/input_len/output_len "
              "columns; docs/serving.md).")] = None,
          speedup: Annotated[float, _opt("--speedup", "With --trace-in: divide its times by "
                                         "X (1440 replays a day in a minute).")] = 1.0,
          trace_time_unit: Annotated[Optional[str], _opt(
              "--trace-time-unit", "With --trace-in: s | ms, the unit of its numeric times "
              "(default: ms for a `timestamp` column, else s).")] = None,
          slo: Annotated[Optional[list[str]], _opt(
              "--slo", "[CLASS:]ttft=2s,tpot=50ms,e2e=30s: targets for goodput (requests "
              "meeting them per second), per trace SLO class or for all; repeatable.")] = None,
          disagg: Annotated[Optional[str], _opt(
              "--disagg", "Disaggregated prefill/decode: P x TPa : D x TPb, e.g. 2x4:1x8 (two "
              "prefill workers of TP 4, one decode worker of TP 8; docs/serving.md).")] = None,
          prefill_workers: Annotated[IntOpt, _opt("--prefill-workers", "Disaggregated: "
                                                  "prefill workers (P).")] = None,
          prefill_tp: Annotated[IntOpt, _opt("--prefill-tp", "Disaggregated: each prefill "
                                             "worker's TP.")] = None,
          prefill_ep: Annotated[IntOpt, _opt("--prefill-ep", "Disaggregated: each prefill "
                                             "worker's EP.")] = None,
          prefill_dp: Annotated[IntOpt, _opt("--prefill-dp", "Disaggregated: each prefill "
                                             "worker's attention DP.")] = None,
          decode_workers: Annotated[IntOpt, _opt("--decode-workers", "Disaggregated: decode "
                                                 "workers (D).")] = None,
          decode_tp: Annotated[IntOpt, _opt("--decode-tp", "Disaggregated: each decode "
                                            "worker's TP.")] = None,
          decode_ep: Annotated[IntOpt, _opt("--decode-ep", "Disaggregated: each decode "
                                            "worker's EP.")] = None,
          decode_dp: Annotated[IntOpt, _opt("--decode-dp", "Disaggregated: each decode "
                                            "worker's attention DP.")] = None,
          kv_link: Annotated[Optional[str], _opt(
              "--kv-link", "Disaggregated: the link the KV cache crosses: auto (NVLink when "
              "both pools fit one 8-GPU node, else the network; the default), nvlink, "
              "network.")] = None,
          host_overhead: Annotated[Optional[str], _opt(
              "--host-overhead", "Engine: host time per step, e.g. 2ms (default: the value "
              "fitted for the engine, docs/serving.md).")] = None,
          speculative: Annotated[Optional[str], _opt(
              "--speculative", "Speculative decoding: mtp (the checkpoint's MTP layers), "
              "eagle (a one-layer head), ngram (no GPU work) or draft-model (with "
              "--draft-model); docs/serving.md.")] = None,
          spec_tokens: Annotated[IntOpt, _opt("--spec-tokens", "Speculative: k draft tokens "
                                              "per step.")] = None,
          acceptance: Annotated[Optional[float], _opt(
              "--acceptance", "Speculative: mean acceptance length a, tokens per step per "
              "sequence, bonus included (vLLM's figure), 1 ≤ a ≤ k + 1.")] = None,
          draft_model: Annotated[Optional[str], _opt("--draft-model", "Speculative "
                                                     "draft-model: the draft's id or "
                                                     "config.json.")] = None,
          draft_overhead: Annotated[Optional[str], _opt(
              "--draft-overhead", "Speculative: host time per drafter pass, e.g. 2ms "
              "(default 0: the drafter's GPU work only; docs/serving.md).")] = None,
          json_out: JsonOpt = False,
          trace: Annotated[Optional[Path], _opt("--trace", "Write one CSV line per engine "
                                                "step here (with --replicas: and the "
                                                "replica's index).")] = None) -> None:
    """Simulate an engine serving MODEL under load: TTFT, TPOT, ITL, E2E and throughput."""
    from perfmodel.serve import run_serve
    from perfmodel.report.serve_view import LazyProgress, print_serve, write_trace

    progress = LazyProgress("simulating")
    try:
        with friendly_errors():
            _check_serve_args(model, gpu, lengths, trace, request_rate, lock_step, trace_in)
            if router is not None and replicas is None:
                from perfmodel.errors import WorkloadError
                raise WorkloadError("--router sends requests among replicas: give --replicas N "
                                    "or drop --router")
            if kv_link is not None and disagg is None and prefill_workers is None \
                    and decode_workers is None:
                from perfmodel.errors import WorkloadError
                raise WorkloadError("--kv-link is the link of a disaggregated deployment: give "
                                    "--disagg or drop --kv-link")
            if trace is not None and (disagg or any(v is not None for v in (
                    prefill_workers, prefill_tp, prefill_ep, prefill_dp, decode_workers,
                    decode_tp, decode_ep, decode_dp))):
                from perfmodel.errors import WorkloadError
                raise WorkloadError("--trace writes one scheduler's steps; a disaggregated run "
                                    "has many: drop --trace (--json has each pool's load)")
            knobs = {}
            targets = None
            if slo:
                from perfmodel.plan.parse import parse_duration
                from perfmodel.serve.slo import parse_slo
                targets = parse_slo(slo, lambda text, flag: parse_duration(text, flag=flag))
            if draft_overhead is not None:
                from perfmodel.plan.parse import parse_duration
                from perfmodel.serve.speculative import MAX_DRAFT_OVERHEAD_S
                knobs["draft_overhead_s"] = parse_duration(
                    draft_overhead, allow_zero=True, flag="--draft-overhead",
                    maximum=MAX_DRAFT_OVERHEAD_S)
            if host_overhead is not None:
                from perfmodel.plan.parse import parse_duration
                knobs["host_overhead_s"] = parse_duration(
                    host_overhead, allow_zero=True, flag="--host-overhead",
                    maximum=MAX_HOST_OVERHEAD_S)
            report = run_serve(
                model, gpu=gpu, engine=engine, concurrency=concurrency,
                request_rate=request_rate, isl=isl, osl=osl, num_requests=num_requests,
                lengths=lengths, precision=precision, kv_dtype=kv_dtype, act_quant=act_quant,
                tp=tp, ep=ep, dp=dp, pp=pp, seed=seed, on_progress=progress, warmup=warmup,
                replicas=1 if replicas is None else replicas, router=router or "round-robin",
                replicas_per_gpu=replicas_per_gpu,
                stagger=not lock_step, engine_profile=engine_profile,
                prefix_len=prefix_len, num_prefixes=num_prefixes, prefix_caching=prefix_caching,
                keep_trace=trace is not None,
                max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens,
                gpu_memory_utilization=gpu_memory_utilization, block_size=block_size,
                chunked_prefill=chunked_prefill, burstiness=burstiness,
                range_ratio=range_ratio, length_dist=length_dist, length_cv=length_cv,
                trace_in=trace_in, speedup=speedup, trace_time_unit=trace_time_unit,
                slo=targets, disagg=disagg,
                prefill_workers=prefill_workers, prefill_tp=prefill_tp, prefill_ep=prefill_ep,
                prefill_dp=prefill_dp, decode_workers=decode_workers, decode_tp=decode_tp,
                decode_ep=decode_ep, decode_dp=decode_dp, kv_link=kv_link or "auto",
                speculative=speculative,
                spec_tokens=spec_tokens, acceptance=acceptance, draft_model=draft_model, **knobs)
    finally:
        progress.close()
    if trace is not None:
        write_trace(trace, report.outcome.trace)
    if json_out:
        typer.echo(json.dumps({**report.result.to_dict(), "warnings": list(report.warnings)},
                              indent=1, allow_nan=False))
        return
    print_serve(report.result, report.warnings)


def validate_serving(
        json_out: JsonOpt = False,
        csv_path: Annotated[Optional[Path], _opt("--csv", "Write every row, measured and "
                                                 "predicted, to this CSV.")] = None,
        markdown: Annotated[bool, _opt("--markdown", "Print only the error table as Markdown "
                                       "(docs/serving.md).")] = False,
        fit: Annotated[bool, _opt("--fit", "Print the host overhead per step fitted on the "
                                  "training half (sha1(id) even) of the one- and many-GPU "
                                  "rows.")] = False,
        rows: Annotated[str, _opt("--rows", "single: the one-GPU rows (both halves); multi: "
                                  "the TP/EP/attention-DP rows, test half only; held-out: every "
                                  "row of the models bundled after the fit; disagg: the "
                                  "disaggregated rows' test half, and agg against disagg per "
                                  "group (docs/serving.md).")] = "single",
        sample: Annotated[int, _opt("--sample", "With --rows multi: simulate one test row in "
                                    "N (sha1 of the id; 1 runs all).")] = 4,
        runs: Annotated[Optional[Path], _opt(
            "--runs", "Instead: compare serve with a folder of `vllm bench serve "
            "--save-result` JSON files and the server logs beside them (calibrate-engine's "
            "runs, or your own).")] = None,
        engine: Annotated[str, _opt("--engine", "With --runs: the engine spec serve uses "
                                    "(vllm, vllm@0.26.0, vllm@published).")] = "vllm",
        engine_profile: Annotated[Optional[str], _opt(
            "--engine-profile", "With --runs: an engine profile YAML instead.")] = None,
        gpu: Annotated[Optional[str], _opt("--gpu", "With --runs: the GPU profile (default: "
                                           "the bundled measured profile of the runs' GPU).")]
        = None) -> None:
    """Simulate the aggregated serving rows of ../shared/external/aiconfigurator-silicon (one
    GPU, or with --rows multi many) and compare TTFT and TPOT with the measurements, per
    engine and train/test half."""
    import csv
    import dataclasses

    from perfmodel.errors import PerfmodelError, WorkloadError
    from perfmodel.report.serve_view import LazyProgress, markdown_table, print_validation
    from perfmodel.validate import silicon

    with friendly_errors():
        if json_out and markdown:
            raise WorkloadError("give --json (every row) or --markdown (the error table), not "
                                "both")
    if runs is not None:
        _validate_runs(runs, engine, engine_profile, gpu, json_out, markdown)
        return
    with friendly_errors():
        if rows not in ("single", "multi", "held-out", "disagg") or sample < 1:
            raise WorkloadError(f"--rows takes single, multi, held-out or disagg (not {rows!r}) "
                                f"and --sample a whole number ≥ 1 (not {sample})")
        if csv_path is not None:
            from perfmodel.outpath import check_out_path, input_files

            check_out_path(csv_path, folder_ok=False, flag="--csv",
                           inputs=input_files(silicon.CSV))
        if not silicon.CSV.exists():
            from perfmodel.shared_data import missing
            raise PerfmodelError(missing(silicon.CSV))
        if not silicon.serving_rows():
            raise PerfmodelError(f"{silicon.CSV} holds no single-GPU aggregated row of a "
                                 "bundled model")
        progress = LazyProgress("fitting" if fit else "simulating")
        try:
            if fit:  # the training half of every aggregated row, one GPU and many
                import os

                from perfmodel.validate.silicon_multi import train_rows
                train = [r for r in silicon.serving_rows() if silicon.is_training(r)] + \
                    train_rows()
                fitted = silicon.fit_host_overhead(train, workers=os.cpu_count() or 1,
                                                   on_row=progress)
            elif rows == "disagg":
                from perfmodel.plan.disagg_check import choices
                from perfmodel.validate.silicon_disagg import validate_disagg

                results, reasons = validate_disagg(on_row=progress, sample=1)
                skipped = sum(reasons.values())
                picks, _ = choices(on_row=progress)
            elif rows in ("multi", "held-out"):
                from perfmodel.validate.silicon_multi import validate_multi

                results, reasons = validate_multi(on_row=progress, sample=sample,
                                                  held_out=rows == "held-out")
                skipped = sum(reasons.values())
            else:
                results, skipped = silicon.validate_serving(on_row=progress)
                reasons = {"unsupported": skipped}
        finally:
            progress.close()
        if fit:
            typer.echo(json.dumps(fitted, indent=1))
            return
        if not results:
            raise PerfmodelError(f"no {rows}-GPU row could be simulated ({reasons})")
    summary = silicon.error_summary(results)
    if csv_path is not None:
        with csv_path.open("w", newline="") as f:
            out = csv.DictWriter(f, fieldnames=[x.name for x in dataclasses.fields(results[0])])
            out.writeheader()
            out.writerows(dataclasses.asdict(r) for r in results)
    if json_out:
        doc = {"rows": [dataclasses.asdict(r) for r in results], "skipped": skipped,
               "skipped_by_reason": reasons,
               "summary": [{"engine": e, "half": h, **s} for (e, h), s in summary.items()]}
        if rows == "disagg":
            doc["choices"] = picks
        typer.echo(json.dumps(doc, indent=1, allow_nan=False))
    elif markdown:
        typer.echo("\n".join(markdown_table(summary)))
        if rows == "disagg":
            from perfmodel.report.disagg_view import choices_markdown
            typer.echo("\n" + "\n".join(choices_markdown(picks)))
    else:
        print_validation(results, summary, skipped)
        if rows != "single":
            typer.echo("skipped: " + ", ".join(f"{n} {why}" for why, n in reasons.items()))
        if rows == "disagg":
            from perfmodel.report.disagg_view import choices_markdown
            typer.echo("\n".join(choices_markdown(picks)))


def _validate_runs(folder: Path, engine: str, engine_profile: Optional[str], gpu: Optional[str],
                   json_out: bool, markdown: bool) -> None:
    """validate-serving --runs: serve against an engine's own benchmark results."""
    from perfmodel.report.runs_view import print_runs, runs_json, runs_markdown
    from perfmodel.validate.engine_fit import compare, gpu_for, summary
    from perfmodel.validate.engine_runs import read_runs

    with friendly_errors():
        found = read_runs(folder)
        gpu = gpu_for(found, gpu)
        rows = compare(found, gpu, engine, engine_profile)
    summaries = {half: summary(r for r in rows if r.run.half == half)
                 for half in ("train", "test")}
    summaries["all"] = summary(rows)
    profile = rows[0].predicted.engine_profile
    note = (f"serve --engine {engine} on {gpu}: " + (
        f"{profile.engine} {profile.version} profile ({profile.path})" if profile
        else "the preset fitted to published rows") + "; closed loops in lock-step (every "
        "request of a point has the same lengths)")
    if json_out:
        typer.echo(json.dumps(runs_json(rows, summaries, note), indent=1, allow_nan=False))
    elif markdown:
        typer.echo("\n".join(runs_markdown(summaries)))
    else:
        print_runs(rows, summaries, note)
