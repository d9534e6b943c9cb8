"""End to end at real size, as a new user would: a random-weight Llama built here, realistic code records in the
documented JSONL format, `redline import`, `redline train` at the defaults (plus the one setting under test),
then peak GPU memory, processed tokens/s and MFU from the adapter's redline.json.

Records: prompt = real Python source (the standard library's) up to a function's signature, ~770 tokens;
completion = that function's body, ~150 tokens; feedback = a pytest failure and a ruff finding; every 8th record
an `accept`. Random weights learn nothing, so the gate must refuse every adapter here (that is checked too).

    python bench/gpu_e2e.py --shape 1.5b
    python bench/gpu_e2e.py --shape 7b --setting 'max_memory="22GiB"' --records 64
    python bench/gpu_e2e.py --shape 7b --setting 'quantize="4bit"' --records 64
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from typing import Any

SHAPES = {  # hidden, layers, intermediate, heads, kv heads
    "tiny": (256, 4, 688, 4, 2),
    "1.5b": (2048, 28, 5632, 16, 8),
    "7b": (4096, 32, 11008, 32, 32),
}
SPECIALS = ["<unk>", "<s>", "</s>", "<pad>"]


def sources(limit_chars: int = 30_000_000) -> list[str]:
    """Python source text from the standard library (always there, real code)."""
    out, total = [], 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if "test" in path.parts or "idlelib" in path.parts:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        out.append(text)
        total += len(text)
        if total > limit_chars:
            break
    return out


def build_tokenizer(out: Path, vocab: int, texts: list[str]) -> Any:
    """A byte-level BPE tokenizer of `vocab` ids trained on `texts` (cached in `out`: every shape shares it)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    if (out / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(out)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIALS,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>")
    fast.save_pretrained(out)
    return fast


def build_model(out: Path, shape: str, tokenizer: Any) -> Path:
    """A random-weight Llama of `shape` (bf16 on CUDA), saved with `tokenizer`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    hidden, layers, inter, heads, kv = SHAPES[shape]
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
                      intermediate_size=inter, num_attention_heads=heads, num_key_value_heads=kv,
                      max_position_embeddings=4096, bos_token_id=1, eos_token_id=2, pad_token_id=3,
                      tie_word_embeddings=False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(torch.bfloat16 if device == "cuda" else torch.float32)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model
    return out


def records(texts: list[str], n: int, model_id: str, seed: int = 0) -> list[dict]:
    """`n` records in the documented JSONL shape: prompt up to a def, its body as the completion, feedback."""
    from redline.records import Feedback, Generation, ModelRef, Prompt

    rng = random.Random(seed)
    found = []
    for text in texts:
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        lines = text.splitlines(keepends=True)
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef) or not node.body or node.end_lineno is None:
                continue
            start = node.body[0].lineno - 1
            body = "".join(lines[start:node.end_lineno])
            head = "".join(lines[:start])
            if 400 <= len(body) <= 900 and len(head) >= 3000:
                found.append((node.name, head[-3000:], body))
    rng.shuffle(found)
    out = []
    for i, (name, prompt, body) in enumerate(found[:n]):
        gen = Generation(prompt_format="raw", prompt=Prompt(text=prompt), completion=body,
                         model=ModelRef(id=model_id), origin="import")
        if i % 8 == 7:
            fbs = [Feedback(kind="accept", source="pytest", message="all checks passed", severity="info",
                            generation_id=gen.id)]
        else:
            fbs = [Feedback(kind="test_failure", source="pytest", generation_id=gen.id,
                            message=f"test_{name} failed: AssertionError: assert {name}(*args) == expected",
                            detail=f"E       AssertionError: {name} returned None\nE       assert None == 42"),
                   Feedback(kind="diagnostic", source="ruff", rule="F841", severity="warning", generation_id=gen.id,
                            message="Local variable `result` is assigned to but never used")]
        out.append({"generation": gen.to_dict(), "feedback": [f.to_dict() for f in fbs]})
    return out


def redline(cwd: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDLINE_HOME": str(home), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "redline", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, check=False)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="1.5b")
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--records", type=int, default=96)
    ap.add_argument("--setting", action="append", default=[], metavar='KEY=TOML',
                    help='a [train] setting, e.g. max_memory="22GiB" (repeatable); the rest stay default')
    ap.add_argument("--source-chars", type=int, default=30_000_000, help="stdlib text for the tokenizer")
    ap.add_argument("--work", type=Path, default=Path("/tmp/redline-gpu-e2e"))
    args = ap.parse_args(argv)
    work = args.work / f"{args.shape}-{abs(hash(tuple(args.setting))) % 10**6}"
    model_dir = args.work / f"model-{args.shape}-{args.vocab}"
    texts = sources(args.source_chars)
    t0 = time.perf_counter()
    if not (model_dir / "config.json").is_file():
        build_model(model_dir, args.shape, build_tokenizer(args.work / f"tokenizer-{args.vocab}", args.vocab, texts))
    built = time.perf_counter() - t0
    repo, home = work / "repo", work / "home"
    repo.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    settings = "\n".join(args.setting)
    (repo / "redline.toml").write_text(f'model = "{model_dir}"\n[train]\n{settings}\n', encoding="utf-8")
    jsonl = work / "records.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in records(texts, args.records, str(model_dir))))
    imp = redline(repo, home, "import", str(jsonl))
    if imp.returncode:
        print(imp.stdout, imp.stderr)
        return 1
    t1 = time.perf_counter()
    run = redline(repo, home, "train")
    wall = time.perf_counter() - t1
    tail = "\n".join((run.stdout + run.stderr).strip().splitlines()[-25:])
    print(tail)
    metas = sorted(home.rglob("versions/v*/redline.json"))
    if run.returncode or not metas:
        print(f"redline train failed (exit {run.returncode})")
        return 1
    meta = json.loads(metas[-1].read_text())
    m = meta["metrics"]["metrics"]
    plan = m.get("memory_plan", {})
    gate = meta.get("gate") or {}
    shape = m.get("model_shape", {})
    mfu = f"{m['mfu']:.1%}" if "mfu" in m else "n/a (no GPU peak known)"
    print(f"\nRESULT shape={args.shape} params={shape.get('params', 0) / 1e9:.2f}B "
          f"settings={args.setting or 'defaults'} "
          f"records={args.records} steps={meta['metrics']['steps']} train_wall={wall:.0f}s (model build {built:.0f}s) "
          f"tok/s={m.get('tokens_per_s', 0):.0f} MFU={mfu} "
          f"peak_train_mem={m.get('peak_memory_bytes', 0) / 2**30:.1f}GiB micro_batch={m.get('micro_batch')} "
          f"ckpt={plan.get('gradient_checkpointing')} padding={m.get('padding_waste', 0):.1%} "
          f"teacher_pass={m.get('teacher_pass_seconds', 0):.0f}s (cached={m.get('teacher_cached')}) "
          f"gate={'passed' if gate.get('passed') else 'refused'}: {'; '.join(gate.get('reasons', []))[:200]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
