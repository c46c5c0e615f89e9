"""Write a synthetic day-long request trace for `perfmodel serve --trace-in` (docs/serving.md,
"Trace replay"): a CSV of arrival_s, input_len, output_len, slo_class.

Arrivals: a Poisson process whose rate follows the day, λ(t) = λ̄·(1 − a·cos(2πt / 86400 s))
(trough at midnight, peak λ̄·(1 + a) at noon), drawn by thinning a Poisson stream of rate
λ̄·(1 + a). Classes: `interactive` (share 1 − batch) with log-normal lengths of mean 1024 in /
256 out, `batch` with mean 4096 in / 512 out, both of coefficient of variation 1. Seeded: the
same arguments write the same file. A made-up workload to show the mechanics, not a measured one.

    python tools/diurnal_trace.py --out /tmp/day.csv                # about 700 requests a day
    perfmodel serve meta-llama/Llama-3.1-8B --gpu h200-measured --trace-in /tmp/day.csv \\
        --speedup 1440 --slo interactive:ttft=1s,tpot=50ms --slo batch:ttft=30s
"""

from __future__ import annotations

import argparse
import csv
import math
import random

DAY_S = 86400.0
CLASSES = {"interactive": (1024, 256), "batch": (4096, 512)}  # mean input, output tokens
CV = 1.0


def lognormal(rng: random.Random, mean: float, cv: float) -> int:
    sigma = math.sqrt(math.log1p(cv * cv))
    return max(1, round(rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)))


def day_trace(per_day: float, swing: float, batch: float, seed: int) -> list[tuple]:
    """(arrival s, input, output, class) rows of one day, sorted by arrival."""
    rng = random.Random(seed)
    mean_rate = per_day / DAY_S
    top = mean_rate * (1 + swing)
    rows, t = [], 0.0
    while True:
        t += rng.expovariate(top)
        if t >= DAY_S:
            return rows
        if rng.random() * top > mean_rate * (1 - swing * math.cos(2 * math.pi * t / DAY_S)):
            continue  # thinned: the day's rate at t is below the peak
        name = "batch" if rng.random() < batch else "interactive"
        isl, osl = CLASSES[name]
        rows.append((round(t, 3), lognormal(rng, isl, CV), lognormal(rng, osl, CV), name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="the CSV to write")
    parser.add_argument("--requests-per-day", type=float, default=700.0,
                        help="mean requests a day (default 700)")
    parser.add_argument("--swing", type=float, default=0.6,
                        help="a: the rate swings between (1 − a) and (1 + a) times its mean")
    parser.add_argument("--batch-share", type=float, default=0.2,
                        help="the share of requests of class batch (default 0.2)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not (args.requests_per_day > 0 and 0 <= args.swing <= 1 and 0 <= args.batch_share <= 1):
        parser.error("--requests-per-day must be > 0, --swing and --batch-share in [0, 1]")
    rows = day_trace(args.requests_per_day, args.swing, args.batch_share, args.seed)
    with open(args.out, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["arrival_s", "input_len", "output_len", "slo_class"])
        out.writerows(rows)
    print(f"{len(rows)} requests over one day written to {args.out}")


if __name__ == "__main__":
    main()
