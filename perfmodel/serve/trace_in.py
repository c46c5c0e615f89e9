"""Trace replay: a CSV or JSONL file of requests (arrival, input and output length, optional
shared prefix and SLO class) read into RequestSpecs (docs/serving.md, "Trace replay").

Columns, by the names public traces use (the first present of each row wins):
- arrival: `arrival_s` (seconds); `TIMESTAMP` (Azure LLM inference traces: a date-time, or
  seconds); `Timestamp` (BurstGPT: seconds); `timestamp` (Mooncake: milliseconds; vLLM's
  timed_trace dataset: seconds, say so with time_unit="s");
- input: `input_len`, `ContextTokens`, `Request tokens`, `input_length`;
- output: `output_len`, `GeneratedTokens`, `Response tokens`, `output_length`;
- optional: `prefix_id` + `prefix_len`, or Mooncake's `hash_ids` (one id per 512-token block;
  a request's prefix_len is 512 × the leading blocks it shares with another request of the
  trace, its prefix id the first block's), and `slo_class`.
Times are made relative to the first request and divided by `speedup`. Refused with one line:
an empty or over-large file, a missing column, a value that is no number, a length below 1, a
prefix longer than its prompt, times that go backwards.
"""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from perfmodel.errors import MAX_REQUESTS, MAX_TOKENS, WorkloadError, shown, whole
from perfmodel.serve.requests import Arrivals, RequestSpec

MAX_TRACE_BYTES = 200 * 10**6  # ~10 million CSV rows of arrival, input, output: the request bound
MOONCAKE_BLOCK = 512  # tokens per hash id (Mooncake's FAST'25 traces, README)
ARRIVAL = (("arrival_s", "s"), ("TIMESTAMP", "s"), ("Timestamp", "s"), ("timestamp", "ms"))
INPUT = ("input_len", "ContextTokens", "Request tokens", "input_length")
OUTPUT = ("output_len", "GeneratedTokens", "Response tokens", "output_length")
TIME_UNITS = {"s": 1.0, "ms": 1e-3}


class _Bad(ValueError):
    """One row's fault, reported with the file and line."""


def read_trace(path: str, speedup: float = 1.0, time_unit: str | None = None,
               limit: int | None = None) -> tuple[RequestSpec, ...]:
    """The requests of a trace file, arrivals from 0 in seconds divided by `speedup`; limit:
    the first `limit` rows only. time_unit (s or ms) overrides the arrival column's unit."""
    if not (speedup > 0 and math.isfinite(speedup)):
        raise WorkloadError(f"--speedup must be a finite number > 0, not {speedup!r}")
    if time_unit is not None and time_unit not in TIME_UNITS:
        raise WorkloadError(f"--trace-time-unit takes s or ms, not {time_unit!r}")
    text = _text(path)
    rows = _rows(text, path)
    specs, first, last, prefixes, columns = [], None, -math.inf, {}, {}
    mooncake = text.lstrip()[:1] == "{" and '"hash_ids"' in text[:10_000]
    hashes = _shared_blocks(text, path) if mooncake else None
    for number, row in rows:
        if limit is not None and len(specs) >= limit:
            break
        try:
            t, isl, osl, prefix, prefix_len, slo = _fields(row, time_unit, columns)
            if hashes is not None and prefix is None:
                depth, root = hashes[len(specs)]
                if depth:
                    prefix, prefix_len = root, min(isl, depth * MOONCAKE_BLOCK)
        except _Bad as exc:
            raise WorkloadError(f"--trace-in {path} line {number}: {exc}") from None
        if t < last:
            raise WorkloadError(f"--trace-in {path} line {number}: arrival {shown(t)} s comes "
                                f"before the previous row's {shown(last)} s; sort the file by "
                                "arrival time")
        last = t
        first = t if first is None else first
        pid = None if prefix is None else prefixes.setdefault(str(prefix), len(prefixes))
        specs.append(RequestSpec(isl, osl, (t - first) / speedup, pid, prefix_len, slo))
        if len(specs) > MAX_REQUESTS:
            raise WorkloadError(f"--trace-in {path} holds over {MAX_REQUESTS:,} requests; cut "
                                "it or pass --num-requests")
    if not specs:
        raise WorkloadError(f"--trace-in {path} holds no requests; pass a CSV with a header "
                            "row or a JSONL file of one request a line (docs/serving.md)")
    return tuple(specs)


def _text(path: str) -> str:
    file = Path(path)
    if not file.is_file():
        what = ("is a folder" if file.is_dir() else "is a device or other special file"
                if file.exists() else "no such file")
        raise WorkloadError(f"--trace-in {path}: {what}; pass a CSV or JSONL trace file")
    if file.stat().st_size > MAX_TRACE_BYTES:
        raise WorkloadError(f"--trace-in {path} is over {MAX_TRACE_BYTES // 10**6} MB; cut it "
                            "to a shorter window")
    try:
        return file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkloadError(f"--trace-in {path}: cannot read it ({exc}); pass a readable UTF-8 "
                            "CSV or JSONL file") from None


