"""Run a serving engine on a weightless model and measure it with the engine's own benchmark.

`perfmodel calibrate-engine MODEL --runs DIR` on a box where the engine imports:
1. writes a weightless model folder (the model's config.json without its quantization_config,
   and a word-level tokenizer whose ids round-trip: token i is the word `t<i>`), which the engine
   serves with random weights (`vllm serve --load-format dummy`), so no checkpoint is needed;
2. starts the server (`python -m vllm.entrypoints.cli.main serve`, its log kept as server.log),
   waits for /health;
3. runs every design point through the engine's benchmark (calibrate/engine_bench.py), one
   result JSON per point;
4. stops the server and writes run.json (engine, version, GPU, model, server arguments,
   points), then moves the folder into place as DIR/LABEL. An existing DIR/LABEL is refused
   before anything starts, and a failed run leaves only DIR/.LABEL.partial, never a half run
   under the final name.
No torch here; the engine runs in its own processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from perfmodel.calibrate.engine_bench import BenchPoint
from perfmodel.errors import PerfmodelError

START_TIMEOUT_S = 600.0  # vLLM 0.26 took 97-155 s on an H200 with dummy weights


class EngineRunError(PerfmodelError):
    """The engine is missing, did not start, or its benchmark failed."""


@dataclass(frozen=True)
class EngineRun:
    """What to run: an engine serving one model with extra server arguments, at these points."""

    engine: str
    model_id: str
    config: dict
    label: str
    serve_args: tuple[str, ...]
    points: tuple[BenchPoint, ...]
    port: int = 8011
    seed: int = 100


def engine_version(engine: str, python: str = sys.executable) -> str:
    """The engine's version as its own package reports it, or an EngineRunError naming the fix."""
    if engine != "vllm":
        raise EngineRunError(f"calibrate-engine runs vllm only (got {engine!r}); SGLang and "
                             "TensorRT-LLM keep their published-row fits (docs/serving.md)")
    done = subprocess.run([python, "-c", "import vllm; print(vllm.__version__)"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise EngineRunError("vLLM does not import here; calibrate-engine runs on the box that "
                             "serves: pip install vllm (or carry the bundle of "
                             "../shared/engines/README.md) and run it there")
    return done.stdout.strip().splitlines()[-1]


SPECIAL = ("<unk>", "<s>", "</s>")  # ids 0, 1, 2: no word starts with them


def weightless_model(config: dict, folder: Path) -> Path:
    """config.json without quantization_config (dummy weights are the model's dtype) and a
    word-level tokenizer of the config's vocabulary: id i ≥ 3 is the word `t<i>`, ids 0-2 the
    special tokens <unk>, <s>, </s>, split on whitespace, so decode then encode gives the same
    ids back. (Special tokens that are prefixes of words, `t1` for <s> say, would be matched
    inside `t1000` and turn prompts into runs of the same few ids, which then hit the engine's
    prefix cache: a fault of ../shared/engines/mkmodel.py, whose runs show 7-44% hits.)"""
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {k: v for k, v in config.items() if k != "quantization_config"}
    (folder / "config.json").write_text(json.dumps(cfg, indent=1))
    vocab_size = int(cfg.get("text_config", cfg)["vocab_size"])
    vocab = {**{f"t{i}": i for i in range(len(SPECIAL), vocab_size)},
             **{name: i for i, name in enumerate(SPECIAL)}}
    tokenizer = {"version": "1.0", "truncation": None, "padding": None,
                 "added_tokens": [{"id": i, "content": name, "single_word": False,
                                   "lstrip": False, "rstrip": False, "normalized": False,
                                   "special": True} for i, name in enumerate(SPECIAL)],
                 "normalizer": None, "pre_tokenizer": {"type": "WhitespaceSplit"},
                 "post_processor": None, "decoder": None,
                 "model": {"type": "WordLevel", "vocab": vocab, "unk_token": SPECIAL[0]}}
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": SPECIAL[1],
         "eos_token": SPECIAL[2], "unk_token": SPECIAL[0], "model_max_length": 1 << 20}))
    (folder / "generation_config.json").write_text(json.dumps({"bos_token_id": 1,
                                                               "eos_token_id": 2}))
    return folder


