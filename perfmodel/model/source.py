"""Where a model's config.json comes from: turn the MODEL argument into a parsed config and its provenance.

MODEL resolves, in order, to
1. a bundled config, configs/models/<org>/<name>.json, matched on "<org>/<name>" in any case;
2. an existing config.json file, or a folder that holds one;
3. a Hugging Face repo id, of which only config.json is fetched (through the HF cache, honouring
   HF_TOKEN, HF_HUB_OFFLINE and HF_ENDPOINT). No other file is fetched and no repo code runs.

Every known failure is a ModelNotFoundError or ConfigError of one line that names the fix.
huggingface_hub is imported only inside the function that fetches, so that `perfmodel predict`
on a bundled model or a local file starts fast.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from perfmodel.errors import ConfigError, ModelNotFoundError

MODELS_DIR = Path(__file__).resolve().parent.parent.parent / "configs" / "models"
CONFIG_NAME = "config.json"

# The Hub's own rule (huggingface_hub.utils.validate_repo_id): "name" or "org/name" of word
# characters, "-" and ".", at most 96 characters, no "--" or "..", not ending in ".git".
_REPO_ID = re.compile(r"^(?:[\w\-.]+/)?[\w\-.]+$")
_FIX_ID = "check the id, or run `perfmodel models` for the bundled ones"
_FIX_LOCAL = "or pass the path of a local config.json"
# One try with a short timeout: an unreachable Hub fails in seconds, not after huggingface_hub's
# retries (23 s of backoff, then a 60 s timeout). HF_HUB_ETAG_TIMEOUT, when set, overrides it.
HUB_TIMEOUT_S = 5


@dataclass(frozen=True)
class ModelConfig:
    """A parsed config.json and where it came from."""

    model_id: str  # "meta-llama/Llama-3.1-8B", or the path given
    config: dict  # the parsed config.json
    source: str  # "bundled configs/models/…", "file /abs/…/config.json",
    #              "Hugging Face Hub (cache|download) <repo>@<commit>"

    @property
    def where(self) -> str:
        """The file a user would fix: a path, or the Hub repo's config.json."""
        if self.source.startswith(("bundled ", "file ")):
            return self.source.split(" ", 1)[1]
        return f"{self.source.rsplit(' ', 1)[-1]} {CONFIG_NAME}"


def bundled_models() -> list[str]:
    """Ids ("<org>/<name>") of configs/models/<org>/<name>.json, sorted ignoring case."""
    return sorted(_bundled_paths().values(), key=str.casefold)


def load_model_config(model: str, *, revision: str | None = None) -> ModelConfig:
    """Resolve MODEL to a bundled config, a local config.json (or its folder), or a Hub repo id.

    revision (a branch, tag or commit) names a Hub version: with one, a bundled id is fetched
    from the Hub instead, and a local path is an error.
    """
    if not model.strip():
        raise ModelNotFoundError("no model given; pass a Hugging Face repo id or a config.json path, "
                                 "or run `perfmodel models` for the bundled ones")
    bundled = _find_bundled(model) if revision is None else None
    if bundled is not None:
        model_id, path = bundled
        return ModelConfig(model_id, _read_json(path), f"bundled {_display(path)}")
    path = Path(model).expanduser()
    if revision is not None and path.exists():
        raise ConfigError(f"a revision ({revision!r}) applies to Hugging Face repos, not to the local "
                          f"path {model!r}; drop the revision")
    if path.is_dir() and (path / CONFIG_NAME).is_file():
        path = path / CONFIG_NAME
    if path.is_file():
        resolved = path.resolve()
        return ModelConfig(model, _read_json(resolved), f"file {resolved}")
    hub_id = _is_repo_id(model) and not _looks_like_path(model)
    if path.is_dir():  # a local folder is never sent to the Hub, even if named like a repo
        also = (f" (to fetch the Hub repo {model!r} instead, run perfmodel from another folder)"
                if hub_id else "")
        raise ConfigError(f"folder {path.resolve()} holds no {CONFIG_NAME}; pass the folder that "
                          f"holds the model's {CONFIG_NAME}, or the file itself{also}")
    if path.exists():
        raise ConfigError(f"{model} is not a regular file; pass a {CONFIG_NAME} file or the folder "
                          "that holds one")
    if not hub_id:
        raise ModelNotFoundError(f"{model!r} is neither an existing config.json (or folder holding one) "
                                 f"nor a Hugging Face repo id like 'org/name'; {_FIX_ID}")
    try:
        return _from_hub(model, revision)
    except ModelNotFoundError as error:
        near = _near_bundled(model)
        if near is None:
            raise
        hint = f"without --revision the bundled {near} is used" if revision else \
            f"did you mean the bundled {near}?"
        raise ModelNotFoundError(f"{error} ({hint})") from error


