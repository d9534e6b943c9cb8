"""Pretrain world 2's tiny base model from scratch on CPU: a Llama-style decoder over SmolLM2's real tokenizer
(49,152 tokens, ChatML), saved in Hugging Face format so it loads like any user's chat model.

The corpus gives it the two abilities a real instruction-tuned code model has, in chat form:
- a user turn asking for a handler → the assistant's code under the *default* conventions, and
- hindsight episodes: the task, optionally the model's attempt as an assistant turn (default code, sometimes with
  a few conventions already applied), a user turn of the checker's feedback for randomly drawn conventions the task
  touches (in varied layouts and wordings, Redline's among them: `hindsight.FEEDBACK_TURNS`), then the corrected
  code.

The loss covers the final answer and its `<|im_end|>` only. The embedding is tied and 49,152 rows wide, but the
corpus uses about a thousand tokens: the head's softmax during pretraining is computed over the used tokens plus
one shared row standing for all the others (its logit counted `V - K` times), and at save time every unused row is
set to that shared row — so the full-vocabulary model computes exactly the distribution that was trained, at a
fraction of the cost.

Rebuild the committed model: `python -m bench.world2.pretrain --stages --out bench/world2/model`; one stage with
chosen settings: `python -m bench.world2.pretrain --out DIR --seed 0 [--init EARLIER_DIR ...]`. The schedule follows
a compute budget (CPU seconds per thread), so a rebuild is equivalent, not bit-identical.
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

from bench.world2.api import KINDS
from bench.world2.checker import check as check_code
from bench.world2.hindsight import pick_wording, render_feedback_varied, teacher_messages
from bench.world2.repos import random_change, random_conventions
from bench.world2.tasks import all_structures, make_task

MODEL_DIR = Path(__file__).parent / "model"
WEIGHTS = "model.safetensors"

DEFAULTS: dict[str, Any] = {
    "seed": 0, "docs": 24_000, "hindsight_fraction": 0.5, "attempt_share": 0.5, "hidden_size": 128, "layers": 4,
    "heads": 4, "intermediate_size": 384, "max_len": 640, "batch_tokens": 4096, "lr": 3e-3, "warmup": 30,
    "time_budget_s": 900, "max_steps": 800, "threads": 2, "init": "",
}

#: the committed model's recipe: a mixed first stage, then a hindsight-heavy one continuing from it
STAGES: list[dict[str, Any]] = [
    {"seed": 0, "max_steps": 700, "time_budget_s": 1200},
    {"seed": 1, "hindsight_fraction": 0.85, "lr": 2e-3, "warmup": 10, "max_steps": 700, "time_budget_s": 1200},
]


# -- corpus --------------------------------------------------------------------------------------------------------

Messages = list[dict[str, str]]


def default_doc(rng: random.Random, structures: list[tuple[str, ...]]) -> tuple[Messages, str]:
    task = make_task(rng.choice(structures), "pretrain", rng)
    return task.messages, task.solution({})


def hindsight_doc(rng: random.Random, structures: list[tuple[str, ...]], attempt_share: float
                  ) -> tuple[Messages, str]:
    """(chat so far, corrected code) for a random convention set touching the task."""
    task = make_task(rng.choice(structures), "pretrain", rng)
    steps = [s for s in task.structure if KINDS[s]]
    if not steps:  # an `arg` task with nothing changeable: a plain default doc instead
        return task.messages, task.solution({})
    touched = rng.sample(steps, rng.randint(1, min(3, len(steps))))
    conv = random_conventions(rng, rng.randint(0, 2))
    root = next((ch.value for ch in conv.values() if ch.kind == "import_path"), None)
    conv.update({s: random_change(s, rng, root) for s in touched})
    conv = {s: conv[s] for s in sorted(conv)}
    show = rng.random() < attempt_share
    # a shown attempt sometimes already follows some conventions (a partly trained student); an unshown one never
    # does, since the feedback is then all the teacher knows of it
    applied = {s: ch for s, ch in conv.items() if show and rng.random() < 0.2}
    attempt = task.solution(applied)
    result = check_code(task, conv, attempt)
    if result.passed:
        return task.messages, task.solution(conv)
    feedback = render_feedback_varied(result.findings, rng)
    messages = teacher_messages(task.prompt, feedback, attempt if show else None, pick_wording(rng))
    return messages, task.solution(conv)


def corpus(seed: int, n_docs: int, hindsight_fraction: float, attempt_share: float = 0.5
           ) -> list[tuple[Messages, str]]:
    rng = random.Random(seed)
    structures = all_structures()
    return [hindsight_doc(rng, structures, attempt_share) if rng.random() < hindsight_fraction
            else default_doc(rng, structures) for _ in range(n_docs)]


Doc = tuple[list[int], list[int]]


def encode_docs(tokenizer: Any, pairs: list[tuple[Messages, str]]) -> list[Doc]:
    """(context ids, answer ids + `<|im_end|>`) per document: the chat rendered with the tokenizer's template and
    its generation prompt, the answer tokenized on its own and joined by ids — as generation and the trainer see
    them."""
    contexts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True) for m, _ in pairs]
    ctx_ids = tokenizer(contexts, add_special_tokens=False)["input_ids"]
    code_ids = tokenizer([code for _, code in pairs], add_special_tokens=False)["input_ids"]
    return [(c, [*d, tokenizer.eos_token_id]) for c, d in zip(ctx_ids, code_ids, strict=True)]


# -- model and training --------------------------------------------------------------------------------------------


def make_model(tokenizer: Any, cfg: dict[str, Any]) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=cfg["hidden_size"], intermediate_size=cfg["intermediate_size"],
        num_hidden_layers=cfg["layers"], num_attention_heads=cfg["heads"], num_key_value_heads=cfg["heads"],
        max_position_embeddings=2048, tie_word_embeddings=True, rms_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return LlamaForCausalLM(config)


def batches(docs: list[Doc], batch_tokens: int, rng: random.Random) -> list[list[Doc]]:
    """Length-bucketed batches of whole documents (an episode is never cut from its feedback)."""
    size = [len(c) + len(t) for c, t in docs]
    order = sorted(range(len(docs)), key=lambda i: (size[i], rng.random()))
    out: list[list[Doc]] = []
    cur: list[Doc] = []
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
    """Right-padded ids, attention mask, and labels that score only each document's answer."""
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