def _rows(text: str, path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) of a JSONL file (first character `{`) or a CSV with a header row."""
    if text.lstrip()[:1] == "{":
        return _jsonl(text, path)
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames:
        raise WorkloadError(f"--trace-in {path} holds no requests; pass a CSV with a header "
                            "row or a JSONL file of one request a line (docs/serving.md)")
    return ((reader.line_num, row) for row in reader)


def _jsonl(text: str, path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (ValueError, RecursionError) as exc:
            raise WorkloadError(f"--trace-in {path} line {number}: not JSON ({exc}); each line "
                                "must be one object") from None
        if not isinstance(row, dict):
            raise WorkloadError(f"--trace-in {path} line {number}: {shown(row)} is not an "
                                "object; each line must be one JSON object")
        yield number, row


def _fields(row: dict[str, Any], time_unit: str | None, columns: dict):
    """(arrival s, isl, osl, prefix id, prefix len, SLO class) of one row; columns caches the
    column names found per set of keys (a CSV has one)."""
    keys = tuple(row)
    found = columns.get(keys)
    if found is None:
        found = columns[keys] = _names(row)
    name, unit, inp, out = found
    t = _time(row[name], name, TIME_UNITS[time_unit or unit])
    isl = _whole(row[inp], inp)
    osl = _whole(row[out], out)
    prefix = row.get("prefix_id")
    prefix = None if prefix in (None, "") else prefix
    prefix_len = 0
    if prefix is not None:
        prefix_len = _whole(row.get("prefix_len", ""), "prefix_len", 0)
        if prefix_len > isl:
            raise _Bad(f"prefix_len {prefix_len} is longer than the prompt's {isl} tokens")
    slo = row.get("slo_class")
    slo = None if slo in (None, "") else str(slo)
    return t, isl, osl, prefix, prefix_len, slo


def _names(row: dict[str, Any]) -> tuple[str, str, str, str]:
    """The arrival column and its unit, the input and the output column of rows with these
    keys."""
    name, unit = next(((n, u) for n, u in ARRIVAL if n in row), (None, None))
    if name is None:
        raise _Bad(f"no arrival column ({', '.join(n for n, _ in ARRIVAL)}); name it arrival_s "
                   "(seconds)")
    picked = []
    for names, what in ((INPUT, "input"), (OUTPUT, "output")):
        column = next((n for n in names if n in row), None)
        if column is None:
            raise _Bad(f"no {what} length column ({', '.join(names)})")
        picked.append(column)
    return name, unit, picked[0], picked[1]


def _time(value: Any, name: str, scale: float) -> float:
    if isinstance(value, str) and name == "TIMESTAMP":
        try:
            float(value)
        except ValueError:  # Azure: "2023-11-16 18:15:46.6805900" (kept to the µs)
            try:
                return _datetime(value.strip()).timestamp()
            except ValueError:
                raise _Bad(f"{name} {shown(value)} is neither seconds nor a date-time "
                           "(YYYY-MM-DD HH:MM:SS.f)") from None
    try:
        t = float(value) * scale  # the common case, fast; anything odd is _number's
    except (TypeError, ValueError):
        t = None
    if t is None or t != t or t in (math.inf, -math.inf) or isinstance(value, bool):
        t = _number(value, name) * scale
    if t < 0:
        raise _Bad(f"{name} {shown(value)} is negative; arrivals count up from 0")
    return t


def _datetime(text: str) -> datetime:
    """fromisoformat with the fraction of a second cut to 6 digits (Azure writes 7); a time
    without a zone is read as UTC (no daylight-saving jumps)."""
    head, dot, tail = text.partition(".")
    if dot:
        digits = len(tail) - len(tail.lstrip("0123456789"))
        tail = tail[:min(digits, 6)] + tail[digits:]
    parsed = datetime.fromisoformat(head + dot + tail)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool):
        raise _Bad(f"{name} is {shown(value)}, not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _Bad(f"{name} is {shown(value)}, not a number") from None
    if not math.isfinite(number):
        raise _Bad(f"{name} is {shown(value)}, not a finite number")
    return number


def _whole(value: Any, name: str, minimum: int = 1) -> int:
    if type(value) is str and value.isascii() and value.isdigit() or type(value) is int:
        number = int(value)
        if minimum <= number <= MAX_TOKENS:
            return number
    number = _number(value, name)
    if number != int(number) or not minimum <= number <= MAX_TOKENS:
        raise _Bad(f"{name} is {shown(value)}; it must be a whole number from {minimum} to "
                   f"{MAX_TOKENS:,}" + (" (drop the rows of failed requests)" if number == 0
                                        and minimum else ""))
    return int(number)


def _shared_blocks(text: str, path: str) -> list[tuple[int, Any]]:
    """Per row of a Mooncake trace: (leading hash blocks it shares with another row, its first
    block's id). A trie over the hash lists, every node counted once per row through it."""
    trie: dict[tuple[int, Any], int] = {}
    counts: list[int] = []
    walks = []
    for number, row in _jsonl(text, path):
        ids = row.get("hash_ids") or []
        if not isinstance(ids, list):
            raise WorkloadError(f"--trace-in {path} line {number}: hash_ids must be a list")
        node, walk = -1, []
        for h in ids:
            try:
                key = (node, h)
                node = trie.setdefault(key, len(trie))
            except TypeError:
                raise WorkloadError(f"--trace-in {path} line {number}: hash_ids holds "
                                    f"{shown(h)}, not an id") from None
            if node == len(counts):
                counts.append(0)
            counts[node] += 1
            walk.append(node)
        walks.append((walk, ids[0] if ids else None))
    return [(sum(1 for n in walk if counts[n] > 1), root) for walk, root in walks]


def trace_arrivals(path: str, *, speedup: float = 1.0, time_unit: str | None = None,
                   num_requests: int | None = None, **unused: Any) -> Arrivals:
    """run_serve's requests from a trace (open loop at the trace's times); `unused`: the
    workload options a trace replaces, each of which must be left unset."""
    given = [k for k, v in unused.items() if v is not None]
    if given:
        raise WorkloadError(f"--trace-in sets every request's arrival and lengths; drop "
                            f"--{given[0].replace('_', '-')}")
    if num_requests is not None:
        whole(num_requests, "--num-requests", MAX_REQUESTS)
    return Arrivals(read_trace(path, speedup, time_unit, num_requests), None, None)