def _bundled_paths() -> dict[Path, str]:
    """Each bundled config file and its id."""
    if not MODELS_DIR.is_dir():
        return {}
    return {path: f"{path.parent.name}/{path.stem}" for path in MODELS_DIR.glob("*/*.json")}


def _find_bundled(model: str) -> tuple[str, Path] | None:
    """The (id, path) of the bundled config whose id equals MODEL, ignoring case."""
    wanted = model.strip().casefold()
    for path, model_id in _bundled_paths().items():
        if model_id.casefold() == wanted:
            return model_id, path
    return None


def _near_bundled(model: str) -> str | None:
    """The bundled id of the same name as MODEL under another org (or none): Llama-3.1-8B and
    meta-lama/Llama-3.1-8B mean meta-llama/Llama-3.1-8B. Near spellings are not guessed: one
    digit apart is another model (Qwen3-8B, Qwen3-32B)."""
    name = model.strip().split("/")[-1].casefold()
    return next((i for i in bundled_models() if i.split("/")[-1].casefold() == name), None)


def _display(path: Path) -> str:
    """A bundled path as configs/models/…, relative to the repo root."""
    try:
        return str(path.relative_to(MODELS_DIR.parent.parent))
    except ValueError:
        return str(path)


def _looks_like_path(model: str) -> bool:
    """True for strings a user meant as a path: ./x, /x, ~/x, a/b/c, x.json."""
    return (model.startswith((".", "/", "~")) or "\\" in model or model.count("/") > 1
            or model.endswith(".json"))


def _is_repo_id(model: str) -> bool:
    """Whether MODEL is a syntactically valid Hub repo id."""
    return (bool(_REPO_ID.match(model)) and len(model) <= 96 and "--" not in model
            and ".." not in model and not model.endswith(".git"))


MAX_CONFIG_CHARS = 50 * 10**6  # configs are a few kB; 50 MB is no config.json


