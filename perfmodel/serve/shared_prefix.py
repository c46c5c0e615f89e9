"""Workloads whose prompts share a prefix: --prefix-len, --num-prefixes, and --lengths columns.

`--prefix-len N` puts one prefix of N tokens before every prompt, as vLLM's
`vllm bench serve --dataset-name random --random-prefix-len N` does: a prompt is then
N + I tokens, its first N shared by every request (RandomDataset.sample generates the prefix
once and `total_input_len = prefix_len + int(input_len)`, vllm/benchmarks/datasets/datasets.py,
v0.26.0). `--num-prefixes K` makes K distinct prefixes of N tokens, request i taking prefix
i mod K (the prefix_repetition dataset draws K prefixes too, num_requests // K prompts each,
shuffled; the round-robin is its deterministic stand-in). A `--lengths` file may carry
`prefix_id` and `prefix_len` on each line instead: there input_len is the whole prompt,
prefix_len of it shared with the other lines of the same prefix_id (prefix_id 0 if left out).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from perfmodel.errors import MAX_REQUESTS, MAX_TOKENS, WorkloadError, shown, whole
from perfmodel.serve.requests import Arrivals


def with_prefixes(arrivals: Arrivals, prefix_len: int = 0, num_prefixes: int = 1,
                  lengths: str | None = None) -> Arrivals:
    """arrivals with their shared prefixes (module docstring); unchanged without any."""
    columns = read_prefix_columns(lengths) if lengths else None
    if columns is not None and prefix_len:
        raise WorkloadError(f"--lengths {lengths} gives each line's prefix_len; drop "
                            "--prefix-len (or the file's prefix columns)")
    whole(num_prefixes, "--num-prefixes", MAX_REQUESTS)
    if prefix_len:
        whole(prefix_len, "--prefix-len", MAX_TOKENS)
    reqs = arrivals.requests
    if columns is not None:
        for i, r in enumerate(reqs[:len(columns)]):
            if columns[i][1] > r.isl:
                raise WorkloadError(f"--lengths {lengths} line {i + 1}: prefix_len "
                                    f"{columns[i][1]} is longer than its input_len {r.isl}")
        reqs = tuple(replace(r, prefix_id=columns[i % len(columns)][0],
                             prefix_len=columns[i % len(columns)][1]) for i, r in enumerate(reqs))
    elif prefix_len:
        reqs = tuple(replace(r, isl=prefix_len + r.isl, prefix_id=i % num_prefixes,
                             prefix_len=prefix_len) for i, r in enumerate(reqs))
    elif num_prefixes != 1:
        raise WorkloadError("--num-prefixes needs --prefix-len N (the length of each prefix)")
    else:
        return arrivals
    return replace(arrivals, requests=reqs)


def read_prefix_columns(path: str) -> list[tuple[int, int]] | None:
    """(prefix_id, prefix_len) of each line of a --lengths file, or None if no line has them
    (requests.read_lengths has read and checked the file and its lengths already)."""
    text = Path(path).read_text()
    if '"prefix_' not in text:
        return None
    out = []
    for number, line in enumerate((t for t in text.splitlines() if t.strip()), 1):
        row = json.loads(line)
        pid, plen = row.get("prefix_id", 0), row.get("prefix_len", 0)
        for name, value in (("prefix_id", pid), ("prefix_len", plen)):
            if isinstance(value, bool) or not isinstance(value, int) or \
                    not 0 <= value <= MAX_TOKENS * (MAX_REQUESTS if name == "prefix_id" else 1):
                raise WorkloadError(f"--lengths {path} line {number}: {name} must be a whole "
                                    f"number ≥ 0, not {shown(value)}")
        out.append((pid, plen))
    return out
