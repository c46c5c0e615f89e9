"""MODEL -> config.json: bundled ids, local paths, and the Hub through the real huggingface_hub client.

The Hub is a small HTTP server on loopback that answers the way huggingface.co does for
`hf_hub_download` (HEAD then GET /{repo}/resolve/{revision}/config.json, with X-Repo-Commit and
ETag; X-Error-Code on errors). huggingface_hub reads HF_ENDPOINT, HF_HUB_OFFLINE and HF_HOME
when it is imported, so every Hub case runs in a fresh subprocess. Nothing leaves the machine.
"""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from perfmodel.errors import ConfigError, ModelNotFoundError
from perfmodel.model import source as config_source
from perfmodel.model.source import ModelConfig, bundled_models, load_model_config

REPO_ROOT = Path(__file__).resolve().parent.parent
COMMIT = "0123456789abcdef0123456789abcdef01234567"
TINY = {"model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2}


# ---------------------------------------------------------------- bundled configs and local paths


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """A bundled folder holding meta-llama/Llama-3.1-8B and Qwen/Qwen3-8B, patched in."""
    root = tmp_path / "configs" / "models"
    for model_id in ("meta-llama/Llama-3.1-8B", "Qwen/Qwen3-8B"):
        path = root / f"{model_id}.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({**TINY, "name": model_id}))
    monkeypatch.setattr(config_source, "MODELS_DIR", root)
    return root


@pytest.fixture(autouse=True)
def no_hub(monkeypatch):
    """In-process tests must never reach the Hub; the Hub tests below run in subprocesses."""
    def refuse(repo_id, revision):
        raise AssertionError(f"tried the Hub for {repo_id!r}")
    monkeypatch.setattr(config_source, "_from_hub", refuse)


def test_bundled_models_lists_ids_sorted(models_dir):
    assert bundled_models() == ["meta-llama/Llama-3.1-8B", "Qwen/Qwen3-8B"]


@pytest.mark.parametrize("given", ["meta-llama/Llama-3.1-8B", "META-LLAMA/llama-3.1-8b"])
def test_bundled_lookup_ignores_case(models_dir, given):
    loaded = load_model_config(given)
    assert loaded == ModelConfig("meta-llama/Llama-3.1-8B", {**TINY, "name": "meta-llama/Llama-3.1-8B"},
                                 "bundled configs/models/meta-llama/Llama-3.1-8B.json")


def test_repo_bundled_configs_all_load():
    """Every config shipped in configs/models parses to an object with a model_type."""
    ids = bundled_models()
    if not ids:
        pytest.skip("no configs/models/<org>/<name>.json bundled yet")
    for model_id in ids:
        loaded = load_model_config(model_id)
        assert loaded.model_id == model_id
        assert loaded.source == f"bundled configs/models/{model_id}.json"
        assert isinstance(loaded.config.get("model_type"), str), model_id


def test_path_to_file(tmp_path):
    path = tmp_path / "my-config.json"
    path.write_text(json.dumps(TINY))
    loaded = load_model_config(str(path))
    assert loaded == ModelConfig(str(path), TINY, f"file {path.resolve()}")


def test_path_to_folder(tmp_path, monkeypatch):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text(json.dumps(TINY))
    monkeypatch.chdir(tmp_path)
    loaded = load_model_config("model")
    assert loaded.model_id == "model"
    assert loaded.config == TINY
    assert loaded.source == f"file {(tmp_path / 'model' / 'config.json').resolve()}"


def test_folder_without_config(tmp_path):
    with pytest.raises(ConfigError, match=r"holds no config\.json"):
        load_model_config(str(tmp_path))


def test_folder_without_config_named_like_a_repo_stays_local(tmp_path, monkeypatch):
    """An existing folder is what the user meant: say it holds no config.json (no_hub refuses
    any Hub call), and how to reach the repo of that name instead."""
    (tmp_path / "fx" / "nodir").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_model_config("fx/nodir")
    message = str(caught.value)
    assert f"folder {tmp_path / 'fx' / 'nodir'} holds no config.json" in message
    assert "another folder" in message and "\n" not in message


def test_device_as_model_is_not_a_file():
    with pytest.raises(ConfigError, match="/dev/null is not a regular file"):
        load_model_config("/dev/null")


def test_malformed_json_names_file_and_line(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{\n  "model_type": "llama",\n  "hidden_size": ,\n  "vocab_size": 8\n}\n')
    with pytest.raises(ConfigError) as caught:
        load_model_config(str(path))
    message = str(caught.value)
    assert str(path) in message and "line 3" in message and "\n" not in message


def test_json_that_is_not_an_object(tmp_path):
    path = tmp_path / "config.json"
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="not an object"):
        load_model_config(str(path))


@pytest.mark.parametrize("given", ["./missing/config.json", "/no/such/dir", "a/b/c", "x.json",
                                   "not a repo!", "org/na--me", ""])
def test_neither_path_nor_repo_id(given, models_dir):
    with pytest.raises(ModelNotFoundError) as caught:
        load_model_config(given)
    message = str(caught.value)
    assert "perfmodel models" in message and "\n" not in message


def test_revision_with_local_path_is_an_error(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(TINY))
    with pytest.raises(ConfigError, match="drop the revision"):
        load_model_config(str(tmp_path), revision="main")


def test_revision_sends_a_bundled_id_to_the_hub(models_dir, monkeypatch):
    asked = []
    monkeypatch.setattr(config_source, "_from_hub", lambda *args: asked.append(args))
    load_model_config("meta-llama/Llama-3.1-8B", revision="v2")
    assert asked == [("meta-llama/Llama-3.1-8B", "v2")]


def test_import_does_not_import_huggingface_hub():
    code = ("import sys, perfmodel.model.source; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "{'huggingface_hub', 'httpx', 'httpx2', 'requests', 'torch'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- the Hub, through a loopback server


class FakeHub(http.server.BaseHTTPRequestHandler):
    """Answers /{org}/{name}/resolve/{revision}/{file} like the Hub; everything else is a 404."""

    repos: dict = {}  # "org/name" -> "ok" | "missing-file" | "no-commit" | ("gated", status) | "not-found"
    requests: list = []

    def log_message(self, *args):  # keep pytest's output clean
        pass

    def do_HEAD(self):
        self._answer(body=False)

    def do_GET(self):
        self._answer(body=True)

    def _answer(self, body: bool):
        parts = self.path.split("?")[0].strip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return self._reply(404, {})
        self.requests.append((self.command, self.path))
        repo, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        kind = self.repos.get(repo, "not-found")
        if kind == "not-found":
            return self._reply(404, {"X-Error-Code": "RepoNotFound"})
        if isinstance(kind, tuple) and kind[0] == "gated":
            return self._reply(kind[1], {"X-Error-Code": "GatedRepo"})
        if revision not in ("main", COMMIT):
            return self._reply(404, {"X-Error-Code": "RevisionNotFound"})
        if kind == "no-commit":  # a plain web server, not a Hub: no X-Repo-Commit
            return self._reply(200, {"ETag": '"x"'})
        if kind == "missing-file" or filename != "config.json":
            return self._reply(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT})
        data = json.dumps({**TINY, "repo": repo}).encode()
        self._reply(200, {"X-Repo-Commit": COMMIT, "ETag": '"tiny-etag-1"',
                          "Content-Type": "application/json"}, data if body else b"", len(data))

    def _reply(self, status: int, headers: dict, data: bytes = b"", length: int | None = None):
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def hub():
    """A fake Hub on 127.0.0.1 (port chosen by the OS), in a thread; yields its URL."""
    FakeHub.repos = {"org/tiny": "ok", "org/gguf-only": "missing-file", "org/plain-web": "no-commit",
                     "org/gated-401": ("gated", 401), "org/gated-403": ("gated", 403)}
    FakeHub.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeHub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def hub_env(tmp_path: Path, endpoint: str, offline: bool = False) -> dict:
    """The environment of a subprocess that sees only the fake Hub and a cache in tmp_path."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HF_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
           and k != "TRANSFORMERS_OFFLINE"}
    env.update(PYTHONPATH=str(REPO_ROOT), HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf"),
               HF_HUB_CACHE=str(tmp_path / "hf" / "hub"), HF_HUB_DISABLE_TELEMETRY="1",
               NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def load_in_subprocess(model: str, env: dict, revision: str | None = None,
                       stub_sleep: bool = True) -> dict:
    """Run load_model_config in a fresh interpreter; return its record or its error.

    time.sleep is stubbed (unless stub_sleep is False) so that any retry would not wait.
    """
    code = f"""
import json, time
if {stub_sleep!r}:
    time.sleep = lambda seconds: None
from perfmodel.model.source import load_model_config
from perfmodel.errors import PerfmodelError
try:
    m = load_model_config({model!r}, revision={revision!r})
    print(json.dumps({{"model_id": m.model_id, "config": m.config, "source": m.source}}))
except PerfmodelError as error:
    print(json.dumps({{"error": type(error).__name__, "message": str(error)}}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def resolve_calls(repo: str) -> list[tuple[str, str]]:
    return [call for call in FakeHub.requests if call[1].startswith(f"/{repo}/")]


def test_hub_download_then_offline_cache(hub, tmp_path):
    got = load_in_subprocess("org/tiny", hub_env(tmp_path, hub))
    assert got == {"model_id": "org/tiny", "config": {**TINY, "repo": "org/tiny"},
                   "source": f"Hugging Face Hub (download) org/tiny@{COMMIT}"}
    calls = resolve_calls("org/tiny")
    assert {path for _, path in calls} == {"/org/tiny/resolve/main/config.json"}  # config.json only
    assert [method for method, _ in calls] == ["HEAD", "HEAD", "GET"]  # one probe, no retry

    again = load_in_subprocess("org/tiny", hub_env(tmp_path, hub, offline=True))
    assert again["config"] == got["config"]
    assert again["source"] == f"Hugging Face Hub (cache) org/tiny@{COMMIT}"
    assert len(resolve_calls("org/tiny")) == 3  # offline: no request at all


def test_hub_revision_is_passed_through(hub, tmp_path):
    got = load_in_subprocess("org/tiny", hub_env(tmp_path, hub), revision=COMMIT)
    assert got["source"] == f"Hugging Face Hub (download) org/tiny@{COMMIT}"
    assert resolve_calls("org/tiny")[0] == ("HEAD", f"/org/tiny/resolve/{COMMIT}/config.json")


def assert_one_line_error(got: dict, kind: str, *fixes: str):
    assert got.get("error") == kind, got
    assert "\n" not in got["message"], got["message"]
    for fix in fixes:
        assert fix in got["message"], (fix, got["message"])


def test_hub_repo_not_found(hub, tmp_path):
    got = load_in_subprocess("org/no-such-model", hub_env(tmp_path, hub))
    assert_one_line_error(got, "ModelNotFoundError", "org/no-such-model", "check the id",
                          "perfmodel models")


@pytest.mark.parametrize("repo", ["org/gated-401", "org/gated-403"])
def test_hub_gated_repo(hub, tmp_path, repo):
    got = load_in_subprocess(repo, hub_env(tmp_path, hub))
    assert_one_line_error(got, "ModelNotFoundError", "gated", f"{hub}/{repo}", "licence", "HF_TOKEN",
                          "hf auth login")


def test_hub_revision_not_found(hub, tmp_path):
    got = load_in_subprocess("org/tiny", hub_env(tmp_path, hub), revision="no-such-branch")
    assert_one_line_error(got, "ModelNotFoundError", "no revision 'no-such-branch'")


def test_hub_repo_without_config_json(hub, tmp_path):
    got = load_in_subprocess("org/gguf-only", hub_env(tmp_path, hub))
    assert_one_line_error(got, "ConfigError", "has no config.json", "local config.json")


def test_hub_endpoint_that_is_not_a_hub(hub, tmp_path):
    got = load_in_subprocess("org/plain-web", hub_env(tmp_path, hub))
    assert_one_line_error(got, "ModelNotFoundError", "did not answer like the Hugging Face Hub",
                          "HF_ENDPOINT", "local config.json")


def test_hub_offline_with_empty_cache(hub, tmp_path):
    got = load_in_subprocess("org/tiny", hub_env(tmp_path, hub, offline=True))
    assert_one_line_error(got, "ModelNotFoundError", "HF_HUB_OFFLINE", "unset HF_HUB_OFFLINE",
                          "local config.json")
    assert FakeHub.requests == []


def test_hub_unreachable_with_empty_cache(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    got = load_in_subprocess("org/tiny", hub_env(tmp_path, f"http://127.0.0.1:{port}"))
    assert_one_line_error(got, "ModelNotFoundError", "cannot reach", "HF_ENDPOINT", "local config.json")



def test_hub_refusing_connections_fails_at_once(tmp_path):
    """A closed port: one try, no backoff (huggingface_hub alone waits 23 s). Real sleeps here."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    got = load_in_subprocess("org/tiny", hub_env(tmp_path, f"http://127.0.0.1:{port}"),
                             stub_sleep=False)
    assert_one_line_error(got, "ModelNotFoundError", "cannot reach", f"127.0.0.1:{port}",
                          "HF_ENDPOINT", "local config.json")
    assert time.monotonic() - started < 10


def test_hub_that_never_answers_times_out_after_one_try(tmp_path):
    """A server that accepts connections and never answers: one connection, the timeout
    (HF_HUB_ETAG_TIMEOUT=1 here; 5 s by default), one line; no 60 s retry with backoff."""
    accepted = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.settimeout(0.2)
        stop = threading.Event()

        def accept():
            while not stop.is_set():
                try:
                    accepted.append(server.accept()[0])  # held open, never read, never answered
                except OSError:
                    pass

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        env = {**hub_env(tmp_path, f"http://127.0.0.1:{server.getsockname()[1]}"),
               "HF_HUB_ETAG_TIMEOUT": "1"}
        started = time.monotonic()
        got = load_in_subprocess("org/tiny", env, stub_sleep=False)
        elapsed = time.monotonic() - started
        stop.set()
        thread.join()
    for connection in accepted:
        connection.close()
    assert_one_line_error(got, "ModelNotFoundError", "did not answer within 1 s", "HF_ENDPOINT",
                          "local config.json")
    assert len(accepted) == 1 and elapsed < 10


@pytest.mark.parametrize("given, hint", [("Llama-3.1-8B", "meta-llama/Llama-3.1-8B"),
                                         ("meta-lama/llama-3.1-8b", "meta-llama/Llama-3.1-8B"),
                                         ("Qwen/Qwen3-4B", None)])
def test_hub_failure_names_the_bundled_model_of_that_name(models_dir, monkeypatch, given, hint):
    def unreachable(repo_id, revision):
        raise ModelNotFoundError("cannot reach the Hugging Face Hub")
    monkeypatch.setattr(config_source, "_from_hub", unreachable)
    with pytest.raises(ModelNotFoundError) as caught:
        load_model_config(given)
    message = str(caught.value)
    assert message.startswith("cannot reach the Hugging Face Hub")
    assert (f"did you mean the bundled {hint}?" in message) if hint else "did you mean" not in message


def test_hub_failure_with_a_revision_says_the_bundled_copy_needs_none(models_dir, monkeypatch):
    def unreachable(repo_id, revision):
        raise ModelNotFoundError("cannot reach the Hugging Face Hub")
    monkeypatch.setattr(config_source, "_from_hub", unreachable)
    with pytest.raises(ModelNotFoundError, match=r"without --revision the bundled "
                                                 r"meta-llama/Llama-3\.1-8B is used"):
        load_model_config("meta-llama/Llama-3.1-8B", revision="v2")


def test_config_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(TINY).encode())
    assert load_model_config(str(path)).config == TINY
