"""Figures (matplotlib, an optional extra: pip install 'perfmodel[plot]'): the roofline of one
prediction, a plan's Pareto front, and latency and throughput against batch or concurrency.

matplotlib is imported inside each function, so `perfmodel predict` pays for it only with
--plot. The file's suffix picks the format (.png or .svg).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from perfmodel.errors import PerfmodelError
from perfmodel.outpath import check_out_path

FORMATS = (".png", ".svg")
Row = dict[str, Any]


def check_plot_path(path: Path, inputs: Sequence[Path] = ()) -> None:
    """A clear error before any work: the suffix, the place (perfmodel/outpath.py, never one of
    the command's `inputs`) and matplotlib itself."""
    if Path(path).suffix not in FORMATS:
        raise PerfmodelError(f"--plot must end in .png or .svg, not {Path(path).name!r}")
    check_out_path(Path(path), folder_ok=False, flag="--plot", inputs=inputs)
    _need_matplotlib()


def _need_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PerfmodelError("plots need matplotlib: pip install 'perfmodel[plot]'") from None


def _figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (7.5, 5.0)):
    _need_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=size, squeeze=False)
    return plt, fig, axes


def _plain(ax: Any, axes: str = "xy") -> None:
    """Log axes labelled 20, 50, 100 rather than 2×10¹."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    label = FuncFormatter(lambda v, _: f"{v:g}")
    for name in axes:
        axis = getattr(ax, f"{name}axis")
        axis.set_major_formatter(label)
        axis.set_minor_locator(LogLocator(subs=(2, 5)))
        axis.set_minor_formatter(label)


def _save(plt: Any, fig: Any, path: Path) -> Path:
    check_plot_path(Path(path))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def roofline_plot(pred: Any, path: Path, title: str | None = None) -> Path:
    """Every op of one Prediction at (arithmetic intensity, achieved FLOP/s): hollow at its
    limit (on the roof), filled at its estimate; the GPU's compute roofs and bandwidth slope."""
    check_plot_path(Path(path))
    plt, fig, axes = _figure()
    ax = axes[0][0]
    gpu, colours = pred.gpu, {"prefill": "tab:blue", "decode": "tab:orange"}
    lows, highs = [], []
    for phase in [pred.prefill] + ([pred.decode] if pred.decode else []):
        costs = [c for c in phase.costs if c.op.flops > 0 and c.op.bytes > 0 and c.limit_s > 0]
        xs = [c.op.flops / c.op.bytes for c in costs]
        work = [c.op.count * c.op.flops for c in costs]
        lows.extend(xs)
        highs.extend(xs)
        ax.scatter(xs, [w / c.limit_s for w, c in zip(work, costs)], facecolors="none",
                   edgecolors=colours[phase.name], label=f"{phase.name} ops, limit")
        est = [(x, w / c.estimate_s) for x, w, c in zip(xs, work, costs) if c.estimate_s]
        if est:
            ax.scatter(*zip(*est), color=colours[phase.name], s=18,
                       label=f"{phase.name} ops, estimate")
    lo, hi = min(lows or [0.1]) / 4, max(highs or [1e4]) * 4
    dtypes = dict.fromkeys([pred.precision.compute_dtype, pred.precision.base_dtype])
    for dtype in dtypes:
        peak = gpu.peak(dtype)
        if peak:
            ridge = peak / gpu.mem_bandwidth
            xs = [lo, ridge, max(hi, ridge * 4)]
            ax.plot(xs, [min(peak, gpu.mem_bandwidth * x) for x in xs], "k-" if
                    dtype == pred.precision.compute_dtype else "k--", lw=1,
                    label=f"{dtype} roof {peak / 1e12:.0f} TFLOP/s, "
                          f"{gpu.mem_bandwidth / 1e12:.2f} TB/s")
    ax.set(xscale="log", yscale="log", xlabel="arithmetic intensity (FLOP/byte)",
           ylabel="achieved FLOP/s", title=title or _roofline_title(pred))
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="lower right")
    return _save(plt, fig, path)


def _roofline_title(pred: Any) -> str:
    from perfmodel.report.render import si

    w, est, lim = pred.workload, pred.estimate or {}, pred.limit
    text = (f"{pred.gpu.name}, {pred.precision.name}, B={w.batch} I={w.input_len} "
            f"O={w.output_len}\nTTFT {si(lim['ttft_s'], 's')} limit, "
            f"{si(est.get('ttft_s'), 's')} estimate")
    if lim["itl_s"]:
        text += f"; ITL {si(lim['itl_s'], 's')} limit, {si(est.get('itl_s'), 's')} estimate"
    return text


