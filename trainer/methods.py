"""Training methods: what differs between self-distillation and its SFT baseline, behind one small interface.

The loop (`loop.py`) never asks a method's name. It asks it for the records' training sequences (built on the
base model, before LoRA exists), whether the frozen base teacher's states can be computed once before training,
and the loss of each micro-batch; a few hooks let a method change during training. The product has two:

- `self-distill` (SDPO): the student (base + LoRA, prompt + attempt) is pulled towards the teacher (the base,
  adapter off, prompt + hindsight) on the attempt's tokens, and on the teacher's own rewrite of a failed attempt;
- `sft-revision`: SFT on the teacher's rewrite (context distillation, Snell et al. 2022).

The learning bench's variants (`bench/methods.py`: best-of-k with a checker, SFT on human edits, an EMA teacher,
on-policy resampling) implement the same interface.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch

from redline.trainer.batching import OutputHead, collate, completion_hidden
from redline.trainer.config import TrainConfig
from redline.trainer.contexts import Pair, Rendering, build_pair
from redline.trainer.data import TrainingExample
from redline.trainer.feedback_text import is_accepted
from redline.trainer.losses import chunked_divergence, chunked_logprobs, importance_weights
from redline.trainer.revisions import rewrite_pairs, teacher_rewrites
from redline.trainer.teacher import cached_hidden

log = logging.getLogger("redline.trainer")


@dataclass(frozen=True)
class Run:
    """What a method reads about the run besides the model: the settings (fitted to the model), the tokenizer,
    its fingerprint (recorded token ids are reused when it matches) and the adapter version being continued."""

    config: TrainConfig
    tokenizer: Any
    fingerprint: str | None = None
    parent_version: str | None = None
    progress: bool = False


class Scored(NamedTuple):
    """One micro-batch's loss (the token mean, with a graph), its mean divergence (0 for SFT), the tokens it
    scored (its weight in the step) and the tokens the teacher ran on in it (for throughput; 0 when cached)."""

    loss: torch.Tensor
    divergence: float
    tokens: int
    teacher_tokens: int


class Method:
    """What differs between training methods. The loop calls `sequences` on the base model, `start` once LoRA
    is attached, then for each optimizer step `batches`, `loss` per micro-batch and `end_step` after the update;
    `state` is saved with each checkpoint and given back to `restore` on resume."""

    name = "method"
    #: the frozen base teacher's final hidden states are computed once before training (`teacher.py`)
    caches_teacher = False
    #: what a TrainError tells the user when none of the records gives a sequence
    fix_when_empty = "records need feedback"

    def sequences(self, model: Any, examples: Sequence[TrainingExample], run: Run
                  ) -> tuple[list[Pair], dict[str, Any]]:
        """Records → training sequences, and what to report about them. A record's extra sequences
        (`Pair.rewrite`) come after every record's own: steps and batches count records."""
        raise NotImplementedError

    def loss(self, model: Any, pairs: Sequence[Pair], run: Run) -> Scored:
        raise NotImplementedError

    # -- for methods whose teacher or data change during training (the bench's); the product's keep these ---------

    def start(self, model: Any, run: Run) -> None:
        """Called once LoRA is attached."""

    def batches(self, model: Any, batches: list[list[Pair]], step: int, run: Run) -> list[list[Pair]]:
        """The micro-batches of optimizer step `step`, before any of them is scored."""
        return batches

    def end_step(self) -> None:
        """Called after each optimizer step."""

    def state(self) -> Any:
        """What a checkpoint must keep besides LoRA and the optimizer (None: nothing)."""
        return None

    def restore(self, state: Any) -> None:
        """Take back what `state` returned when the checkpoint was written."""


# -- self-distillation -------------------------------------------------------------------------------------------


class SelfDistill(Method):
    name = "self-distill"
    caches_teacher = True

    def sequences(self, model: Any, examples: Sequence[TrainingExample], run: Run
                  ) -> tuple[list[Pair], dict[str, Any]]:
        config, tok = run.config, run.tokenizer
        rendering = Rendering.of(config)
        pairs = [p for i, ex in enumerate(examples)
                 if (p := build_pair(tok, i, ex.generation, ex.feedback, rendering, fingerprint=run.fingerprint,
                                     anchors=config.use_passed_anchors))]
        if not pairs:
            return pairs, {}
        # Before spending steps: does the teacher, shown the feedback, find the failed attempts less likely?
        metrics = {"hindsight": hindsight_check(model, pairs, tok.pad_token_id, config)}
        if config.use_revisions:  # a rewrite rides in its record's step: steps still count records
            pairs += rewrite_pairs(model, tok, examples, pairs, config, progress=run.progress)
        return pairs, metrics

    def loss(self, model: Any, pairs: Sequence[Pair], run: Run) -> Scored:
        loss, kl, n = distill_loss(model, pairs, run.config, run.tokenizer.pad_token_id, run.parent_version)
        live = any(p.teacher_hidden is None for p in pairs)
        return Scored(loss, kl, n, teacher_tokens(pairs) if live else 0)


