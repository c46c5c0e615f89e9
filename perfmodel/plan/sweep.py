"""Evaluate many points on every core, and write the rows as CSV, JSON lines or Parquet.

Workers are forked processes, each with its own cache of resolved inputs (evaluate.resolve);
points go out in chunks so that a worker resolves a config once and predicts many workloads.
Small grids run in this process: forking costs more than a few hundred predictions.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from perfmodel.errors import PerfmodelError
from perfmodel.outpath import check_out_path as writable
from perfmodel.plan.evaluate import evaluate
from perfmodel.plan.grid import PREDICT, Point

Progress = Callable[[int], None]  # called with the number of points just finished
FORMATS = (".csv", ".jsonl", ".parquet")


def _cost(point: Point) -> float:
    """Rough relative cost, to decide when to fork: a serve point simulates many steps."""
    return (1.0 if not point.parallel else 20.0) if point.method == PREDICT else 100.0


def run_points(points: Sequence[Point], *, workers: int | None = None,
               on_progress: Progress | None = None) -> list[dict[str, Any]]:
    """The rows of `points`, in their order."""
    workers = workers or os.cpu_count() or 1
    if workers == 1 or sum(_cost(p) for p in points) < 400:
        rows = []
        for point in points:
            rows.append(evaluate(point))
            if on_progress:
                on_progress(1)
        return rows
    warm = _warm(points)  # forked workers inherit these resolved inputs and kernel tables
    if on_progress:
        on_progress(len(warm))
    rest = [p for i, p in enumerate(points) if i not in warm]
    chunk = max(1, min(64, math.ceil(len(rest) / (workers * 8))))
    context = multiprocessing.get_context("fork" if "fork" in
                                          multiprocessing.get_all_start_methods() else None)
    results = []
    with context.Pool(workers, initializer=_ignore_interrupt) as pool:
        for row in pool.imap(evaluate, rest, chunksize=chunk):
            results.append(row)
            if on_progress:
                on_progress(1)
    done = iter(results)
    return [warm[i] if i in warm else next(done) for i in range(len(points))]


def _ignore_interrupt() -> None:
    """In a worker: Ctrl-C is the parent's to handle (one line, exit 130), not every worker's
    traceback; the parent's pool terminates the workers on its way out."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _warm(points: Sequence[Point]) -> dict[int, dict[str, Any]]:
    """Evaluate the first predict point of each configuration here, before forking."""
    first: dict[tuple, int] = {}
    for i, p in enumerate(points):
        if p.method == PREDICT:
            first.setdefault((p.model, p.gpu, p.precision, p.kv_dtype, p.engine), i)
    return {i: evaluate(points[i]) for i in first.values()}


def _columns(rows: Iterable[dict[str, Any]]) -> list[str]:
    """Every key of every row, in first-seen order, with `error` last."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    keys.pop("error", None)
    return [*keys, "error"]


def _clean(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def check_out_path(path: Path, inputs: Sequence[Path] = ()) -> None:
    """A clear error before any work when --out names a format we cannot write, or a place no
    file can go or that must not be replaced (perfmodel/outpath.py)."""
    writable(path, folder_ok=False, inputs=inputs)
    if path.suffix not in FORMATS:
        raise PerfmodelError(f"--out must end in {', '.join(FORMATS)}, not {path.name!r}")
    if path.suffix == ".parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise PerfmodelError("writing .parquet needs pyarrow (pip install pyarrow); or "
                                 "write .csv or .jsonl") from None


def write_rows(rows: list[dict[str, Any]], path: Path) -> None:
    """CSV (empty cell for null), JSON lines (null) or Parquet, by the file's suffix."""
    check_out_path(path)
    columns = _columns(rows)
    if path.suffix == ".jsonl":
        with path.open("w") as out:
            for row in rows:
                doc = {k: _clean(row.get(k)) for k in columns}
                out.write(json.dumps(doc, allow_nan=False) + "\n")
    elif path.suffix == ".csv":
        with path.open("w", newline="") as out:
            writer = csv.DictWriter(out, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: "" if _clean(row.get(k)) is None else row.get(k)
                                 for k in columns})
    else:
        import pyarrow
        import pyarrow.parquet

        table = pyarrow.table({k: [_clean(r.get(k)) for r in rows] for k in columns})
        pyarrow.parquet.write_table(table, path)


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Read back what write_rows wrote (CSV cells as numbers where they parse)."""
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line]
    rows = []
    with path.open(newline="") as src:
        for raw in csv.DictReader(src):
            rows.append({k: _parse_cell(v) for k, v in raw.items()})
    return rows


def _parse_cell(text: str) -> Any:
    if text == "":
        return None
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text