def _config(row: Row) -> str:
    par = "".join(f" {k.upper()}{row[k]}" for k in ("tp", "ep", "dp", "pp") if row.get(k, 1) != 1)
    return f"{row['gpu']} {row['precision']}{par}"


def pareto_plot(rows: Sequence[Row], front: Sequence[Row], path: Path, *,
                keys: tuple[str, str] = ("tok_s_per_gpu", "tok_s_per_user"),
                best: Row | None = None, tpot_slo: float | None = None,
                title: str = "") -> Path:
    """Every evaluated point (per-user rate on x, keys[0] on y), coloured by GPU and precision,
    the front as a line, the best point starred, the TPOT target as a vertical line."""
    plt, fig, axes = _figure()
    ax, y_key = axes[0][0], keys[0]
    groups: dict[tuple[str, int], list[Row]] = {}
    for row in rows:  # colour: GPU and precision; marker: how many GPUs (and how split)
        groups.setdefault((f"{row['gpu']} {row['precision']}", row["gpus"]), []).append(row)
    colours = {name: f"C{i % 10}" for i, name in enumerate(sorted({n for n, _ in groups}))}
    markers = {g: m for g, m in zip(sorted({g for _, g in groups}), "o^sDvP*Xh")}
    for (name, gpus), members in sorted(groups.items()):
        ax.scatter([r["tok_s_per_user"] for r in members], [r[y_key] for r in members],
                   s=16, alpha=0.65, color=colours[name], marker=markers.get(gpus, "o"),
                   label=f"{name} ×{gpus}" if len(markers) > 1 else name)
    line = sorted(front, key=lambda r: r["tok_s_per_user"])
    ax.plot([r["tok_s_per_user"] for r in line], [r[y_key] for r in line], "k-", lw=1.2,
            drawstyle="steps-post" if y_key != "cost_per_mtok" else "default",
            label="Pareto front")
    if best is not None:
        ax.scatter([best["tok_s_per_user"]], [best[y_key]], marker="*", s=220, color="gold",
                   edgecolors="k", zorder=5, label="best meeting the SLOs")
    if tpot_slo:
        ax.axvline(1 / tpot_slo, color="grey", ls=":", label=f"TPOT target {tpot_slo * 1e3:g} ms")
    ylabel = {"tok_s_per_gpu": "output tokens/s per GPU",
              "cost_per_mtok": "$ per million output tokens"}[y_key]
    ax.set(xscale="log", yscale="log", xlabel="output tokens/s per user (1 / TPOT)",
           ylabel=ylabel, title=title)
    _plain(ax)
    ax.grid(True, which="both", alpha=0.25)
    entries = len(groups) + 1 + (best is not None) + bool(tpot_slo)
    if entries > 8:  # beside the axes, not over the points
        fig.set_size_inches(10.5, 5.5)
        ax.legend(fontsize=7, ncol=1 + entries // 20, loc="center left",
                  bbox_to_anchor=(1.01, 0.5))
    else:
        ax.legend(fontsize=7)
    return _save(plt, fig, path)


def load_plot(rows: Sequence[Row], path: Path, title: str = "") -> Path:
    """TTFT, TPOT and output tokens/s per GPU against batch (or concurrency), one line per
    configuration (every column but the load); rows with an error are left out."""
    load = "concurrency" if any("concurrency" in r for r in rows) else "batch"
    plt, fig, axes = _figure(1, 3, (13.0, 4.2))
    lines: dict[str, list[Row]] = {}
    for row in rows:
        if row.get("error") is None and row.get("tpot_s"):
            name = f"{_config(row)} {row['isl']}/{row['osl']}"
            lines.setdefault(name, []).append(row)
    for name, members in sorted(lines.items()):
        members.sort(key=lambda r: r[load])
        xs = [r[load] for r in members]
        for ax, key, scale in zip(axes[0], ("ttft_s", "tpot_s", "tok_s_per_gpu"), (1e3, 1e3, 1)):
            ax.plot(xs, [r[key] * scale for r in members], marker=".", label=name)
    for ax, label in zip(axes[0], ("mean TTFT (ms)", "mean TPOT (ms)",
                                   "output tokens/s per GPU")):
        ax.set(xscale="log", yscale="log", xlabel=load, ylabel=label)
        _plain(ax, "x")
        ax.grid(True, which="both", alpha=0.25)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title)
    return _save(plt, fig, path)