def teacher_tokens(pairs: Sequence[Pair]) -> int:
    return sum(len(p.teacher_ids) + len(p.completion_ids) for p in pairs)


def distill_loss(model: Any, pairs: Sequence[Pair], config: TrainConfig, pad_id: int, parent_version: str | None,
                 *, teacher: Callable[[], AbstractContextManager[Any]] | None = None
                 ) -> tuple[torch.Tensor, float, int]:
    """SDPO on one micro-batch: (loss, mean divergence, scored tokens). Hidden states are gathered at the
    completion positions of both passes; the output head and the divergence run on those alone, in chunks.

    The teacher is the base (the adapter off), its states cached before training when they fitted in RAM;
    `teacher` is another one to run live in every step, inside that context (the bench's EMA adapter)."""
    dev = next(model.parameters()).device
    comps = [p.completion_ids for p in pairs]
    student = collate([p.student_ids for p in pairs], comps, pad_id=pad_id, device=dev)
    t_hidden = cached_hidden(pairs, dev) if teacher is None else None
    if t_hidden is None:  # same weights, eval mode, no graph
        batch = collate([p.teacher_ids for p in pairs], comps, pad_id=pad_id, device=dev)
        model.eval()
        with torch.no_grad(), (teacher() if teacher is not None else model.disable_adapter()):
            t_hidden = completion_hidden(model, batch)
    model.train()
    s_hidden = completion_hidden(model, student)
    ids = student.completion_ids[student.completion_mask]
    div, logp = chunked_divergence(s_hidden, t_hidden, OutputHead(model), ids, alpha=config.alpha,
                                   top_k=config.top_k)
    weights = off_policy_weights(pairs, logp, student.completion_mask, config, parent_version)
    loss = (div if weights is None else div * weights).mean() if div.numel() else s_hidden.sum() * 0.0
    n = int(div.numel())
    return loss, float(div.detach().sum()) / max(1, n), n


def off_policy_weights(pairs: Sequence[Pair], logp: torch.Tensor, mask: torch.Tensor, config: TrainConfig,
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


# -- SFT ---------------------------------------------------------------------------------------------------------


class Sft(Method):
    """Plain SFT on target ids after the student's prompt; subclasses choose the targets."""

    def loss(self, model: Any, pairs: Sequence[Pair], run: Run) -> Scored:
        return Scored(*sft_batch_loss(model, pairs, run.tokenizer.pad_token_id), 0)


class SftRevision(Sft):
    """SFT on the hindsight teacher's greedy rewrite of each failed attempt; an accepted attempt is its own
    target (with `use_passed_anchors`), the anchors self-distillation gets."""

    name = "sft-revision"

    def sequences(self, model: Any, examples: Sequence[TrainingExample], run: Run
                  ) -> tuple[list[Pair], dict[str, Any]]:
        config, tok = run.config, run.tokenizer
        rendering = Rendering.of(config)
        pairs = []
        revisions = teacher_rewrites(model, tok, examples, config, progress=run.progress)
        for i, (ex, revision) in enumerate(zip(examples, revisions, strict=True)):
            if revision is not None:
                pair = sft_pair(tok, i, ex, revision, rendering)
            elif config.use_passed_anchors and is_accepted(ex.feedback):
                pair = build_pair(tok, i, ex.generation, ex.feedback, rendering)
            else:
                continue
            if pair is not None:
                pairs.append(pair)
        return pairs, {}


def sft_pair(tokenizer: Any, index: int, ex: TrainingExample, target: list[int], rendering: Rendering
             ) -> Pair | None:
    """The student's prompt with `target` as its completion; no teacher (its context is the student's)."""
    pair = build_pair(tokenizer, index, ex.generation, [], rendering, target_ids=target)
    if pair is not None:
        pair.teacher_ids = pair.student_ids
    return pair


def sft_batch_loss(model: Any, pairs: Sequence[Pair], pad_id: int) -> tuple[torch.Tensor, float, int]:
    dev = next(model.parameters()).device
    batch = collate([p.student_ids for p in pairs], [p.completion_ids for p in pairs], pad_id=pad_id, device=dev)
    model.train()
    hidden = completion_hidden(model, batch)
    logp = chunked_logprobs(hidden, OutputHead(model), batch.completion_ids[batch.completion_mask])
    return -logp.mean() if logp.numel() else hidden.sum() * 0.0, 0.0, int(logp.numel())


#: `TrainConfig.method` → its method (config.METHODS names the same ones)
METHODS: dict[str, type[Method]] = {"self-distill": SelfDistill, "sft-revision": SftRevision}
