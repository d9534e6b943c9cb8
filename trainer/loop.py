"""The training loop: records → pairs → LoRA steps → adapter directory.

Reads top to bottom: seed, load the base once, turn records into id pairs (self-distillation) or SFT targets
(baselines), check that the hindsight teacher has something to teach, attach LoRA, then the usual loop with
gradient accumulation, AdamW, warm-up + cosine, clipping and resumable checkpoints.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from redline.records import utc_now
from trainer.baselines import Checker, require_checker, sft_pairs
from trainer.batching import collate, completion_logits, lr_lambda, schedule, total_steps
from trainer.checkpoint import Checkpointer
from trainer.config import TrainConfig
from trainer.contexts import Pair, build_pair
from trainer.data import TrainingExample, data_window
from trainer.errors import TrainError
from trainer.fsutil import write_json
from trainer.losses import importance_weights, masked_mean, sft_loss, token_divergence, token_logprobs
from trainer.model import attach_lora, fit_to_model, load_base, model_identity, tokenizer_fingerprint
from trainer.teacher import EmaTeacher

log = logging.getLogger("redline.trainer")

StepCallback = Callable[[int, dict[str, float]], None]


@dataclass
class TrainResult:
    out_dir: Path
    method: str
    steps: int
    examples: int
    pairs: int
    skipped: int
    tokens: int
    seconds: float
    resumed_from_step: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "out_dir": str(self.out_dir)}


def train(model_path: str | Path, examples: Sequence[TrainingExample], out_dir: Path, config: TrainConfig, *,
          checker: Checker | None = None, progress: bool = True, on_step: StepCallback | None = None,
          parent_version: str | None = None, init_adapter: Path | None = None, device: str | None = None
          ) -> TrainResult:
    require_checker(config, checker)
    if not examples:
        raise TrainError("no training records", fix="collect feedback first (`redline status` shows the queue)")
    started = time.perf_counter()
    _seed(config.seed)
    model, tokenizer = load_base(model_path, device=device)
    config = fit_to_model(config, model)
    fingerprint = tokenizer_fingerprint(tokenizer)

    # Records → token ids. Baselines build their SFT targets with the base model, before LoRA exists.
    if config.method == "self-distill":
        pairs = [p for i, ex in enumerate(examples)
                 if (p := build_pair(tokenizer, i, ex.generation, ex.feedback, config, fingerprint=fingerprint))]
    else:
        pairs = sft_pairs(model, tokenizer, examples, config, checker=checker)
    if not pairs:
        fix = {"scalar": f"no sample passed the checker: raise scalar_k (now {config.scalar_k}) or collect more "
                         "records",
               "sft-edit": "records need human edits"}.get(config.method, "records need feedback")
        raise TrainError(f"none of the {len(examples)} records has anything to train on for {config.method}",
                         fix=fix)
    metrics: dict[str, Any] = {}
    if config.method == "self-distill":
        metrics["hindsight"] = hindsight_check(model, pairs, tokenizer.pad_token_id, config)

    _seed(config.seed)  # LoRA init depends only on the seed, not on what the baselines sampled
    model = attach_lora(model, config, adapter_dir=init_adapter)
    ema = EmaTeacher(model, config.ema_rate) if config.teacher == "ema" else None
    params = [p for p in model.parameters() if p.requires_grad]
    plan = schedule(pairs, batch_size=config.batch_size, seed=config.seed, epochs=config.epochs,
                    min_micro=(config.max_steps or 0) * config.grad_accum)
    n_steps = total_steps(len(plan), grad_accum=config.grad_accum, max_steps=config.max_steps)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(n_steps, max(1, round(config.warmup_ratio * n_steps))))
    ckpt = Checkpointer(Path(out_dir) / "checkpoints", _run_fingerprint(model_path, config, pairs))
    start, extra = ckpt.restore(model, optimizer, scheduler) if config.checkpoint_every else (0, None)
    if ema is not None and extra is not None:
        ema.load_state_dict(extra["ema"])
    if start:
        log.info("resuming from checkpoint at step %d of %d", start, n_steps)

    history: list[dict[str, float]] = []
    tokens = 0
    with _progress(progress, n_steps, start) as bar:
        for step in range(start, n_steps):
            t0 = time.perf_counter()
            stats = {"loss": 0.0, "kl": 0.0, "tokens": 0.0}
            micro = plan[step * config.grad_accum:(step + 1) * config.grad_accum]
            for indices in micro:
                batch = [pairs[i] for i in indices]
                if config.on_policy_ratio:
                    batch = on_policy(model, tokenizer, batch, config, step)
                if config.method == "self-distill":
                    loss, kl, n = distill_loss(model, batch, config, tokenizer.pad_token_id, parent_version,
                                               ema=ema)
                else:
                    loss, kl, n = sft_batch_loss(model, batch, tokenizer.pad_token_id)
                (loss / len(micro)).backward()
                stats["loss"] += loss.item() / len(micro)
                stats["kl"] += kl / len(micro)
                stats["tokens"] += n
            grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update()
            stats.update(grad_norm=float(grad_norm), lr=scheduler.get_last_lr()[0],
                         tok_s=stats["tokens"] / max(1e-9, time.perf_counter() - t0))
            tokens += int(stats["tokens"])
            history.append(stats)
            bar.advance(stats)
            if config.checkpoint_every and (step + 1) % config.checkpoint_every == 0 and step + 1 < n_steps:
                ckpt.save(step + 1, model, optimizer, scheduler, {"ema": ema.state_dict()} if ema else None)
            if on_step is not None:
                on_step(step + 1, stats)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), selected_adapters=["default"])
    config.save(out_dir / "train_config.json")
    metrics.update(_summarise(history))
    result = TrainResult(out_dir, config.method, n_steps, len(examples), len(pairs), len(examples) - len(pairs),
                         tokens, time.perf_counter() - started, start, metrics)
    write_json(out_dir / "redline.json", {
        "base_model": model_identity(model.get_base_model(), model_path),
        "tokenizer_fingerprint": fingerprint,
        "method": config.method,
        "records": sorted({examples[p.index].generation.id for p in pairs}),
        "data_window": data_window(examples),
        "parent_version": parent_version,
        "created_at": utc_now(),
        "metrics": result.to_dict(),
        "train_config": config.to_dict(),
    })
    ckpt.clear()
    return result


# -- per-batch losses --------------------------------------------------------------------------------------------


def distill_loss(model: Any, pairs: Sequence[Pair], config: TrainConfig, pad_id: int,
                 parent_version: str | None, *, ema: EmaTeacher | None = None) -> tuple[torch.Tensor, float, int]:
    """SDPO on one micro-batch: (loss, mean divergence, scored tokens)."""
    dev = next(model.parameters()).device
    comps = [p.completion_ids for p in pairs]
    student = collate([p.student_ids for p in pairs], comps, pad_id=pad_id, device=dev)
    teacher = collate([p.teacher_ids for p in pairs], comps, pad_id=pad_id, device=dev)
    # The teacher is the same weights with the adapter off (or the EMA adapter on), in eval mode, without a graph.
    model.eval()
    with torch.no_grad(), (ema.active() if ema is not None else model.disable_adapter()):
        t_logits = completion_logits(model, teacher)
    model.train()
    s_logits = completion_logits(model, student)
    # Flat [B·C, V] views (no copies); padded completion slots are masked out of the mean.
    mask = student.completion_mask.reshape(-1)
    s_flat = s_logits.reshape(-1, s_logits.shape[-1])
    t_flat = t_logits.reshape(-1, t_logits.shape[-1])
    div = token_divergence(s_flat, t_flat, alpha=config.alpha, top_k=config.top_k)
    weights = _off_policy_weights(pairs, s_flat, student.completion_ids.reshape(-1), student.completion_mask,
                                  config, parent_version)
    loss = masked_mean(div if weights is None else div * weights, mask)
    n = int(mask.sum())
    return loss, float(div.detach()[mask].sum()) / max(1, n), n


def _off_policy_weights(pairs: Sequence[Pair], s_flat: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor,
                        config: TrainConfig, parent_version: str | None) -> torch.Tensor | None:
    """Clipped importance weights [B·C] for records sampled by another adapter than the one we continue from."""
    off = [p.old_logprobs is not None and p.adapter_version != parent_version for p in pairs]
    if not any(off):
        return None
    old = torch.zeros(mask.shape, dtype=torch.float32, device=s_flat.device)
    use = torch.zeros(mask.shape, dtype=torch.bool, device=s_flat.device)
    width = mask.shape[1]
    for row, (p, is_off) in enumerate(zip(pairs, off, strict=True)):
        if is_off and p.old_logprobs is not None:
            old[row, width - len(p.old_logprobs):] = torch.tensor(p.old_logprobs, dtype=torch.float32)
            use[row, width - len(p.old_logprobs):] = True
    weights = importance_weights(token_logprobs(s_flat, ids), old.reshape(-1), clip=config.is_clip)
    return torch.where(use.reshape(-1), weights, torch.ones_like(weights))


def sft_batch_loss(model: Any, pairs: Sequence[Pair], pad_id: int) -> tuple[torch.Tensor, float, int]:
    dev = next(model.parameters()).device
    batch = collate([p.student_ids for p in pairs], [p.completion_ids for p in pairs], pad_id=pad_id, device=dev)
    model.train()
    logits = completion_logits(model, batch)
    return sft_loss(logits, batch.completion_ids, batch.completion_mask), 0.0, int(batch.completion_mask.sum())


def on_policy(model: Any, tokenizer: Any, pairs: Sequence[Pair], config: TrainConfig, step: int) -> list[Pair]:
    """Replace a `on_policy_ratio` share of the attempts with fresh samples from the current student.

    Which pairs are resampled depends only on (seed, step), and sampling uses the checkpointed torch RNG, so a
    resumed run resamples exactly what an uninterrupted one would."""
    from dataclasses import replace

    from trainer.generation import sample_ids

    rng = random.Random(config.seed * 7919 + step)
    out = []
    for p in pairs:
        if p.anchor or rng.random() >= config.on_policy_ratio:
            out.append(p)
            continue
        budget = max(1, min(config.max_length - max(len(p.student_ids), len(p.teacher_ids)),
                            2 * len(p.completion_ids) + 8))
        fresh = sample_ids(model, tokenizer, p.student_ids, max_new_tokens=budget, greedy=False)[0]
        out.append(replace(p, completion_ids=fresh or p.completion_ids, old_logprobs=None) if fresh else p)
    return out


@torch.no_grad()
def hindsight_check(model: Any, pairs: Sequence[Pair], pad_id: int, config: TrainConfig, *, limit: int = 32
                    ) -> dict[str, float]:
    """Does the hindsight teacher know better than the student? Mean per-token log-prob of the failed attempts
    under each context (the teacher should find them less likely) and the mean divergence between the two."""
    sample = [p for p in pairs if not p.anchor][:limit]
    if not sample:
        return {}
    dev = next(model.parameters()).device
    s_lp, t_lp, kl, n = 0.0, 0.0, 0.0, 0
    for start in range(0, len(sample), config.batch_size):
        chunk = sample[start:start + config.batch_size]
        comps = [p.completion_ids for p in chunk]
        s = collate([p.student_ids for p in chunk], comps, pad_id=pad_id, device=dev)
        t = collate([p.teacher_ids for p in chunk], comps, pad_id=pad_id, device=dev)
        sl, tl = completion_logits(model, s)[s.completion_mask], completion_logits(model, t)[t.completion_mask]
        ids = s.completion_ids[s.completion_mask]
        s_lp += float(token_logprobs(sl, ids).sum())
        t_lp += float(token_logprobs(tl, ids).sum())
        kl += float(token_divergence(sl, tl, alpha=config.alpha, top_k=config.top_k).sum())
        n += int(ids.numel())
    report = {"student_logp": s_lp / n, "teacher_logp": t_lp / n, "divergence": kl / n, "records": len(sample)}
    if report["teacher_logp"] >= report["student_logp"]:
        log.warning("the hindsight teacher does not find the failed attempts less likely than the student "
                    "(student %.3f, teacher %.3f nats/token): little to learn from this feedback",
                    report["student_logp"], report["teacher_logp"])
    else:
        log.info("hindsight teacher: failed attempts %.3f → %.3f nats/token, divergence %.4f",
                 report["student_logp"], report["teacher_logp"], report["divergence"])
    return report


# -- helpers -----------------------------------------------------------------------------------------------------


def _seed(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _run_fingerprint(model_path: str | Path, config: TrainConfig, pairs: Sequence[Pair]) -> str:
    settings = {k: v for k, v in config.to_dict().items() if k != "checkpoint_every"}
    data = [(p.student_ids, p.teacher_ids, p.completion_ids) for p in pairs]
    blob = json.dumps([str(model_path), settings, data], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()


def _summarise(history: list[dict[str, float]]) -> dict[str, float]:
    if not history:
        return {}
    k = max(1, len(history) // 10)
    mean = lambda rows, key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    return {"loss_first": mean(history[:k], "loss"), "loss_last": mean(history[-k:], "loss"),
            "kl_first": mean(history[:k], "kl"), "kl_last": mean(history[-k:], "kl"),
            "steps_this_run": len(history)}


class _progress:
    """A rich progress bar with loss, KL, tokens/s and ETA; silent when disabled."""

    def __init__(self, enabled: bool, total: int, start: int) -> None:
        self.enabled, self.total, self.start = enabled, total, start
        self._bar: Any = None

    def __enter__(self) -> _progress:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("train"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("loss {task.fields[loss]:.4f} kl {task.fields[kl]:.4f} "
                                            "{task.fields[tok_s]:.0f} tok/s"), TimeRemainingColumn())
            self._bar.__enter__()
            self._task = self._bar.add_task("train", total=self.total, completed=self.start, loss=0.0, kl=0.0,
                                            tok_s=0.0)
        return self

    def advance(self, stats: dict[str, float]) -> None:
        if self._bar is not None:
            self._bar.update(self._task, advance=1, loss=stats["loss"], kl=stats["kl"], tok_s=stats["tok_s"])

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
