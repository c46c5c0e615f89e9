"""The lines `perfmodel serve --disagg` prints about its pools and the KV transfer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from perfmodel.serve.result import Disagg, DisaggPool


def _pool(name: str, p: DisaggPool) -> str:
    layout = "+".join(f"{k.upper()}{getattr(p, k)}" for k in ("tp", "ep", "dp")
                      if getattr(p, k) > 1) or "1 GPU"
    return (f"{name} {p.workers} x {layout} ({p.gpus} GPUs, {p.schedulers} "
            f"scheduler(s)): busy {p.busy_fraction:.0%}, peak KV {p.peak_kv_fraction:.0%}")


def disagg_lines(d: Disagg) -> list[str]:
    """Pools, their load, and the KV transfer (serve --json's "disagg", docs/json.md)."""
    x = d.kv_transfer
    batch = d.decode.mean_batch
    lim = x.limit_mean_s
    return [f"disaggregated {d.layout} on {d.gpus} GPUs; every scheduler simulated, "
            "latencies over all requests",
            _pool("prefill", d.prefill),
            _pool("decode", d.decode) + (f", mean batch {batch:.1f}" if batch else ""),
            f"KV transfer over {x.link} ({x.bandwidth / 1e9:.0f} GB/s per GPU): "
            f"{x.mean_bytes / 1e6:.1f} MB a request on the busiest link, "
            f"{x.mean_s * 1e3:.2f} ms" + (f" (limit {lim * 1e3:.2f} ms)" if lim else "")
            + ("" if x.measured_table else ", bandwidth alone")]


def _tok(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def choices_markdown(picks: list[dict[str, Any]]) -> list[str]:
    """validate-serving --rows disagg: agg against disagg per group and TPOT target."""
    lines = ["| group | rows | TPOT target | measured pick | simulated pick | measured best agg / "
             "disagg tok/s/GPU | simulated best agg / disagg | match |",
             "|---|---|---|---|---|---|---|---|"]
    for p in picks:
        m, s = p["measured"], p["simulated"]
        lines.append(
            f"| {p['group']} | {p['rows']} "
            f"| {p['tpot_slo_s'] * 1e3:.1f} ms (p{p['quantile'] * 100:.0f}) "
            f"| {m['mode'] or '—'} | {s['mode'] or '—'} "
            f"| {_tok(m['best_tok_s_per_gpu']['agg'])} / {_tok(m['best_tok_s_per_gpu']['disagg'])} "
            f"| {_tok(s['best_tok_s_per_gpu']['agg'])} / {_tok(s['best_tok_s_per_gpu']['disagg'])} "
            f"| {'yes' if p['match'] else 'no'} |")
    matched = sum(p["match"] for p in picks)
    lines.append(f"\nplan's pick matches the measurement's in {matched} of {len(picks)} "
                 f"(group, target) pairs")
    return lines
