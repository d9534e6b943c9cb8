"""The exported GGUF LoRA in real llama.cpp (through llama-cpp-python): it changes the logits exactly as PEFT does.

Skipped unless `llama-cpp-python` is installed (it compiles llama.cpp from source: see docs/export.md).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from redline.export.runtimes import export_adapter
from tests.export.llama_gguf import write_llama_gguf

llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed "
                                "(`pip install 'llama-cpp-python[server]'` compiles llama.cpp)")
pytestmark = [pytest.mark.slow, pytest.mark.real_part]

IDS = [3, 17, 42, 99, 5, 64, 7, 120, 1, 33]


def hf_logits(base: Path, adapter: Path | None) -> np.ndarray:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    with torch.no_grad():
        return model(torch.tensor([IDS])).logits[0].numpy()


def cpp_logits(base_gguf: Path, lora: Path | None) -> np.ndarray:
    kw = {"lora_path": str(lora)} if lora else {}
    llm = llama_cpp.Llama(model_path=str(base_gguf), n_ctx=64, n_batch=64, logits_all=True, n_threads=1,
                          verbose=False, type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32, **kw)
    try:
        llm.eval(IDS)
        return np.array(llm.scores[: len(IDS)], dtype=np.float32)
    finally:
        llm.close()


def test_llamacpp_applies_the_exported_lora_as_peft_does(repo, tiny_base: Path, tiny_adapter: Path,
                                                        tmp_path: Path) -> None:
    base_gguf = write_llama_gguf(tiny_base, tmp_path / "base.gguf")
    lora = export_adapter(repo, "current", "llamacpp", tmp_path / "lora.gguf", base=str(base_gguf)).path
    hf_base, hf_lora = hf_logits(tiny_base, None), hf_logits(tiny_base, tiny_adapter)
    # the adapter moves the logits by far more than the tolerance below, so matching it means something
    assert np.abs(hf_lora - hf_base).max() > 100 * 1e-3 * np.abs(hf_lora).max()
    scale = np.abs(hf_lora).max()
    np.testing.assert_allclose(cpp_logits(base_gguf, None), hf_base, atol=1e-3 * np.abs(hf_base).max())
    np.testing.assert_allclose(cpp_logits(base_gguf, lora), hf_lora, atol=1e-3 * scale)


def test_llama_cpp_server_serves_the_exported_lora(repo, tmp_path: Path) -> None:
    """`python -m llama_cpp.server --model BASE.gguf --lora_path OUT.gguf` answers as HF + PEFT greedy does."""
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python is installed without its [server] extra")
    from tests.export.helpers import build_adapter, register
    from tests.trainer.conftest import build_tiny_model

    base = build_tiny_model(tmp_path / "tok-base")  # with a byte-level BPE tokenizer the server can use
    adapter = build_adapter(base, tmp_path / "tok-adapter")
    version = register(repo, adapter, str(base))
    base_gguf = write_llama_gguf(base, tmp_path / "tok-base.gguf")
    lora = export_adapter(repo, version, "llamacpp", tmp_path / "tok-lora.gguf", base=str(base_gguf)).path
    prompt = "def add(a, b):\n"
    ids, tokens, with_lora, without = hf_greedy(base, adapter, prompt, 8)
    vocab = llama_cpp.Llama(model_path=str(base_gguf), vocab_only=True, verbose=False)
    assert vocab.tokenize(prompt.encode(), add_bos=True) == ids  # both sides see the same prompt tokens
    # the adapter changes these log-probs far beyond the tolerance below, so matching them means it was applied
    assert np.abs(with_lora - without).max() > 0.5
    with llama_server(base_gguf, lora) as url:
        answer = post_json(f"{url}/v1/completions", {"prompt": prompt, "max_tokens": 8, "temperature": 0.0,
                                                     "repeat_penalty": 1.0, "logprobs": 1})
    # (the server may run past max_tokens to finish a UTF-8 character, so only the first 8 are compared)
    served = answer["choices"][0]["logprobs"]["token_logprobs"][: len(tokens)]
    np.testing.assert_allclose(served, with_lora, atol=2e-2)


def hf_greedy(base: Path, adapter: Path, prompt: str, n: int) -> tuple[list[int], list[int], np.ndarray, np.ndarray]:
    """The prompt's ids, HF + PEFT's greedy continuation, and its tokens' log-probs with and without the adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(base))
    ids = tok(prompt)["input_ids"]
    lora = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32),
                                     str(adapter))
    seq = lora.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False, pad_token_id=tok.pad_token_id)
    new = seq[0, len(ids):]
    logps = []
    for model in (lora, AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)):
        with torch.no_grad():
            logits = model(seq).logits[0, len(ids) - 1 : -1].log_softmax(-1)
        logps.append(logits.gather(1, new[:, None])[:, 0].numpy())
    return ids, new.tolist(), logps[0], logps[1]


def post_json(url: str, body: dict) -> dict:
    import json
    import urllib.request

    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


@contextlib.contextmanager
def llama_server(model: Path, lora: Path | None) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
           *(["--lora_path", str(lora)] if lora else []),
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "128", "--n_threads", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"llama_cpp.server exited: {proc.stderr.read().decode()[-2000:]}")
            try:
                urllib.request.urlopen(f"{url}/v1/models", timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=20)
