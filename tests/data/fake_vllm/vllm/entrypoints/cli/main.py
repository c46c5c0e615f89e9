"""`python -m vllm.entrypoints.cli.main serve MODEL --port P ...`: answers /health, logs like
vLLM 0.26 does the lines calibrate-engine reads. FAKE_VLLM_FAIL=1 exits at once."""
import http.server, json, os, sys

args = sys.argv[1:]
if os.environ.get("FAKE_VLLM_FAIL"):
    print("ERROR fake engine failure", flush=True)
    sys.exit(1)
port = int(args[args.index("--port") + 1])
cfg = json.load(open(os.path.join(args[1], "config.json")))
print("INFO [core.py:98] Initializing a V1 LLM engine (v0.0.0) with config: model='x'", flush=True)
print("INFO [scheduler.py:231] Chunked prefill is enabled with max_num_batched_tokens=8192.", flush=True)
print("INFO [kv_cache_utils.py:1301] GPU KV cache size: 919,824 tokens", flush=True)


class Health(http.server.BaseHTTPRequestHandler):
    scrapes = 0

    def do_GET(self):
        if self.path == "/metrics":  # counters that grow by 1000 queries and 100 hits a scrape
            Health.scrapes += 1
            n = Health.scrapes
            body = (f'vllm:prefix_cache_queries_total{{engine="0"}} {1000.0 * n}\n'
                    f'vllm:prefix_cache_hits_total{{engine="0"}} {100.0 * n}\n').encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *a):
        pass


http.server.HTTPServer(("127.0.0.1", port), Health).serve_forever()
