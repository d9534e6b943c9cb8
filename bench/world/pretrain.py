"""Pretrain the world's tiny base model from scratch on CPU: a Llama-style decoder and a BPE tokenizer, saved in
Hugging Face format so it loads like any user's model.

The corpus gives it the two abilities a real instruction-tuned code model has:
- prompt → code under the *default* conventions (it writes code), and
- hindsight episodes: a prompt, a wrong attempt, the checker's feedback on it (for randomly drawn non-default
  conventions), the prompt again, then the corrected code (it uses feedback given in context), laid out with
  `HINDSIGHT_TEMPLATE`.

Rebuild the committed model (three stages, about 21 minutes of 2-core compute, more on a shared machine; the
schedule follows a compute budget, so a rebuild is equivalent, not bit-identical):
`python -m bench.world.pretrain --stages --out bench/world/model`. One stage with chosen settings:
`python -m bench.world.pretrain --out DIR --seed 0 [--init EARLIER_DIR --hindsight-fraction 0.85 ...]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path
from typing import Any

from bench.world.api import APIS
from bench.world.checker import check as check_code
from bench.world.hindsight import HINDSIGHT_TEMPLATE, render_feedback_varied
from bench.world.repos import expected_effects, random_change
from bench.world.tasks import all_structures, make_task

MODEL_DIR = Path(__file__).parent / "model"
WEIGHTS = "model.safetensors"
EOS, PAD = "</s>", "<pad>"
#: identifiers, runs of spaces, newlines and single symbols are the pre-tokens; BPE merges inside them
PRETOKEN = r" ?[A-Za-z_][A-Za-z0-9_]*| ?[0-9]+| ?[^\sA-Za-z0-9_]|\n| +"

DEFAULTS: dict[str, Any] = {
    "seed": 0, "docs": 16_000, "hindsight_fraction": 0.5, "vocab_size": 1024, "hidden_size": 128,
    "layers": 4, "heads": 4, "intermediate_size": 384, "max_len": 384, "batch_tokens": 4096, "lr": 3e-3,
    "warmup": 30, "time_budget_s": 480, "max_steps": 500, "threads": 2, "init": "",
}

#: the committed model's recipe: a mixed first stage, then two hindsight-heavy stages continuing from it (the
#: in-context use of feedback, the teacher ceiling, forms in the hindsight-heavy stages)
STAGES: list[dict[str, Any]] = [
    {"seed": 0},
    {"seed": 1, "hindsight_fraction": 0.85, "lr": 2e-3, "warmup": 10, "max_steps": 400, "time_budget_s": 300},
    {"seed": 2, "hindsight_fraction": 0.9, "lr": 1.5e-3, "warmup": 10, "max_steps": 700, "time_budget_s": 600},
]


# -- corpus --------------------------------------------------------------------------------------------------------


def default_doc(rng: random.Random, structures: list[tuple[str, ...]]) -> tuple[str, str]:
    task = make_task(rng.choice(structures), "pretrain")
    return task.prompt, task.solution({})


def hindsight_doc(rng: random.Random, structures: list[tuple[str, ...]]) -> tuple[str, str]:
    """(context, corrected code): a random convention set that the task touches, a partly-default attempt."""
    task = make_task(rng.choice(structures), "pretrain")
    apis = list(task.apis)
    touched = rng.sample(apis, rng.randint(1, min(3, len(apis))))
    others = [a for a in APIS if a not in apis]
    conv = {a: random_change(a, rng) for a in touched + rng.sample(others, rng.randint(0, 2))}
    wrappers = sorted({ch.value for ch in conv.values() if ch.kind == "wrapper"})
    conv = {a: ch for a, ch in conv.items() if ch.kind != "wrapper" or ch.value == (wrappers or [""])[0]}
    # the attempt already follows some conventions (a partly trained student); usually none
    applied = {a: ch for a, ch in conv.items() if rng.random() < 0.2}
    attempt = task.solution(applied)
    result = check_code(conv, attempt, expected_effects(task, conv), task.params)
    feedback = render_feedback_varied(result.findings, rng)
    context = HINDSIGHT_TEMPLATE.format(prompt=task.prompt, completion=attempt, feedback=feedback)
    return context, task.solution(conv)


def corpus(seed: int, n_docs: int, hindsight_fraction: float) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    structures = all_structures()
    return [hindsight_doc(rng, structures) if rng.random() < hindsight_fraction else default_doc(rng, structures)
            for _ in range(n_docs)]


# -- tokenizer -----------------------------------------------------------------------------------------------------


def build_tokenizer(texts: list[str], vocab_size: int) -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKEN), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=2)
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=PAD, padding_side="left",
                                   clean_up_tokenization_spaces=False)


def encode_docs(tokenizer: Any, pairs: list[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """(context ids, target ids + eos) per document. Context and code are tokenized separately and joined by ids,
    as generation and the trainer see them; the loss covers the target only."""
    backend = tokenizer.backend_tokenizer
    contexts = backend.encode_batch([c for c, _ in pairs], add_special_tokens=False)
    codes = backend.encode_batch([code for _, code in pairs], add_special_tokens=False)
    return [(c.ids, [*d.ids, tokenizer.eos_token_id]) for c, d in zip(contexts, codes, strict=True)]


# -- model and training --------------------------------------------------------------------------------------------


def make_model(tokenizer: Any, cfg: dict[str, Any]) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg["hidden_size"], intermediate_size=cfg["intermediate_size"],
        num_hidden_layers=cfg["layers"], num_attention_heads=cfg["heads"], num_key_value_heads=cfg["heads"],
        max_position_embeddings=cfg["max_len"] * 2, tie_word_embeddings=True, rms_norm_eps=1e-5,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


Doc = tuple[list[int], list[int]]


def batches(docs: list[Doc], batch_tokens: int, rng: random.Random) -> list[list[Doc]]:
    """Length-bucketed batches of whole documents (a hindsight episode is never cut from its feedback)."""
    size = [len(c) + len(t) for c, t in docs]
    order = sorted(range(len(docs)), key=lambda i: (size[i], rng.random()))
    out, cur = [], []
    for i in order:
        if cur and (len(cur) + 1) * size[i] > batch_tokens:
            out.append(cur)
            cur = []
        cur.append(docs[i])
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def collate(batch: list[Doc], pad_id: int) -> tuple[Any, Any, Any]:
    """Right-padded ids, attention mask, and labels that score only each document's target."""
    import torch

    width = max(len(c) + len(t) for c, t in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, (c, t) in enumerate(batch):
        ids[row, : len(c) + len(t)] = torch.tensor(c + t)
        mask[row, : len(c) + len(t)] = 1
        labels[row, len(c): len(c) + len(t)] = torch.tensor(t)
    return ids, mask, labels


def pretrain(out_dir: Path, **overrides: Any) -> Path:
    import torch

    cfg = {**DEFAULTS, **overrides}
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(cfg["seed"])
    rng = random.Random(cfg["seed"])
    t0 = time.time()
    pairs = corpus(cfg["seed"], cfg["docs"], cfg["hindsight_fraction"])
    if cfg["init"]:  # continue from an earlier model (same tokenizer), e.g. a hindsight-heavy second stage
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(cfg["init"])
        model = AutoModelForCausalLM.from_pretrained(cfg["init"], dtype=torch.float32)
    else:
        tokenizer = build_tokenizer([c + code for c, code in pairs[:5000]], cfg["vocab_size"])
        model = make_model(tokenizer, cfg)
    docs = [d for d in encode_docs(tokenizer, pairs) if len(d[0]) + len(d[1]) <= cfg["max_len"]]
    n_params = sum(p.numel() for p in model.parameters())
    n_tokens = sum(len(c) + len(t) for c, t in docs)
    print(f"corpus {len(docs)} docs, {n_tokens} tokens, model {n_params / 1e6:.2f}M params, "
          f"prep {time.time() - t0:.0f}s", flush=True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], betas=(0.9, 0.95), weight_decay=0.01)
    # the schedule is set by the time budget: estimate the step count from the first steps' speed
    plan = batches(docs, cfg["batch_tokens"], rng)
    step, progress = 0, 0.0
    model.train()
    # cosine schedule over progress = the larger of steps done / max_steps and compute used / budget; compute is this
    # process's CPU time over its thread count (wall time on dedicated cores), so a shared machine trains the same
    # model, only slower, and a slow machine still ends in budget with an annealed model
    while progress < 1.0:
        lr = cfg["lr"] * min(1.0, (step + 1) / cfg["warmup"]) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))
        for group in opt.param_groups:
            group["lr"] = lr
        ids, mask, labels = collate(plan[step % len(plan)], tokenizer.pad_token_id)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        progress = max(step / cfg["max_steps"], _two_core_seconds(cfg["threads"]) / cfg["time_budget_s"])
        if step % 50 == 0:
            print(f"step {step} loss {loss.item():.3f} lr {lr:.2e} wall {time.time() - t0:.0f}s "
                  f"compute {_two_core_seconds(cfg['threads']):.0f}s", flush=True)
    wall = time.time() - t0
    return save(model, tokenizer, out_dir, cfg, {"wall_s": round(wall, 1), "steps": step, "params": n_params,
                                                 "cpu_s_per_thread": round(_two_core_seconds(cfg["threads"]), 1),
                                                 "final_loss": round(loss.item(), 4)})