def gpu_name() -> str | None:
    """The first GPU's name, driver and memory as nvidia-smi reports them, or None."""
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                               "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout else None


def run_engine(run: EngineRun, runs_dir: Path, on_point: Callable[[int, int], None],
               python: str = sys.executable) -> Path:
    """Serve and measure one model (module docstring); the folder DIR/LABEL it wrote."""
    final = runs_dir / run.label
    if final.exists():
        raise EngineRunError(f"{final} exists; calibrate-engine never replaces a run: pick "
                             "another --label or --runs folder")
    version = engine_version(run.engine, python)
    work = runs_dir / f".{run.label}.partial"
    if work.exists():
        shutil.rmtree(work)
    model_dir = weightless_model(run.config, work / "model")
    started = time.time()
    server = _start_server(run, model_dir, work / "server.log", python)
    try:
        up_s = _wait_healthy(server, run.port, work / "server.log")
        _bench(run, model_dir, work, on_point, python)
    finally:
        _stop(server)
    shutil.rmtree(model_dir)
    manifest = {"engine": run.engine, "version": version, "model": run.model_id,
                "label": run.label, "gpu": gpu_name(), "serve_args": list(run.serve_args),
                "points": [p.text for p in run.points], "seed": run.seed,
                "server_start_s": round(up_s, 1), "run_time_s": round(time.time() - started, 1),
                "date": time.strftime("%Y-%m-%d", time.gmtime()),
                "client": "vllm bench serve (vllm.benchmarks.serve.main), --dataset-name random "
                          "--ignore-eos, one seed per point (prefix, burstiness and range "
                          "ratio per point: engine_bench.py)"}
    (work / "run.json").write_text(json.dumps(manifest, indent=1))
    work.rename(final)
    return final


def _start_server(run: EngineRun, model_dir: Path, log: Path, python: str) -> subprocess.Popen:
    command = [python, "-m", "vllm.entrypoints.cli.main", "serve", str(model_dir),
               "--load-format", "dummy", "--port", str(run.port), "--served-model-name", "m",
               *run.serve_args]
    with open(log, "w", encoding="utf-8") as handle:
        handle.write("# " + " ".join(command) + "\n")
        handle.flush()
        return subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                start_new_session=True)


def _wait_healthy(server: subprocess.Popen, port: int, log: Path,
                  timeout_s: float = START_TIMEOUT_S) -> float:
    started = time.time()
    while time.time() - started < timeout_s:
        if server.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                return time.time() - started
        except OSError:
            time.sleep(2)
    tail = " | ".join(log.read_text(errors="replace").splitlines()[-3:])[-400:]
    raise EngineRunError(f"the engine did not start (see {log}): {tail}")


def _bench(run: EngineRun, model_dir: Path, work: Path, on_point, python: str) -> None:
    """The benchmark client in its own process; on_point(done, total) as results appear."""
    results = work / "results"
    command = [python, "-m", "perfmodel.calibrate.engine_bench", f"http://127.0.0.1:{run.port}",
               str(model_dir), str(results), run.label, str(run.seed),
               *(p.text for p in run.points)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[2]), os.environ.get("PYTHONPATH", "")])}
    with open(work / "bench.log", "w", encoding="utf-8") as handle:
        client = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env)
        total = len(run.points)
        while client.poll() is None:
            on_point(len(list(results.glob("*.json"))) if results.exists() else 0, total)
            time.sleep(1)
    found = len(list(results.glob("*.json"))) if results.exists() else 0
    on_point(found, total)
    if client.returncode != 0 or found != total:
        tail = " | ".join((work / "bench.log").read_text(errors="replace").splitlines()[-3:])
        raise EngineRunError(f"the benchmark stopped after {found} of {total} points (see "
                             f"{work / 'bench.log'}): {tail[-400:]}")


def _stop(server: subprocess.Popen) -> None:
    if server.poll() is not None:
        return
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
