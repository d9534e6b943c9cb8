"""`redline adapters export`: one adapter version in the form another runtime serves.

- `dir`: the PEFT folder as it is (adapter_config.json, adapter_model.safetensors, Redline's redline.json).
- `vllm`: that folder plus `vllm-serve.sh` (the `vllm serve … --lora-modules` line; the runtime-load request).
- `llamacpp`: a GGUF LoRA file (gguf_lora.py) and the `llama-server -m BASE.gguf --lora OUT.gguf` line.
- `ollama`: the folder plus a Modelfile (`FROM` the base, `ADAPTER` the folder); `ollama create` is run when
  `ollama` is on PATH, else printed.

Every export is written to a temporary sibling and renamed into place, so a reader never sees half of one; an
`-o` that is a symbolic link is refused (the rename would replace the link, or write through it). The version is
checked first (`AdapterRegistry.verify`: the digests recorded at training and the safetensors header), so a damaged
adapter is never copied or converted.
Where the target base model is knowable (a local HF folder, a GGUF file, or a model name when the adapter was
trained on a named model) it is checked against the adapter's tensors before anything is written.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from redline.adapter_store import registry_for
from redline.adapters import AdapterRegistry, adapter_shapes, served_name
from redline.config import Config
from redline.errors import ConfigError, NotFound, RedlineError
from redline.export import gguf_lora, vllm
from redline.fsutil import fsync_path

TARGETS = ("dir", "vllm", "llamacpp", "ollama")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "adapter_model.bin", "redline.json",
                 "train_config.json")


@dataclass(frozen=True)
class Export:
    target: str
    version: str
    name: str  # what the runtime serves it as
    path: Path
    commands: list[str] = field(default_factory=list)  # what to run next (printed by the CLI)
    ran: list[str] | None = None  # a command Redline ran for the user (ollama create)


def resolve_version(registry: AdapterRegistry, version: str) -> str:
    """`current` → the promoted version; an unknown version → one line listing the versions there are."""
    versions = registry.versions()
    if version == "current":
        current = registry.current()
        if current is None:
            raise NotFound("no adapter is promoted (current)",
                           fix=f"export one of: {', '.join(versions)}" if versions else "run `redline train`")
        return current
    if version not in versions:
        raise NotFound(f"no adapter version {version!r}",
                       fix=f"versions: {', '.join(versions)}, current" if versions else "run `redline train`")
    return version


def export_adapter(config: Config, version: str, target: str, out: Path | None = None, *,
                   base: str | None = None) -> Export:
    """Export VERSION (or `current`) for TARGET into OUT (default: the repo's state dir, `exports/`)."""
    if target not in TARGETS:
        raise ConfigError(f"unknown export target {target!r}", fix=f"use one of: {', '.join(TARGETS)}")
    registry = registry_for(config)
    version = resolve_version(registry, version)
    src = registry.verify(version)
    meta = registry.meta(version)
    trained_on = _trained_on(src, meta)
    exports = config.state_dir / "exports"
    if out is not None and Path(out).absolute().is_relative_to(config.adapters_dir.absolute()):
        raise ConfigError("an export may not be written into the adapter registry", path=out,
                          fix="choose an -o outside it")
    name = served_name(config.repo_id, version)
    if target == "llamacpp":
        return _llamacpp(config, src, version, name, trained_on, out or exports / f"{version}.gguf", base)
    out = Path(out or exports / f"{version}-{target}").absolute()
    if base is not None:
        check_base(src, version, trained_on, base, compare_names=target == "vllm")
    if target == "dir":
        _atomic_dir(out, lambda tmp: _copy_adapter(src, tmp))
        return Export(target, version, name, out)
    if target == "vllm":
        return _vllm(src, version, name, out, base or trained_on or config.model)
    return _ollama(src, version, name, out, base or trained_on or config.model)


# -- targets ---------------------------------------------------------------------------------------------------


def _vllm(src: Path, version: str, name: str, out: Path, base: str | None) -> Export:
    if not base:
        raise ConfigError("the base model for vLLM is unknown", fix="pass --base MODEL")
    rank = adapter_rank(src)
    serve = vllm.serve_command(base, name, str(out), rank)
    load = vllm.load_request("http://localhost:8000", name, str(out))
    script = "\n".join([
        "#!/bin/sh",
        f"# Serve Redline adapter {version} as model {name!r} from vLLM.",
        "# Or load it into a vLLM already running with VLLM_ALLOW_RUNTIME_LORA_UPDATING=True (always under a new",
        "# versioned name: vLLM keys its prefix cache by adapter name):",
        f"#   {load}",
        f"exec env {serve}",
        "",
    ])

    def fill(tmp: Path) -> None:
        _copy_adapter(src, tmp)
        (tmp / "vllm-serve.sh").write_text(script, encoding="utf-8")
        (tmp / "vllm-serve.sh").chmod(0o755)

    _atomic_dir(out, fill)
    return Export("vllm", version, name, out, [serve, load])


def _ollama(src: Path, version: str, name: str, out: Path, base: str | None) -> Export:
    if not base:
        raise ConfigError("the base model for Ollama is unknown", fix="pass --base MODEL (an Ollama model name)")
    tag = ollama_name(name)
    modelfile = f"FROM {base}\nADAPTER {out}\n"

    def fill(tmp: Path) -> None:
        _copy_adapter(src, tmp)
        (tmp / "Modelfile").write_text(modelfile, encoding="utf-8")

    _atomic_dir(out, fill)
    create = ["ollama", "create", tag, "-f", str(out / "Modelfile")]
    command = shlex.join(create)
    if shutil.which("ollama") is None:
        return Export("ollama", version, tag, out, [command, f"ollama run {tag}"])
    proc = subprocess.run(create, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        last = ((proc.stderr or proc.stdout).strip().splitlines() or ["no output"])[-1]
        raise RedlineError(f"`{command}` failed ({proc.returncode}): {last}", path=out,
                           fix="check that the FROM model matches the adapter's base (--base)")
    return Export("ollama", version, tag, out, [f"ollama run {tag}"], ran=[command])


def _llamacpp(config: Config, src: Path, version: str, name: str, trained_on: str | None, out: Path,
              base: str | None) -> Export:
    out = Path(out).absolute()
    if out.is_dir():  # a folder (a linked one too): the file goes inside it
        out = out / f"{name.replace('@', '-')}.gguf"
    _refuse_link(out)
    if out.is_file() and _head(out) != b"GGUF":
        raise ConfigError("the output exists and is not a GGUF file; nothing was written", path=out,
                          fix="choose another -o")
    hf_base = base if base and Path(base).is_dir() else None  # --base may name the HF base folder instead
    base_gguf = Path(base).absolute() if base and not hf_base else None
    if base_gguf is not None and not base_gguf.is_file():
        raise NotFound("the base GGUF does not exist", path=base_gguf,
                       fix="convert the base with llama.cpp's convert_hf_to_gguf.py and pass it as --base")
    if base_gguf is not None:
        shape = gguf_lora.base_shape_from_gguf(base_gguf)
        _check_gguf_base(src, version, trained_on, base_gguf, shape)
    else:
        hf_config, hf_dir = _hf_config(*((hf_base,) if hf_base else (trained_on, config.model)))
        check_base(src, version, trained_on, hf_dir)
        shape = gguf_lora.base_shape_from_hf(hf_config, hf_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    gguf_lora.write_gguf_lora(src, out, shape, name=name)
    serve = f"llama-server -m {shlex.quote(str(base_gguf or 'BASE.gguf'))} --lora {shlex.quote(str(out))}"
    if base_gguf is None:  # the base has to be converted once, with llama.cpp's own converter
        return Export("llamacpp", version, name, out,
                      [f"python convert_hf_to_gguf.py {shlex.quote(hf_dir)} --outfile BASE.gguf", serve])
    return Export("llamacpp", version, name, out, [serve])


def _head(path: Path) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(4)


def ollama_name(name: str) -> str:
    """Ollama tags allow [a-z0-9._-]: `app@v0003` → `app:v0003`."""
    repo, _, version = name.partition("@")
    clean = re.sub(r"[^a-z0-9._-]+", "-", repo.lower()).strip("-") or "redline"
    return f"{clean}:{version}" if version else clean


# -- the base model check --------------------------------------------------------------------------------------


def check_base(src: Path, version: str, trained_on: str | None, target: str, *, compare_names: bool = False) -> None:
    """Refuse a target base the adapter cannot fit, when that is knowable: a local HF folder (tensor shapes
    from the safetensors headers), a GGUF file (tensor shapes), or, with `compare_names` (vLLM takes the same
    hub ids as transformers; Ollama's names are another namespace), a hub id vs the hub id it was trained on."""
    path = Path(target)
    if path.is_file() and path.suffix == ".gguf":
        _check_gguf_base(src, version, trained_on, path, gguf_lora.base_shape_from_gguf(path))
        return
    if path.is_dir():
        shapes = _hf_shapes(path)
        if shapes:
            for module, (out_f, in_f) in sorted(adapter_shapes(src).items()):
                have = shapes.get(f"{module}.weight")
                if have != (out_f, in_f):
                    what = "has no" if have is None else f"has {have[0]}x{have[1]} for"
                    _mismatch(version, trained_on, target, f"it {what} {module}.weight, the adapter needs "
                                                           f"{out_f}x{in_f}")
        return
    if compare_names and trained_on and _is_hub_id(trained_on) and _is_hub_id(target) and target != trained_on:
        _mismatch(version, trained_on, target, "a different model")


def _is_hub_id(ref: str) -> bool:
    """`org/name` or `name`, not a path on this machine."""
    return not ref.startswith(("/", ".", "~")) and ref.count("/") <= 1 and not Path(ref).exists()


def _check_gguf_base(src: Path, version: str, trained_on: str | None, base: Path,
                     shape: gguf_lora.BaseShape) -> None:
    import gguf

    have = {t.name: tuple(int(d) for d in t.shape) for t in gguf.GGUFReader(base).tensors}
    tensors = gguf_lora.gguf_tensors(src, shape)
    for tname, a in tensors.items():
        if not tname.endswith(".lora_a"):
            continue
        weight = tname.removesuffix(".lora_a")
        b = tensors[weight + ".lora_b"]
        need = (a.shape[1], b.shape[0])  # ggml order: (in, out)
        if have.get(weight) != need:
            what = "has no" if weight not in have else f"has {have[weight][0]}x{have[weight][1]} for"
            _mismatch(version, trained_on, str(base), f"it {what} {weight}, the adapter needs {need[0]}x{need[1]}")


def _mismatch(version: str, trained_on: str | None, target: str, why: str) -> None:
    raise ConfigError(f"adapter {version} was trained on {trained_on or 'an unrecorded base'} and does not fit "
                      f"{target} ({why})", fix="export for the model it was trained on")


def adapter_rank(src: Path) -> int:
    cfg = json.loads((src / "adapter_config.json").read_text(encoding="utf-8"))
    return max([int(cfg.get("r") or 8), *(int(r) for r in (cfg.get("rank_pattern") or {}).values())])


def _hf_shapes(model_dir: Path) -> dict[str, tuple[int, int]]:
    """2-D weight shapes of a local HF model, read from its safetensors headers (no weights loaded)."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, int]] = {}
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(file), framework="numpy") as f:
            for key in f.keys():
                shape = f.get_slice(key).get_shape()
                if len(shape) == 2:
                    shapes[key] = (shape[0], shape[1])
    return shapes


def _hf_config(*candidates: str | None) -> tuple[dict[str, Any], str]:
    for c in candidates:
        if c and (Path(c) / "config.json").is_file():
            return json.loads((Path(c) / "config.json").read_text(encoding="utf-8")), c
    raise NotFound("the base model's config.json is not on this machine (needed to lay the adapter out for "
                   "llama.cpp)", fix="pass --base BASE.gguf (the base converted for llama.cpp)")


def _trained_on(src: Path, meta: dict[str, Any]) -> str | None:
    recorded = (meta.get("base_model") or {}).get("id")
    if recorded:
        return str(recorded)
    try:
        return json.loads((src / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError):
        return None


# -- atomic folders --------------------------------------------------------------------------------------------


def _copy_adapter(src: Path, dst: Path) -> None:
    for name in ADAPTER_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)


def _refuse_link(out: Path) -> None:
    if out.is_symlink():
        raise ConfigError("the output is a symbolic link; nothing was written", path=out,
                          fix="choose another -o (a plain path)")


def _atomic_dir(out: Path, fill: Callable[[Path], None]) -> None:
    """Build the export in a hidden sibling, then rename it into place (replacing an earlier export)."""
    _refuse_link(out)
    if out.exists() and not (out / "adapter_config.json").is_file():
        raise ConfigError("the output exists and is not an adapter export; nothing was written", path=out,
                          fix="choose another -o")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        fill(tmp)
        for f in tmp.iterdir():
            fsync_path(f)
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.rename(out, old)
            os.rename(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, out)
        fsync_path(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