def _read_json(path: Path) -> dict:
    """Parse a config.json, naming the file (and the line) when it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark some editors add
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}; pass a readable UTF-8 config.json") from error
    if len(text) > MAX_CONFIG_CHARS:
        raise ConfigError(f"{path} is over {MAX_CONFIG_CHARS // 10**6} MB, no config.json; pass "
                          "the model's config.json")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} line {error.lineno} column {error.colno} is not valid JSON "
                          f"({error.msg}); fix that line or pass another config.json") from error
    except RecursionError:
        raise ConfigError(f"{path} nests objects or lists too deeply to be a config.json; pass "
                          "the model's config.json") from None
    except ValueError as error:  # a number of more than 4,300 digits (Python's int limit)
        raise ConfigError(f"{path} holds a number too long to read ({str(error)[:40]}…); fix "
                          "it in the config") from None
    if not isinstance(config, dict):
        raise ConfigError(f"{path} holds a JSON {type(config).__name__}, not an object; "
                          f"pass the model's config.json")
    return config


def _from_hub(repo_id: str, revision: str | None) -> ModelConfig:
    """Fetch only config.json of a Hub repo through the HF cache, and say whether it was cached."""
    _check_timeouts()
    from huggingface_hub import (
        constants,
        get_hf_file_metadata,
        hf_hub_download,
        hf_hub_url,
        try_to_load_from_cache,
    )

    timeout = constants.HF_HUB_ETAG_TIMEOUT if "HF_HUB_ETAG_TIMEOUT" in os.environ else HUB_TIMEOUT_S
    try:
        cached_before = try_to_load_from_cache(repo_id, CONFIG_NAME, revision=revision)
        if not isinstance(cached_before, str) and not constants.is_offline_mode():
            # Nothing to fall back on: ask once (hf_hub_download would retry for a minute).
            get_hf_file_metadata(hf_hub_url(repo_id, CONFIG_NAME, revision=revision),
                                 timeout=timeout, retry_on_errors=False)
        path = Path(hf_hub_download(repo_id, CONFIG_NAME, revision=revision, tqdm_class=_NoBar,
                                    etag_timeout=timeout))
    except Exception as error:
        known = _hub_error(error, repo_id, revision, constants.ENDPOINT, timeout)
        if known is None:
            raise
        raise known from error
    how = "cache" if isinstance(cached_before, str) and Path(cached_before) == path else "download"
    commit = path.parent.name  # the snapshot folder: …/snapshots/<commit>/config.json
    return ModelConfig(repo_id, _read_json(path), f"Hugging Face Hub ({how}) {repo_id}@{commit}")


def _check_timeouts() -> None:
    """HF_HUB_ETAG_TIMEOUT and HF_HUB_DOWNLOAD_TIMEOUT (seconds, which huggingface_hub reads
    with int() on import): a whole number ≥ 1, or unset."""
    for name in ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT"):
        raw = os.environ.get(name)
        if raw is None:
            continue
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if not 1 <= value <= 86400:
            raise ModelNotFoundError(f"{name}={raw[:20]!r} is not a timeout: set it to whole "
                                     "seconds from 1 to 86400 (e.g. 10), or unset it")


class _NoBar:
    """A progress bar that draws nothing: a config.json is a few kB, and stderr is for errors."""

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return None

    def __getattr__(self, name):  # update(), close(), ... whatever the downloader calls
        return lambda *args, **kwargs: None


def _hub_error(error: Exception, repo_id: str, revision: str | None, endpoint: str,
               timeout: float = HUB_TIMEOUT_S) -> Exception | None:
    """Our one-line error, naming the fix, for a known huggingface_hub failure; None for others.

    GatedRepoError is a RepositoryNotFoundError, and RemoteEntryNotFoundError an HfHubHTTPError,
    so the order of the checks matters.
    """
    from huggingface_hub import errors

    remote_missing = getattr(errors, "RemoteEntryNotFoundError", errors.EntryNotFoundError)
    transport = getattr(errors, "HTTPError", ())  # the HTTP client's base error
    where = f"{repo_id}@{revision}" if revision else repo_id
    if isinstance(error, errors.GatedRepoError):
        return ModelNotFoundError(f"{repo_id} is a gated repo: accept its licence at {endpoint}/{repo_id}, "
                                  f"then set HF_TOKEN or run `hf auth login`")
    if isinstance(error, errors.RepositoryNotFoundError):
        return ModelNotFoundError(f"no repo {repo_id!r} on the Hugging Face Hub ({endpoint}), or it is "
                                  f"private; {_FIX_ID} (for a private repo set HF_TOKEN or run "
                                  f"`hf auth login`)")
    if isinstance(error, errors.RevisionNotFoundError):
        return ModelNotFoundError(f"{repo_id} has no revision {revision!r}; pass an existing branch, tag "
                                  f"or commit")
    if isinstance(error, remote_missing) and not isinstance(error, errors.LocalEntryNotFoundError):
        return ConfigError(f"{where} has no {CONFIG_NAME} on the Hub; pass the path of a local {CONFIG_NAME}")
    if isinstance(error, (errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled)):
        return _not_cached(error, where, endpoint)
    if isinstance(error, errors.HfHubHTTPError):
        response = getattr(error, "response", None)
        status = getattr(response, "status_code", "an error")
        if status == 401:
            return ModelNotFoundError("the Hugging Face Hub rejected the token (401); set a valid HF_TOKEN "
                                      "or run `hf auth login`")
        return ModelNotFoundError(f"the Hugging Face Hub answered {status} for {where}'s {CONFIG_NAME}; "
                                  f"try again later {_FIX_LOCAL}")
    if isinstance(error, errors.HFValidationError):
        return ModelNotFoundError(f"{where!r} is not a valid Hugging Face repo id and revision; {_FIX_ID}")
    if isinstance(error, transport) and "Timeout" in type(error).__name__:
        return ModelNotFoundError(f"the Hugging Face Hub at {endpoint} did not answer within "
                                  f"{timeout} s; check your network, proxy and HF_ENDPOINT (or raise "
                                  f"HF_HUB_ETAG_TIMEOUT) {_FIX_LOCAL}")
    if isinstance(error, transport):  # the probe's ConnectError, a proxy's error, ...
        return ModelNotFoundError(f"cannot reach the Hugging Face Hub at {endpoint} "
                                  f"({type(error).__name__}); check your network, proxy and HF_ENDPOINT "
                                  f"{_FIX_LOCAL}")
    if isinstance(error, PermissionError):
        return ModelNotFoundError(f"cannot write the Hugging Face cache ({error.filename}); set "
                                  f"HF_HUB_CACHE to a writable folder {_FIX_LOCAL}")
    return None


def _not_cached(error: Exception, where: str, endpoint: str) -> ModelNotFoundError:
    """The Hub could not be asked (offline, unreachable, not a Hub) and the cache has no copy."""
    from huggingface_hub import constants, errors

    if constants.is_offline_mode() or isinstance(error.__cause__, errors.OfflineModeIsEnabled):
        return ModelNotFoundError(f"HF_HUB_OFFLINE is set and {where}'s {CONFIG_NAME} is not in the "
                                  f"Hugging Face cache; unset HF_HUB_OFFLINE {_FIX_LOCAL}")
    if isinstance(error.__cause__, errors.FileMetadataError):
        return ModelNotFoundError(f"{endpoint} did not answer like the Hugging Face Hub; check "
                                  f"HF_ENDPOINT and your proxy, {_FIX_LOCAL}")
    return ModelNotFoundError(f"cannot reach the Hugging Face Hub at {endpoint} and {where}'s "
                              f"{CONFIG_NAME} is not in the cache; check your network (and "
                              f"HF_ENDPOINT) {_FIX_LOCAL}")
