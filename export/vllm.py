"""Serving Redline's adapters from a vLLM server: the start-up command and the runtime load request.

Standard library only, so `redline proxy` can call `vllm_load` without torch.
"""

from __future__ import annotations

import json
import shlex
import urllib.error
import urllib.request
from typing import Any

from redline.errors import UpstreamError

# vLLM accepts only these --max-lora-rank values (LoRAConfig.possible_max_ranks)
MAX_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
RUNTIME_ENV = "VLLM_ALLOW_RUNTIME_LORA_UPDATING"


def max_lora_rank(rank: int) -> int:
    """The smallest --max-lora-rank vLLM accepts that fits `rank`."""
    for allowed in MAX_LORA_RANKS:
        if rank <= allowed:
            return allowed
    raise UpstreamError(f"LoRA rank {rank} exceeds vLLM's largest --max-lora-rank {MAX_LORA_RANKS[-1]}",
                        fix="train with a smaller `lora_r`")


def serve_command(base: str, name: str, path: str, rank: int) -> str:
    """`vllm serve` with this adapter preloaded under `name`, and runtime loading of later versions allowed."""
    return (f"{RUNTIME_ENV}=True vllm serve {shlex.quote(base)} --enable-lora --max-lora-rank {max_lora_rank(rank)}"
            f" --lora-modules {shlex.quote(f'{name}={path}')}")


def load_request(upstream_url: str, name: str, path: str) -> str:
    """The same load as `vllm_load`, as a curl command line."""
    body = json.dumps({"lora_name": name, "lora_path": path})
    return (f"curl -sS -X POST {shlex.quote(upstream_url.rstrip('/') + '/v1/load_lora_adapter')}"
            f" -H 'Content-Type: application/json' -d {shlex.quote(body)}")


def vllm_models(upstream_url: str, *, timeout: float = 10.0) -> list[dict[str, Any]]:
    """`GET /v1/models`: the base model and every LoRA loaded (LoRAs carry `parent` = the base)."""
    data = _call("GET", upstream_url, "/v1/models", None, timeout)
    return list(data.get("data", [])) if isinstance(data, dict) else []


def vllm_load(upstream_url: str, name: str, path: str, *, timeout: float = 120.0) -> bool:
    """Load the adapter at `path` into a running vLLM under `name`; False when `name` was already loaded.

    Always pass a NEW versioned name for each adapter version (`<repo>@v0007`), never re-load new weights under
    a name vLLM already knows: vLLM keys its prefix (KV) cache by adapter name, so a reload under the same name
    would keep serving KV blocks computed with the old weights, and requests routed by name could land on
    either version. A name that is already loaded is therefore left alone (same name = same version).
    The server must run with `VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` and `--enable-lora`.
    """
    if any(m.get("id") == name for m in vllm_models(upstream_url, timeout=timeout)):
        return False
    try:
        _call("POST", upstream_url, "/v1/load_lora_adapter", {"lora_name": name, "lora_path": path}, timeout)
    except UpstreamError as exc:
        if "already" in exc.message:  # loaded between our check and the load: same name, same version
            return False
        raise
    return True


def _call(method: str, base_url: str, path: str, body: dict[str, Any] | None, timeout: float) -> Any:
    url = base_url.rstrip("/") + path
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        detail = _error_text(exc.read())
        if exc.code == 404 and path == "/v1/load_lora_adapter":
            raise UpstreamError(f"{url} has no runtime LoRA loading (HTTP 404)", path=base_url,
                                fix=f"start vLLM with {RUNTIME_ENV}=True and --enable-lora") from None
        raise UpstreamError(f"{method} {url} failed: HTTP {exc.code} {detail}", path=base_url,
                            fix="check the vLLM server's log") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UpstreamError(f"cannot reach {url} ({reason})", path=base_url,
                            fix="start the vLLM server or fix --upstream") from None
    try:
        return json.loads(raw) if raw.strip() else None
    except ValueError:
        return raw.decode("utf-8", "replace")  # vLLM answers the load with plain text


def _error_text(raw: bytes) -> str:
    """vLLM's error body is {"error": {"message": ...}} or {"message": ...}; one line either way."""
    text = raw.decode("utf-8", "replace")
    try:
        data = json.loads(text)
        err = data.get("error", data) if isinstance(data, dict) else data
        text = str(err.get("message", err) if isinstance(err, dict) else err)
    except ValueError:
        pass
    return " ".join(text.split())[:300]