class SharedTailHead:
    """The tied head restricted to the tokens the corpus uses, plus one shared row for all the others.

    logits = [h · E[used]ᵀ, h · e_other + log(V − K)]: exactly the full softmax of a model whose unused rows all
    equal e_other, which `fold` makes true before saving."""

    def __init__(self, model: Any, used: list[int]) -> None:
        import torch

        self.model = model
        self.vocab = model.get_input_embeddings().weight.shape[0]
        self.used = torch.tensor(sorted(used))
        self.remap = torch.full((self.vocab,), -1, dtype=torch.long)
        self.remap[self.used] = torch.arange(len(self.used))
        weight = model.get_input_embeddings().weight
        unused = torch.ones(self.vocab, dtype=torch.bool)
        unused[self.used] = False
        init = weight.detach()[unused].mean(0) if unused.any() else torch.zeros(weight.shape[1])
        self.other = torch.nn.Parameter(init.clone())
        self.log_rest = math.log(max(1, self.vocab - len(self.used)))

    def loss(self, ids: Any, mask: Any, labels: Any) -> Any:
        import torch

        hidden = self.model.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
        target = labels[:, 1:]
        keep = target != -100
        h, t = hidden[keep], self.remap[target[keep]]
        if (t < 0).any():
            raise ValueError("a target token outside the used set")
        weight = self.model.get_input_embeddings().weight[self.used]
        logits = torch.cat([h @ weight.T, (h @ self.other)[:, None] + self.log_rest], dim=1)
        return torch.nn.functional.cross_entropy(logits, t)

    def fold(self) -> None:
        """Write the shared row into every unused row of the tied embedding."""
        import torch

        with torch.no_grad():
            weight = self.model.get_input_embeddings().weight
            unused = self.remap < 0
            weight[unused] = self.other.detach().to(weight.dtype)


def used_tokens(tokenizer: Any, docs: list[Doc], init_dir: str = "") -> set[int]:
    """Every id in the corpus, the special tokens, and (continuing a stage) the ids the earlier stage trained."""
    used = {i for c, t in docs for i in (*c, *t)}
    used.update(i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id) if i is not None)
    if init_dir and (Path(init_dir) / "pretrain.json").exists():
        used.update(json.loads((Path(init_dir) / "pretrain.json").read_text()).get("used_token_ids", []))
    return used


def pretrain(out_dir: Path, **overrides: Any) -> Path:
    import torch

    from bench.world2.tokenizer import load_tokenizer

    cfg = {**DEFAULTS, **overrides}
    torch.set_num_threads(cfg["threads"])
    torch.manual_seed(cfg["seed"])
    rng = random.Random(cfg["seed"])
    t0 = time.time()
    cpu0 = time.process_time()
    pairs = corpus(cfg["seed"], cfg["docs"], cfg["hindsight_fraction"], cfg["attempt_share"])
    if cfg["init"]:  # continue from an earlier stage (same tokenizer)
        from transformers import AutoModelForCausalLM

        tokenizer = load_tokenizer(cfg["init"])
        model = AutoModelForCausalLM.from_pretrained(cfg["init"], dtype=torch.float32)
    else:
        tokenizer = load_tokenizer(MODEL_DIR if (MODEL_DIR / "tokenizer.json").exists() else None)
        model = make_model(tokenizer, cfg)
    docs = [d for d in encode_docs(tokenizer, pairs) if len(d[0]) + len(d[1]) <= cfg["max_len"]]
    head = SharedTailHead(model, sorted(used_tokens(tokenizer, docs, cfg["init"])))
    n_params = sum(p.numel() for p in model.parameters())
    n_tokens = sum(len(c) + len(t) for c, t in docs)
    print(f"corpus {len(docs)} docs, {n_tokens} tokens, {len(head.used)} distinct tokens, model "
          f"{n_params / 1e6:.2f}M params, prep {time.time() - t0:.0f}s", flush=True)
    params = [*model.parameters(), head.other]
    opt = torch.optim.AdamW(params, lr=cfg["lr"], betas=(0.9, 0.95), weight_decay=0.01)
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
        loss = head.loss(*collate(plan[step % len(plan)], tokenizer.pad_token_id))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        compute = (time.process_time() - cpu0) / cfg["threads"]
        progress = max(step / cfg["max_steps"], compute / cfg["time_budget_s"])
        if step % 25 == 0:
            print(f"step {step} loss {loss.item():.3f} lr {lr:.2e} wall {time.time() - t0:.0f}s "
                  f"compute {compute:.0f}s", flush=True)
    head.fold()
    compute = (time.process_time() - cpu0) / cfg["threads"]
    return save(model, tokenizer, out_dir, cfg, {
        "wall_s": round(time.time() - t0, 1), "steps": step, "params": n_params, "tokens_seen": _seen(plan, step),
        "cpu_s_per_thread": round(compute, 1), "final_loss": round(loss.item(), 4),
        "used_token_ids": [int(i) for i in head.used]})


