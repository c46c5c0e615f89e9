"""SLO classes and goodput: per-class TTFT / TPOT / E2E targets, and the requests that meet
them (docs/serving.md, "SLO classes and goodput").

A request is good when every target of its class holds: TTFT ≤ ttft, TPOT ≤ tpot (a request of
one output token has none and meets it, as `vllm bench serve --goodput` counts it), E2E ≤ e2e.
Its class is its RequestSpec.slo_class (a trace's slo_class column; `default` when it has
none); the targets given without a class name apply to every class that has none of its own.
Goodput = good requests per second: the measured requests' good fraction × the run's request
throughput (one scheduler, no warm-up: good / duration, vLLM's `request_goodput`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from perfmodel.errors import WorkloadError

DEFAULT = "default"  # the class of a request without one
METRICS = ("ttft", "tpot", "e2e")


@dataclass(frozen=True)
class SloTarget:
    """One class's targets in seconds (None: no target on that metric)."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    e2e_s: float | None = None

    def met(self, ttft: float, tpot: float | None, e2e: float) -> bool:
        return ((self.ttft_s is None or ttft <= self.ttft_s)
                and (self.tpot_s is None or tpot is None or tpot <= self.tpot_s)
                and (self.e2e_s is None or e2e <= self.e2e_s))

    def to_dict(self) -> dict[str, float | None]:
        return {"ttft_s": self.ttft_s, "tpot_s": self.tpot_s, "e2e_s": self.e2e_s}


def parse_slo(texts: Sequence[str], duration: Callable[[str, str], float]
              ) -> dict[str | None, SloTarget]:
    """'ttft=2s,tpot=50ms' (every class) or 'interactive:ttft=1s,tpot=40ms' (one class) ->
    {class or None: SloTarget}; duration(text, flag) reads one duration in seconds."""
    out: dict[str | None, SloTarget] = {}
    for text in texts:
        name, _, body = text.rpartition(":") if ":" in text else ("", "", text)
        name = name.strip() or None
        if name in out:
            raise WorkloadError(f"--slo names {name or 'the unnamed class'} twice; give each "
                                "class one --slo")
        values: dict[str, float] = {}
        for item in (x.strip() for x in body.split(",") if x.strip()):
            key, eq, value = item.partition("=")
            key = key.strip().lower()
            if not eq or key not in METRICS or key in values:
                raise WorkloadError(f"--slo {text!r}: write [CLASS:]ttft=2s,tpot=50ms,e2e=30s "
                                    "(each of ttft, tpot, e2e at most once)")
            values[key] = duration(value, f"--slo {key}")
        if not values:
            raise WorkloadError(f"--slo {text!r} sets no target; write e.g. ttft=2s,tpot=50ms")
        out[name] = SloTarget(*(values.get(k) for k in METRICS))
    return out


def targets(slo: Mapping[str | None, SloTarget | Mapping[str, float]]
            ) -> dict[str | None, SloTarget]:
    """run_serve's slo argument as SloTargets: each value a SloTarget or a dict of ttft_s,
    tpot_s, e2e_s (seconds, > 0)."""
    out = {}
    for name, value in slo.items():
        if not isinstance(value, SloTarget):
            unknown = set(value) - {"ttft_s", "tpot_s", "e2e_s"}
            if unknown:
                raise WorkloadError(f"slo target {sorted(unknown)[0]!r}: use ttft_s, tpot_s, "
                                    "e2e_s")
            value = SloTarget(**value)
        for key, x in value.to_dict().items():
            if x is not None and not (isinstance(x, (int, float)) and 0 < x < float("inf")):
                raise WorkloadError(f"slo {name or DEFAULT} {key} must be a number of seconds "
                                    f"> 0, not {x!r}")
        out[name] = value
    return out


def goodput(done: Iterable, classes: Sequence[str | None], slo: Mapping[str | None, SloTarget],
            requests_s: float | None) -> dict[str, Any]:
    """The --json "goodput" block: per class (in order of first appearance) its targets,
    requests, those that met them, the fraction and good requests per second; classes[i] is
    request i's class. A class without targets (and no unnamed ones) is left out."""
    tally: dict[str, list] = {}
    measured = 0
    for d in done:
        measured += 1
        name = classes[d.index] or DEFAULT
        target = slo.get(name) or slo.get(None)
        if target is None:
            continue
        entry = tally.setdefault(name, [target, 0, 0])
        entry[1] += 1
        entry[2] += target.met(d.ttft, d.tpot, d.e2e)
    total = sum(e[1] for e in tally.values())
    good = sum(e[2] for e in tally.values())
    return {"requests": total, "met": good, "fraction": good / total if total else None,
            "requests_s": _rate(good, measured, requests_s),
            "classes": {name: {"targets": t.to_dict(), "requests": n, "met": k,
                               "fraction": k / n, "requests_s": _rate(k, measured, requests_s)}
                        for name, (t, n, k) in tally.items()}}


def _rate(good: int, measured: int, requests_s: float | None) -> float | None:
    """Good requests per second: their share of all measured requests × the request rate."""
    if not measured or requests_s is None:
        return None
    return good / measured * requests_s
