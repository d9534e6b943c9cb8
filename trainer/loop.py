"""The training loop: records → pairs → LoRA steps → adapter directory.

Reads top to bottom: seed, load the base once, turn records into id pairs (self-distillation) or SFT targets
(baselines), check that the hindsight teacher has something to teach, add its rewrites of the failed attempts,
attach LoRA, then the usual loop with gradient accumulation, AdamW, warm-up + cosine, clipping and resumable
checkpoints.
"""

from __future__ import annotations

import dataclasses
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

from redline.fsutil import write_json
from redline.records import utc_now
from redline.trainer.baselines import Checker, require_checker, sft_pairs
from redline.trainer.batching import (
    OutputHead,
    collate,
    completion_hidden,
    lr_lambda,
    micro_batches,
    padding_waste,
    planned_steps,
    schedule,
)
from redline.trainer.checkpoint import Checkpointer
from redline.trainer.config import TrainConfig
from redline.trainer.contexts import Pair, build_pair
from redline.trainer.data import TrainingExample, balance_accepted, data_window
from redline.trainer.errors import TrainError
from redline.trainer.identity import base_identity, check_base, read_adapter_meta
from redline.trainer.losses import chunked_divergence, chunked_logprobs, importance_weights
from redline.trainer.model import attach_lora, fit_to_model, load_base
from redline.trainer.plan import memory_budget, model_shape, plan_memory
from redline.trainer.progress import count_bar
from redline.trainer.revisions import rewrite_pairs, scores_rewrites
from redline.trainer.teacher import EmaTeacher, cache_teacher_hidden, cached_hidden
from redline.trainer.throughput import Throughput

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
    given = len(examples)
    examples = balance_accepted(examples, config.seed)
    started = time.perf_counter()
    _seed(config.seed)
    model, tokenizer = load_base(model_path, device=device, quantize=config.quantize)
    identity = base_identity(model, tokenizer, model_path)
    if init_adapter is not None:
        check_base(read_adapter_meta(init_adapter), identity)
    config = fit_to_model(config, model)
    fingerprint = identity["tokenizer_fingerprint"]

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
        raise TrainError(f"none of the {given} records has anything to train on for {config.method}",
                         fix=fix)
    metrics: dict[str, Any] = {"accepted_left_out": given - len(examples)}
    if config.method == "self-distill":
        metrics["hindsight"] = hindsight_check(model, pairs, tokenizer.pad_token_id, config)
    # A record's rewrite rides in the same optimizer step as its attempt: steps, epochs and `batch_size` count
    # records, as they do without rewrites.
    records = len(pairs)
    if scores_rewrites(config):
        pairs += rewrite_pairs(model, tokenizer, examples, pairs, config, progress=progress)

    dev = next(model.parameters()).device
    shape = model_shape(model)
    memory = plan_memory(shape, config, seq_len=max(max(len(p.student_ids), len(p.teacher_ids))
                                                    + len(p.completion_ids) for p in pairs),
                         completion_len=max(len(p.completion_ids) for p in pairs),
                         budget=memory_budget(config, dev, weights_loaded=shape.weight_bytes))
    log.info("memory plan: micro-batch %d of %d, gradient checkpointing %s (%s; estimate %.2f GiB, budget %s)",
             memory.micro_batch, config.batch_size, "on" if memory.gradient_checkpointing else "off",
             memory.reason, memory.estimate_bytes / 2**30,
             "unknown" if memory.budget_bytes is None else f"{memory.budget_bytes / 2**30:.2f} GiB")
    micro = memory.micro_batch
    # The base teacher is frozen and its contexts fixed: one pass now instead of one per step, every epoch.
    cache_started, cached = time.perf_counter(), False
    if config.method == "self-distill" and config.teacher == "base":
        with count_bar("teacher pass", progress, len(pairs)) as advance:
            # batches of `batch_size`, not of the planned micro-batch: the cached states (to float rounding) then
            # depend on the settings alone, so a run whose micro-batch was halved ends where the planned one would
            cached = cache_teacher_hidden(model, pairs, tokenizer.pad_token_id, batch_size=config.batch_size,
                                          on_batch=advance)
    metrics.update(teacher_cached=cached, teacher_pass_seconds=round(time.perf_counter() - cache_started, 3))

    _seed(config.seed)  # LoRA init depends only on the seed, not on what the baselines sampled
    model = attach_lora(model, dataclasses.replace(config, gradient_checkpointing=memory.gradient_checkpointing),
                        adapter_dir=init_adapter)
    ema = EmaTeacher(model, config.ema_rate) if config.teacher == "ema" else None
    params = [p for p in model.parameters() if p.requires_grad]
    n_steps = planned_steps(records, batch_size=config.batch_size, epochs=config.epochs, max_steps=config.max_steps)
    plan = with_rewrites(schedule(pairs[:records], batch_size=config.batch_size, seed=config.seed, steps=n_steps),
                         pairs, records)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.99))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda(n_steps, max(1, round(config.warmup_ratio * n_steps))))
    ckpt = Checkpointer(Path(out_dir) / "checkpoints", _run_fingerprint(model_path, config, pairs))
    start, extra = ckpt.restore(model, optimizer, scheduler) if config.checkpoint_every else (0, None)
    if ema is not None and extra is not None:
        ema.load_state_dict(extra["ema"])
    if start:
        log.info("resuming from checkpoint at step %d of %d", start, n_steps)
    log.info("%d optimizer steps of %d records over %d records (%.1f epochs; %d sequences with the rewrites)",
             n_steps, config.batch_size, records, n_steps * config.batch_size / records, len(pairs))

    history: list[dict[str, float]] = []
    meter = Throughput(shape.params, dev)
    tokens, ooms, step = 0, 0, start
    with _progress(progress, n_steps, start) as bar:
        while step < n_steps:
            t0 = time.perf_counter()
            in_update = False
            try:
                stats = {"loss": 0.0, "kl": 0.0, "tokens": 0.0}
                micros = micro_batches(plan[step], pairs, micro)
                batches = [[pairs[i] for i in m] for m in micros]
                if config.on_policy_ratio:
                    batches = [on_policy(model, tokenizer, b, config, step) for b in batches]
                total = sum(len(p.completion_ids) for b in batches for p in b)
                seen = {"trained": 0, "teacher": 0}
                for batch in batches:
                    if config.method == "self-distill":
                        loss, kl, n = distill_loss(model, batch, config, tokenizer.pad_token_id, parent_version,
                                                   ema=ema)
                        if ema is not None or any(p.teacher_hidden is None for p in batch):  # ran the teacher
                            seen["teacher"] += sum(len(p.teacher_ids) + len(p.completion_ids) for p in batch)
                    else:
                        loss, kl, n = sft_batch_loss(model, batch, tokenizer.pad_token_id)
                    seen["trained"] += sum(len(p.student_ids) + len(p.completion_ids) for p in batch)
                    # each micro-batch's token mean, weighted by its tokens: the step's loss is the token mean
                    # over the whole batch, whatever the micro-batches are
                    (loss * (n / total)).backward()
                    stats["loss"] += loss.item() * n / total
                    stats["kl"] += kl * n / total
                    stats["tokens"] += n
                grad_norm = torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                in_update = True
                optimizer.step()
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                optimizer.zero_grad(set_to_none=True)
                _free_memory()
                if micro == 1:
                    raise TrainError("out of memory with a micro-batch of 1",
                                     fix='set quantize = "4bit", a lower max_length, or a smaller max_memory '
                                         "share for other programs") from None
                micro, ooms = max(1, micro // 2), ooms + 1
                if in_update:  # parameters may be half-updated: go back to the last checkpoint on disk
                    if not config.checkpoint_every or not ckpt.has_checkpoint():
                        raise TrainError("out of memory in the optimizer step, and no checkpoint to resume",
                                         fix="set checkpoint_every, or a smaller micro_batch") from None
                    step, extra = ckpt.restore(model, optimizer, scheduler)
                    if ema is not None and extra is not None:
                        ema.load_state_dict(extra["ema"])
                log.warning("out of memory at step %d: micro-batch halved to %d, resuming from step %d",
                            step + 1, micro, step)
                continue
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            if ema is not None:
                ema.update()
            rate = meter.step(seen["trained"], seen["teacher"], time.perf_counter() - t0)
            stats.update(grad_norm=float(grad_norm), lr=scheduler.get_last_lr()[0], **rate)
            tokens += int(stats["tokens"])
            history.append(stats)
            bar.advance(stats)
            step += 1
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < n_steps:
                ckpt.save(step, model, optimizer, scheduler, {"ema": ema.state_dict()} if ema else None)
            if on_step is not None:
                on_step(step, stats)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), selected_adapters=["default"])
    config.save(out_dir / "train_config.json")
    metrics.update(_summarise(history))
    metrics.update(meter.summary(), memory_plan=memory.to_dict(), micro_batch=micro, oom_retries=ooms,
                   padding_waste=padding_waste([m for b in plan for m in micro_batches(b, pairs, micro)], pairs),
                   model_shape=shape.to_dict())
    result = TrainResult(out_dir, config.method, n_steps, given, len(pairs), given - len({p.index for p in pairs}),
                         tokens, time.perf_counter() - started, start, metrics)
    log.info("trained %d steps (micro-batch %d%s): %.0f tokens/s processed%s%s", n_steps - start, micro,
             ", gradient checkpointing" if memory.gradient_checkpointing else "", metrics.get("tokens_per_s", 0.0),
             f", MFU {metrics['mfu']:.0%}" if "mfu" in metrics else "",
             f", peak GPU memory {metrics['peak_memory_bytes'] / 2**30:.1f} GiB" if "peak_memory_bytes" in metrics
             else "")
    write_json(out_dir / "redline.json", {
        "base_model": identity,
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
    # the gate loads the base again next: give this copy's memory back first (a 24 GB card holds one 7B copy)
    del model, optimizer, scheduler, params, ema
    _free_memory()
    return result


def with_rewrites(plan: list[list[int]], pairs: Sequence[Pair], records: int) -> list[list[int]]:
    """Each step's pair indices plus those of the rewrites of the same records (pairs[records:])."""
    rewrites: dict[int, list[int]] = {}
    for j in range(records, len(pairs)):
        rewrites.setdefault(pairs[j].index, []).append(j)
    return [[*step, *(j for i in step for j in rewrites.get(pairs[i].index, []))] for step in plan]


# -- per-batch losses --------------------------------------------------------------------------------------------


def distill_loss(model: Any, pairs: Sequence[Pair], config: TrainConfig, pad_id: int,
                 parent_version: str | None, *, ema: EmaTeacher | None = None) -> tuple[torch.Tensor, float, int]:
    """SDPO on one micro-batch: (loss, mean divergence, scored tokens). Hidden states are gathered at the
    completion positions of both passes; the output head and the divergence run on those alone, in chunks."""
    dev = next(model.parameters()).device
    comps = [p.completion_ids for p in pairs]
    student = collate([p.student_ids for p in pairs], comps, pad_id=pad_id, device=dev)
    # The teacher is the same weights with the adapter off (or the EMA adapter on), in eval mode, without a graph;
    # the base teacher's states were cached before training when they fitted in RAM.
    t_hidden = cached_hidden(pairs, dev) if ema is None else None
    if t_hidden is None:
        teacher = collate([p.teacher_ids for p in pairs], comps, pad_id=pad_id, device=dev)
        model.eval()
        with torch.no_grad(), (ema.active() if ema is not None else model.disable_adapter()):
            t_hidden = completion_hidden(model, teacher)
    model.train()
    s_hidden = completion_hidden(model, student)
    ids = student.completion_ids[student.completion_mask]
    div, logp = chunked_divergence(s_hidden, t_hidden, OutputHead(model), ids, alpha=config.alpha,
                                   top_k=config.top_k)
    weights = _off_policy_weights(pairs, logp, student.completion_mask, config, parent_version)
    loss = (div if weights is None else div * weights).mean() if div.numel() else s_hidden.sum() * 0.0
    n = int(div.numel())
    return loss, float(div.detach().sum()) / max(1, n), n


def _off_policy_weights(pairs: Sequence[Pair], logp: torch.Tensor, mask: torch.Tensor, config: TrainConfig,
                        parent_version: str | None) -> torch.Tensor | None:
    """Clipped importance weights [N] (N = real completion tokens, row by row) for records sampled by another
    adapter than the one we continue from; `logp` is the student's log-prob of each of those tokens."""
    off = [p.old_logprobs is not None and p.adapter_version != parent_version for p in pairs]
    if not any(off):
        return None
    old = torch.zeros(mask.shape, dtype=torch.float32, device=logp.device)
    use = torch.zeros(mask.shape, dtype=torch.bool, device=logp.device)
    width = mask.shape[1]
    for row, (p, is_off) in enumerate(zip(pairs, off, strict=True)):
        if is_off and p.old_logprobs is not None:
            old[row, width - len(p.old_logprobs):] = torch.tensor(p.old_logprobs, dtype=torch.float32)
            use[row, width - len(p.old_logprobs):] = True
    weights = importance_weights(logp, old[mask], clip=config.is_clip)
    return torch.where(use[mask], weights, torch.ones_like(weights))


def sft_batch_loss(model: Any, pairs: Sequence[Pair], pad_id: int) -> tuple[torch.Tensor, float, int]:
    dev = next(model.parameters()).device
    batch = collate([p.student_ids for p in pairs], [p.completion_ids for p in pairs], pad_id=pad_id, device=dev)
    model.train()
    hidden = completion_hidden(model, batch)
    logp = chunked_logprobs(hidden, OutputHead(model), batch.completion_ids[batch.completion_mask])
    return -logp.mean() if logp.numel() else hidden.sum() * 0.0, 0.0, int(logp.numel())


def on_policy(model: Any, tokenizer: Any, pairs: Sequence[Pair], config: TrainConfig, step: int) -> list[Pair]:
    """Replace a `on_policy_ratio` share of the attempts with fresh samples from the current student.

    Which pairs are resampled depends only on (seed, step), and sampling uses the checkpointed torch RNG, so a
    resumed run resamples exactly what an uninterrupted one would."""
    from dataclasses import replace

    from redline.trainer.generation import sample_ids

    rng = random.Random(config.seed * 7919 + step)
    out = []
    for p in pairs:
        if p.anchor or p.rewrite or rng.random() >= config.on_policy_ratio:  # only attempts are re-sampled
            out.append(p)
            continue
        budget = max(1, min(config.max_length - max(len(p.student_ids), len(p.teacher_ids)),
                            2 * len(p.completion_ids) + 8))
        fresh = sample_ids(model, tokenizer, p.student_ids, max_new_tokens=budget, greedy=False)[0]
        out.append(replace(p, completion_ids=fresh, old_logprobs=None, teacher_hidden=None) if fresh else p)
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
        head = OutputHead(model)
        sh, th = completion_hidden(model, s), completion_hidden(model, t)
        ids = s.completion_ids[s.completion_mask]
        div, slp = chunked_divergence(sh, th, head, ids, alpha=config.alpha, top_k=config.top_k)
        s_lp += float(slp.sum())
        t_lp += float(chunked_logprobs(th, head, ids).sum())
        kl += float(div.sum())
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


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's OutOfMemoryError, or a CPU allocator failure (a RuntimeError saying so)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    text = str(exc)
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def _free_memory() -> None:
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


#: settings that change how a step is computed, not what it computes: a checkpoint stays valid across them
_LAYOUT = ("checkpoint_every", "micro_batch", "gradient_checkpointing", "max_memory")


def _run_fingerprint(model_path: str | Path, config: TrainConfig, pairs: Sequence[Pair]) -> str:
    settings = {k: v for k, v in config.to_dict().items() if k not in _LAYOUT}
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
                                            "{task.fields[tok_s]:.0f} tok/s{task.fields[mfu_text]}"),
                                 TimeRemainingColumn())
            self._bar.__enter__()
            self._task = self._bar.add_task("train", total=self.total, completed=self.start, loss=0.0, kl=0.0,
                                            tok_s=0.0, mfu_text="")
        return self

    def advance(self, stats: dict[str, float]) -> None:
        if self._bar is not None:
            mfu = stats.get("mfu")
            self._bar.update(self._task, advance=1, loss=stats["loss"], kl=stats["kl"], tok_s=stats["tok_s"],
                             mfu_text="" if mfu is None else f" MFU {mfu:.0%}")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