def _two_core_seconds(threads: int) -> float:
    """CPU seconds used by this process so far, divided by its thread count."""
    return time.process_time() / threads


def save(model: Any, tokenizer: Any, out_dir: Path, cfg: dict[str, Any], stats: dict[str, Any]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    # how this model reads hindsight, shipped with it as a chat template ships with an instruct model: Redline's
    # teacher uses it (`trainer/contexts.py` declared_template), so the world needs no trainer setting of its own
    tokenizer.init_kwargs["hindsight_template"] = HINDSIGHT_TEMPLATE
    tokenizer.save_pretrained(out_dir)
    digest = sha256_file(out_dir / WEIGHTS)
    (out_dir / "SHA256SUMS").write_text(f"{digest}  {WEIGHTS}\n")
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in cfg.items() if v != DEFAULTS[k])
    meta = {"command": f"python -m bench.world.pretrain --out {out_dir} {flags}".strip(), "config": cfg,
            "template": HINDSIGHT_TEMPLATE, "sha256": digest, **stats}
    (out_dir / "pretrain.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"saved {out_dir} ({stats}) sha256 {digest}", flush=True)
    return out_dir


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify(model_dir: Path) -> bool:
    """True when the weights match the checksum written beside them."""
    sums = model_dir / "SHA256SUMS"
    weights = model_dir / WEIGHTS
    if not (sums.exists() and weights.exists()):
        return False
    return sums.read_text().split()[0] == sha256_file(weights)


def pretrain_stages(out_dir: Path, stages: list[dict[str, Any]] = STAGES) -> Path:
    """Run `stages` in order, each continuing from the one before; only the last is written to `out_dir`."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="redline-pretrain-") as tmp:
        init = ""
        for i, stage in enumerate(stages):
            last = i == len(stages) - 1
            print(f"stage {i + 1}/{len(stages)}", flush=True)
            target = out_dir if last else Path(tmp) / f"stage{i + 1}"
            init = str(pretrain(target, **{**stage, "init": init}))
    return out_dir


def build_or_load_model(cache_dir: str | Path | None = None) -> Path:
    """The committed model if present and intact, else the one in `cache_dir` (pretrained there, all stages, if
    missing)."""
    if cache_dir is None and verify(MODEL_DIR):
        return MODEL_DIR
    target = Path(cache_dir) if cache_dir is not None else MODEL_DIR
    if verify(target):
        return target
    return pretrain_stages(target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=MODEL_DIR)
    parser.add_argument("--stages", action="store_true", help="the committed model's full recipe (STAGES)")
    for key, value in DEFAULTS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    args = vars(parser.parse_args(argv))
    out = args.pop("out")
    if args.pop("stages"):
        pretrain_stages(out)
    else:
        pretrain(out, **args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
