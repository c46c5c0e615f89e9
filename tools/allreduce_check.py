"""An all-reduce timing independent of `calibrate-gpu --gpus`: started by torchrun, 100 (bf16)
all-reduces captured in one CUDA graph, 5 replays timed by the host clock around a
synchronize, the median replay divided by 100. Appends {gpus, bytes, seconds} to OUT.

    torchrun --standalone --nproc_per_node=N tools/allreduce_check.py OUT N [--gloo]
"""

import datetime
import json
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist

SIZES = (4 * 1024, 1 << 20, 64 << 20)
CALLS = 100


def main() -> None:
    out, gpus, gloo = sys.argv[1], int(sys.argv[2]), "--gloo" in sys.argv
    for key, value in (("NCCL_NVLS_ENABLE", "0"), ("TORCH_SYMM_MEM_DISABLE_MULTICAST", "1"),
                       ("NVSHMEM_DISABLE_NVLS", "1")):
        os.environ[key] = value
    rank = int(os.environ["RANK"])
    if gloo:
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
        device = "cpu"
    else:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        device = f"cuda:{os.environ['LOCAL_RANK']}"
        dist.init_process_group("nccl", timeout=datetime.timedelta(seconds=120))
    rows = []
    for nbytes in SIZES:
        x = torch.rand(nbytes // 2, dtype=torch.bfloat16, device=device)
        for _ in range(5):
            dist.all_reduce(x)
        if gloo:
            run = lambda: [dist.all_reduce(x) for _ in range(CALLS)]  # noqa: E731
        else:
            torch.cuda.synchronize()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                dist.all_reduce(x)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                for _ in range(CALLS):
                    dist.all_reduce(x)
            run = graph.replay
        times = []
        for _ in range(6):
            if not gloo:
                torch.cuda.synchronize()
            dist.barrier()
            began = time.perf_counter()
            run()
            if not gloo:
                torch.cuda.synchronize()
            times.append((time.perf_counter() - began) / CALLS)
        rows.append({"gpus": gpus, "bytes": nbytes, "seconds": statistics.median(times[1:]),
                     "samples": times[1:], "rank": rank})
    gathered = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, rows)
    if rank == 0:
        with open(out, "a") as handle:
            for i, row in enumerate(gathered[0]):
                row["seconds"] = max(r[i]["seconds"] for r in gathered)  # the slowest rank
                row["method"] = "torchrun, 100 all-reduces in one CUDA graph, host clock"
                handle.write(json.dumps(row) + "\n")
    dist.barrier()
    os._exit(0)  # destroying a group whose graph still holds NCCL work hung torchrun (H200 x4)


if __name__ == "__main__":
    main()
