"""Device run: how fast a compute-bound GEMM runs after minutes of load, against calibrate's timing.

calibrate-gpu times each table point for ~25 ms (perfmodel/calibrate/timing.py) and rests
before the peaks, so its tables hold a GEMM's rate on a card that has not been loaded for long.
A serving benchmark loads the card for minutes; an H100 under sustained matrix load lowers its
clock to stay within its power limit. This script measures, per dtype, on the lent GPU:

1. `table`: the rate calibrate's table method (`Timer.rotated`) gives, after 20 s idle;
2. `sustained`: the rate of the same GEMM replayed back to back for `--seconds`, per 2 s window,
   with nvidia-smi's SM clock, power and temperature sampled each window;
3. `mixed`: the GEMM's rate when it alternates with a memory-bound copy of about the same time
   (a serving step that mixes prefill with decode), again per window;
4. `table_hot`: the table method again, right after.

With `--bursts L1,L2,..` it runs calibrate/power.py's curve instead, at each `--gap-ratios`
(the copies between bursts last that many times the burst). The H100 curve bundled on
2026-11-27 came from this script's burst loop before that loop moved into calibrate/power.py
(the same measurement; docs/data/bursts-h100-2026-11-27.json).

Usage (device tool, repo root): python3 tools/sustained_device_run.py --out $OUT/sustained.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time

from perfmodel.calibrate.power import BURSTS_S, gemm_pair, graph_of, sustained_curve

SMI = ("clocks.sm", "power.draw", "temperature.gpu")


def smi() -> dict:
    out = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(SMI)}",
                          "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=False)
    values = out.stdout.strip().split("\n")[0].split(", ")
    return dict(zip(SMI, (float(v) for v in values))) if len(values) == len(SMI) else {}


def windows(replay, flop_per_replay: float, seconds: float, window_s: float = 2.0,
            between=None) -> list[dict]:
    """Replay back to back for `seconds`; per window, FLOP/s of the timed replays and smi."""
    import torch

    out, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end:
        busy, count, t0 = 0.0, 0, time.perf_counter()
        while time.perf_counter() - t0 < window_s:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            replay()
            stop.record()
            if between is not None:
                between()
            stop.synchronize()
            busy += start.elapsed_time(stop) * 1e-3
            count += 1
        out.append({"t_s": round(seconds - (end - time.perf_counter()), 1),
                    "flops": flop_per_replay * count / busy, **smi()})
    return out


def measure(dtype: str, m: int, k: int, n: int, seconds: float, rest_s: float) -> dict:
    import torch

    from perfmodel.calibrate.timing import Timer

    device = "cuda:0"
    timer = Timer(device, torch.cuda.get_device_properties(0).L2_cache_size)
    fns, flop, table = gemm_pair(dtype, (m, k, n), timer)

    time.sleep(rest_s)
    cool = smi()
    fresh = [table() for _ in range(3)]
    one = flop / fresh[0]
    copies = max(2, round(0.05 / one))  # a replay of about 50 ms
    graph = graph_of(fns, copies)
    sustained = windows(graph.replay, flop * copies, seconds)
    hot = [table() for _ in range(3)]
    src = torch.empty(1 << 28, dtype=torch.float32, device=device)  # 1 GiB
    dst = torch.empty_like(src)  # copies for about the GEMMs' time: decode-like memory work
    copy_graph = graph_of([lambda: dst.copy_(src)], max(1, round(copies * one / 0.7e-3)))
    mixed = windows(graph.replay, flop * copies, seconds / 2, between=copy_graph.replay)
    del graph, copy_graph
    torch.cuda.empty_cache()
    tail = [w["flops"] for w in sustained if w["t_s"] >= seconds * 2 / 3]
    mixed_tail = [w["flops"] for w in mixed if w["t_s"] >= seconds / 3]
    return {"dtype": dtype, "shape": [m, k, n], "idle_smi": cool, "table": fresh,
            "table_hot": hot, "sustained": sustained, "mixed": mixed,
            "sustained_tail_over_table": (sum(tail) / len(tail)) / max(fresh),
            "mixed_tail_over_table": (sum(mixed_tail) / len(mixed_tail)) / max(fresh)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rest", type=float, default=20.0)
    parser.add_argument("--dtypes", default="bf16,fp8")
    parser.add_argument("--shape", default="8192,8192,8192")
    parser.add_argument("--bursts", default="",
                        help=f"burst lengths in s (calibrate's: {','.join(map(str, BURSTS_S))}):"
                             " the curve of calibrate/power.py at each --gap-ratios only")
    parser.add_argument("--gap-ratios", default="1.0")
    args = parser.parse_args()
    import torch

    m, k, n = (int(v) for v in args.shape.split(","))
    result = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "runs": []}
    if args.bursts:  # calibrate/power.py's curve, at each gap ratio
        from perfmodel.calibrate.timing import Timer

        timer = Timer("cuda:0", torch.cuda.get_device_properties(0).L2_cache_size)
        lengths = [float(v) for v in args.bursts.split(",")]
        for dtype in args.dtypes.split(","):
            for ratio in (float(v) for v in args.gap_ratios.split(",")):
                time.sleep(args.rest)
                curve = sustained_curve(dtype, timer, lengths, args.seconds, shape=(m, k, n),
                                        gap_ratio=ratio)
                print(dtype, "gap ratio", ratio, curve, flush=True)
                result["runs"].append({"dtype": dtype, "gap_ratio": ratio,
                                       "curve": [list(p) for p in curve]})
                with open(args.out, "w") as f:
                    json.dump(result, f, indent=1)
        return
    for dtype in args.dtypes.split(","):
        run = measure(dtype, m, k, n, args.seconds, args.rest)
        result["runs"].append(run)
        print(f"{dtype} table {max(run['table']) / 1e12:.0f} / hot "
              f"{max(run['table_hot']) / 1e12:.0f} TFLOP/s; sustained tail "
              f"{run['sustained_tail_over_table']:.3f}, mixed tail "
              f"{run['mixed_tail_over_table']:.3f} of table", flush=True)
        for w in run["sustained"][::3]:
            print("  ", w, flush=True)
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