def _seen(plan: list[list[Doc]], steps: int) -> int:
    return sum(len(c) + len(t) for i in range(steps) for c, t in plan[i % len(plan)])


def save(model: Any, tokenizer: Any, out_dir: Path, cfg: dict[str, Any], stats: dict[str, Any]) -> Path:
    """fp16 safetensors (the trainer and the evaluation load them as fp32), the tokenizer with its chat template,
    the checksum and the recipe."""
    import torch

    out_dir.mkdir(parents=True, exist_ok=True)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.to(torch.float16).save_pretrained(out_dir, safe_serialization=True)
    model.to(torch.float32)
    tokenizer.save_pretrained(out_dir)
    digest = sha256_file(out_dir / WEIGHTS)
    (out_dir / "SHA256SUMS").write_text(f"{digest}  {WEIGHTS}\n")
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in cfg.items() if v != DEFAULTS[k])
    meta = {"command": f"python -m bench.world2.pretrain --out {out_dir} {flags}".strip(), "config": cfg,
            "hindsight": "chat", "sha256": digest, **stats}
    (out_dir / "pretrain.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(f"saved {out_dir} sha256 {digest} " + json.dumps({k: v for k, v in stats.items() if k != "used_token_ids"}),
          flush=True)
    return out_dir


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify(model_dir: Path) -> bool:
    """True when the weights match the checksum written beside them."""
    sums, weights = model_dir / "SHA256SUMS", model_dir / WEIGHTS
    if not (sums.exists() and weights.exists()):
        return False
    return sums.read_text().split()[0] == sha256_file(weights)


def pretrain_stages(out_dir: Path, stages: list[dict[str, Any]] = STAGES, work: Path | None = None) -> Path:
    """Run `stages` in order, each continuing from the one before; the last is written to `out_dir`, its
    `pretrain.json` holding every stage's record; the earlier ones go to `work` (kept) or a temporary directory."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="redline-world2-pretrain-") as tmp:
        init, history = "", []
        for i, stage in enumerate(stages):
            print(f"stage {i + 1}/{len(stages)}", flush=True)
            target = out_dir if i == len(stages) - 1 else Path(work or tmp) / f"stage{i + 1}"
            if _done(target, {**DEFAULTS, **stage, "init": init}):
                print(f"reusing {target}: the same stage, checksum verified", flush=True)
                init = str(target)
            else:
                init = str(pretrain(target, **{**stage, "init": init}))
            meta = json.loads((target / "pretrain.json").read_text())
            history.append({k: v for k, v in meta.items() if k not in ("used_token_ids", "hindsight")})
    meta = json.loads((out_dir / "pretrain.json").read_text())
    meta["stages"] = history
    meta["command"] = f"python -m bench.world2.pretrain --stages --out {out_dir}"
    meta["total_cpu_s_per_thread"] = round(sum(h["cpu_s_per_thread"] for h in history), 1)
    meta["total_wall_s"] = round(sum(h["wall_s"] for h in history), 1)
    (out_dir / "pretrain.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out_dir


def _done(target: Path, cfg: dict[str, Any]) -> bool:
    """A stage already written at `target` (kept with `--work`) with this very config and intact weights."""
    meta = target / "pretrain.json"
    return verify(target) and meta.exists() and json.loads(meta.read_text()).get("config") == cfg


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
    parser.add_argument("--work", type=Path, default=None,
                        help="with --stages: keep the earlier stages here (a stage already there is reused)")
    for key, value in DEFAULTS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=type(value), default=value)
    args = vars(parser.parse_args(argv))
    out, work = args.pop("out"), args.pop("work")
    if args.pop("stages"):
        pretrain_stages(out, work=work)
    else:
        pretrain(out, **args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
