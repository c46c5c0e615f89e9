"""Pareto fronts: the rows no other row beats on every axis at once.

A row dominates another when it is at least as good on every key and better on one. Keys are
maximised; pass a key that should be minimised (cost) negated through `value`.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

Row = dict[str, Any]
Value = Callable[[Row, str], float]


def _get(row: Row, key: str) -> float:
    return row[key]


def dominates(a: Row, b: Row, keys: Sequence[str], value: Value = _get) -> bool:
    """True when a is at least as good as b on every key and strictly better on one."""
    better = False
    for key in keys:
        va, vb = value(a, key), value(b, key)
        if va < vb:
            return False
        better = better or va > vb
    return better


def pareto_front(rows: Sequence[Row], keys: Sequence[str], value: Value = _get) -> list[Row]:
    """The non-dominated rows, sorted by the first key, best first (ties keep every copy).

    Sorting by the keys in descending order first means a row can only be dominated by one
    already kept, so each row is compared with the front, not with every other row.
    """
    ordered = sorted(rows, key=lambda r: tuple(value(r, k) for k in keys), reverse=True)
    front: list[Row] = []
    for row in ordered:
        if not any(dominates(kept, row, keys, value) for kept in front):
            front.append(row)
    return front
