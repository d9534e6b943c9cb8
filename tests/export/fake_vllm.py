"""A stand-in for vLLM's LoRA endpoints (vLLM itself needs a GPU): records every request as a JSON line.

    python fake_vllm.py PORT_FILE LOG_FILE [--no-runtime-lora]

Answers like vLLM's OpenAI server: `GET /v1/models` lists the base and each loaded LoRA (with `parent`),
`POST /v1/load_lora_adapter` loads a new name (200, plain text) and refuses a known one (400); with
`--no-runtime-lora` the load route does not exist (404), as when VLLM_ALLOW_RUNTIME_LORA_UPDATING is unset;
`POST /v1/completions` answers " = 1" under the model asked for (404 for a model it does not serve). With
`VLLM_PLUGINS=lora_filesystem_resolver` and `VLLM_LORA_RESOLVER_CACHE_DIR=DIR` it resolves a model it does not
know as vLLM's filesystem resolver does: `DIR/<name>/adapter_config.json` with `peft_type` "LORA" and
`base_model_name_or_path` equal to the served base model is loaded under `<name>` (and logged as `resolve`).
"""

from __future__ import annotations

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

BASE = "base-model"


def main() -> None:
    port_file, log_file = Path(sys.argv[1]), Path(sys.argv[2])
    runtime = "--no-runtime-lora" not in sys.argv
    loaded: dict[str, str] = {}

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _record(self, body: object) -> None:
            with log_file.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"method": self.command, "path": self.path, "body": body}) + "\n")

        def _send(self, status: int, payload: object, content_type: str = "application/json") -> None:
            data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _resolve(self, name: str) -> None:
            cache = os.environ.get("VLLM_LORA_RESOLVER_CACHE_DIR")
            if not cache or "lora_filesystem_resolver" not in os.environ.get("VLLM_PLUGINS", ""):
                return
            root = os.path.realpath(cache)
            path = os.path.realpath(os.path.join(root, name))
            config = os.path.join(path, "adapter_config.json")
            if os.path.commonpath([root, path]) != root or not os.path.exists(config):
                return
            with open(config) as fh:
                adapter = json.load(fh)
            if adapter.get("peft_type") == "LORA" and adapter.get("base_model_name_or_path") == BASE:
                loaded[name] = path
                self._record({"resolve": name})

        def do_GET(self) -> None:
            self._record(None)
            if self.path != "/v1/models":
                self._send(404, {"detail": "Not Found"})
                return
            models = [{"id": BASE, "object": "model", "owned_by": "vllm", "root": BASE, "parent": None}]
            models += [{"id": n, "object": "model", "owned_by": "vllm", "root": p, "parent": BASE}
                       for n, p in loaded.items()]
            self._send(200, {"object": "list", "data": models})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"null")
            self._record(body)
            if self.path == "/v1/completions":  # answers with the model it was asked for
                if body.get("model") not in (BASE, *loaded):
                    self._resolve(str(body.get("model")))
                known = body.get("model") in (BASE, *loaded)
                self._send(200 if known else 404, {"id": "cmpl-1", "object": "text_completion",
                                                   "model": body.get("model"), "choices": [
                                                       {"index": 0, "text": " = 1", "finish_reason": "stop"}]})
                return
            if self.path != "/v1/load_lora_adapter" or not runtime:
                self._send(404, {"detail": "Not Found"})
                return
            name = body["lora_name"]
            if name in loaded:
                self._send(400, {"error": {"message": f"The lora adapter '{name}' has already been loaded.",
                                           "type": "InvalidUserInput", "code": 400}})
                return
            loaded[name] = body["lora_path"]
            self._send(200, f"Success: LoRA adapter '{name}' added successfully.", "text/plain")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    tmp = port_file.with_suffix(".tmp")
    tmp.write_text(str(server.server_address[1]))
    tmp.replace(port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
