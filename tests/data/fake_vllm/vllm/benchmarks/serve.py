"""vllm.benchmarks.serve's add_cli_args and main, faked: main writes the result JSON."""
import json, os


def add_cli_args(parser):
    for flag in ("--backend", "--base-url", "--model", "--tokenizer", "--dataset-name",
                 "--random-input-len", "--random-output-len", "--random-range-ratio",
                 "--random-prefix-len", "--burstiness",
                 "--num-prompts", "--max-concurrency", "--request-rate", "--seed",
                 "--percentile-metrics", "--metric-percentiles", "--result-dir",
                 "--result-filename"):
        parser.add_argument(flag)
    parser.add_argument("--ignore-eos", action="store_true")
    parser.add_argument("--save-result", action="store_true")


def main(args):
    n, isl, osl = int(args.num_prompts), int(args.random_input_len), int(args.random_output_len)
    result = {"backend": "vllm", "model_id": args.model, "num_prompts": n, "completed": n,
              "failed": 0, "request_rate": args.request_rate, "burstiness": 1.0,
              "max_concurrency": int(args.max_concurrency), "duration": 1.0,
              "total_input_tokens": n * isl, "total_output_tokens": n * osl,
              "mean_ttft_ms": 10.0, "mean_tpot_ms": 5.0, "output_throughput": n * osl}
    with open(os.path.join(args.result_dir, args.result_filename), "w") as f:
        json.dump(result, f)
    return result
