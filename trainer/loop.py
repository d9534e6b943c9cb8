"""The training loop: records → token sequences → LoRA steps → adapter directory.

`train` reads top to bottom: seed, load the base once, let the method turn the records into token sequences (on
the base model, before LoRA exists), plan the memory, run the frozen teacher once over every sequence, attach
LoRA, then the usual loop — gradient accumulation over micro-batches, AdamW, warm-up + cosine, clipping,
resumable checkpoints, half the micro-batch after running out of memory — and save the adapter with its report.
What differs between methods is behind `methods.Method`; the loop never asks which one it runs. Launched as
several processes (`accelerate launch`, docs/trainer.md), each step's records are split between them and their
gradients summed (`distributed.py`); only rank 0 writes the adapter.
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

from redline.evidence import Judge
from redline.fsutil import write_json
from redline.records import utc_now
from redline.trainer.batching import lr_lambda, micro_batches, padding_waste, planned_steps, schedule, with_rewrites
from redline.trainer.checkpoint import Checkpointer
from redline.trainer.config import TrainConfig
from redline.trainer.contexts import Pair, Rendering
from redline.trainer.data import TrainingExample, balance_accepted, data_window
from redline.trainer.demonstrations import with_demonstrations
from redline.trainer.distributed import Group, current
from redline.trainer.errors import NothingToLearn, TrainError
from redline.trainer.identity import base_identity, check_base, read_adapter_meta
from redline.trainer.methods import METHODS, Method, Run
from redline.trainer.model import attach_lora, fit_to_model, load_base
from redline.trainer.plan import MemoryPlan, ModelShape, memory_budget, model_shape, plan_memory
from redline.trainer.probe import ProbeReport, probe
from redline.trainer.progress import StepBar, count_bar
from redline.trainer.teacher import cache_teacher_hidden
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
          method: Method | None = None, progress: bool = True, on_step: StepCallback | None = None,
          parent_version: str | None = None, init_adapter: Path | None = None, device: str | None = None,
          judge: Judge | None = None, on_probe: Callable[[ProbeReport], None] | None = None) -> TrainResult:
    """Train a LoRA adapter on `examples` into `out_dir` with `config.method` (or `method`: the bench passes its
    variants), continuing `init_adapter` when given; `parent_version` is the adapter that adapter is. `judge`
    reruns the records' checks for the hindsight probe (default: checks that need no repository, and the
    feedback's own criteria); `on_probe` hears its result before any training step."""
    method = method or METHODS[config.method]()
    if not examples:
        raise TrainError("no training records", fix="collect feedback first (`redline status` shows the queue)")
    started, given = time.perf_counter(), len(examples)
    group = current()  # None unless launched as several processes: then each rank trains on its share
    if group is not None:
        device, progress = device or group.device(), progress and group.main
    # What passing looks like, where the queue knows (a sibling that passed), for the teacher; then at most one
    # anchor per mistake: an editor's queue holds far more accepted code than mistakes.
    examples = balance_accepted(with_demonstrations(examples), config.seed)
    _seed(config.seed)
    model, tokenizer, identity = _load(model_path, config, init_adapter, device)
    config = fit_to_model(config, model)  # max_length within the model's window, an unset lr by its width
    # Can the model use this feedback at all? Its answers with the feedback shown, judged; `auto` takes the best.
    config, probed = _probe(model, tokenizer, examples, config, judge, progress, on_probe)
    run = Run(config, tokenizer, identity["tokenizer_fingerprint"], parent_version, progress)

    # Records → token ids. The method builds them on the base model, before LoRA exists: its rewrites and samples
    # are the base's, whatever adapter the run continues.
    pairs, found = method.sequences(model, examples, run)
    if not pairs:
        raise TrainError(f"none of the {given} records has anything to train on for {method.name}",
                         fix=method.fix_when_empty)
    metrics: dict[str, Any] = {"accepted_left_out": given - len(examples), **found, "hindsight_strategy":
                               config.hindsight, **({"probe": probed.to_dict()} if probed.records else {})}
    shape = model_shape(model)
    memory = _plan_memory(model, shape, pairs, config)
    metrics.update(_teacher_pass(method, model, pairs, run))

    _seed(config.seed)  # LoRA init depends only on the seed, not on what the method sampled
    model = attach_lora(model, dataclasses.replace(config, gradient_checkpointing=memory.gradient_checkpointing),
                        adapter_dir=init_adapter)
    method.start(model, run)
    ckpt = Checkpointer(Path(out_dir) / "checkpoints", _run_fingerprint(model_path, config, method, pairs))
    steps = _Steps.prepare(model, method, run, pairs, memory.micro_batch, shape, ckpt, group)
    start, history = _resume_and_train(steps, config, group, on_step)

    # The adapter, its settings and its report; the checkpoints have done their job.
    metrics.update(_summarise(history), **steps.report(), memory_plan=memory.to_dict(), model_shape=shape.to_dict())
    if group is not None:
        metrics["processes"] = group.world
    result = TrainResult(Path(out_dir), method.name, len(steps.plan), given, len(pairs),
                         skipped=given - len({p.index for p in pairs}), tokens=sum(int(h["tokens"]) for h in history),
                         seconds=time.perf_counter() - started, resumed_from_step=start, metrics=metrics)
    if group is None or group.main:  # the other ranks hold the same weights: one adapter, one report
        _save(model, result, config, memory.gradient_checkpointing, {
            "base_model": identity, "tokenizer_fingerprint": run.fingerprint, "method": method.name,
            "records": sorted({examples[p.index].generation.id for p in pairs}), "data_window": data_window(examples),
            "parent_version": parent_version})
        steps.ckpt.clear()
    # the gate loads the base again next: give this copy's memory back first (a 24 GB card holds one 7B copy)
    del model, steps
    _free_memory()
    return result


def _probe(model: Any, tokenizer: Any, examples: Sequence[TrainingExample], config: TrainConfig,
           judge: Judge | None, progress: bool, on_probe: Callable[[ProbeReport], None] | None
           ) -> tuple[TrainConfig, ProbeReport]:
    """The hindsight probe (`probe.py`) on the base model, heard by `on_probe`. With `auto`, the teacher then shows
    the feedback the way that fixed most; when no way fixes more than the prompt alone, there is nothing to learn
    (`NothingToLearn`). Answers nothing could judge (no check to rerun, no criterion in the words) leave the static
    choice."""
    if not config.probe_records:
        return config, ProbeReport()
    probed = probe(model, tokenizer, examples, Rendering.of(config), judge or Judge(None), limit=config.probe_records,
                   progress=progress, batch_size=config.batch_size)
    if on_probe is not None and probed.records:
        on_probe(probed)
    if probed.chosen is not None and config.hindsight == "auto":
        return dataclasses.replace(config, hindsight=probed.chosen), probed
    if probed.chosen is None and probed.conclusive:
        raise NothingToLearn(probed.reason or "the model does not use this feedback in context", fix=probed.advice)
    return config, probed


def _resume_and_train(steps: _Steps, config: TrainConfig, group: Any, on_step: StepCallback | None
                      ) -> tuple[int, list[dict[str, float]]]:
    """Every rank starts from the same weights, at the last checkpoint when there is one; then the steps run."""
    if group is not None:
        group.same_start(steps.params)
    start = steps.resume() if config.checkpoint_every else 0
    if start:
        log.info("resuming from checkpoint at step %d of %d", start, len(steps.plan))
    return start, _train_steps(steps, start, on_step)


def _load(model_path: str | Path, config: TrainConfig, init_adapter: Path | None, device: str | None
          ) -> tuple[Any, Any, dict[str, Any]]:
    """The base model, its tokenizer and its identity; an adapter to continue must come from this same base."""
    model, tokenizer = load_base(model_path, device=device, quantize=config.quantize)
    identity = base_identity(model, tokenizer, model_path)
    if init_adapter is not None:
        check_base(read_adapter_meta(init_adapter), identity)
    return model, tokenizer, identity


def _plan_memory(model: Any, shape: ModelShape, pairs: Sequence[Pair], config: TrainConfig) -> MemoryPlan:
    """The micro-batch and gradient checkpointing that fit the memory the run may use (`plan.py`)."""
    dev = next(model.parameters()).device
    memory = plan_memory(shape, config, seq_len=max(p.length for p in pairs),
                         completion_len=max(len(p.completion_ids) for p in pairs),
                         budget=memory_budget(config, dev, weights_loaded=shape.weight_bytes))
    log.info("memory plan: micro-batch %d of %d, gradient checkpointing %s (%s; estimate %.2f GiB, budget %s)",
             memory.micro_batch, config.batch_size, "on" if memory.gradient_checkpointing else "off",
             memory.reason, memory.estimate_bytes / 2**30,
             "unknown" if memory.budget_bytes is None else f"{memory.budget_bytes / 2**30:.2f} GiB")
    return memory


def _teacher_pass(method: Method, model: Any, pairs: Sequence[Pair], run: Run) -> dict[str, Any]:
    """The base teacher is frozen and its contexts fixed: one pass now instead of one per step, every epoch."""
    started, cached = time.perf_counter(), False
    if method.caches_teacher:
        with count_bar("teacher pass", run.progress, len(pairs)) as advance:
            # batches of `batch_size`, not of the planned micro-batch: the cached states (to float rounding) then
            # depend on the settings alone, so a run whose micro-batch was halved ends where the planned one would
            cached = cache_teacher_hidden(model, pairs, run.tokenizer.pad_token_id, batch_size=run.config.batch_size,
                                          on_batch=advance)
    return {"teacher_cached": cached, "teacher_pass_seconds": round(time.perf_counter() - started, 3)}


# -- the optimizer steps -----------------------------------------------------------------------------------------


@dataclass
class _Steps:
    """What the optimizer steps share: the model and its method, the plan, the optimizer and the checkpoints."""

    model: Any
    method: Method
    run: Run
    pairs: list[Pair]
    #: pair indices, one list per optimizer step
    plan: list[list[int]]
    #: records per forward pass: the planned micro-batch, halved each time a step runs out of memory
    micro: int
    params: list[torch.nn.Parameter]
    optimizer: Any
    scheduler: Any
    ckpt: Checkpointer
    meter: Throughput
    #: the launched processes this run is one of, or None for a single process
    group: Group | None = None
    ooms: int = 0

    @classmethod
    def prepare(cls, model: Any, method: Method, run: Run, pairs: list[Pair], micro: int, shape: ModelShape,
                ckpt: Checkpointer, group: Group | None = None) -> _Steps:
        config = run.config
        # Steps, epochs and `batch_size` count records; a record's rewrite rides in the same step as its attempt.
        records = sum(not p.rewrite for p in pairs)
        n_steps = planned_steps(records, batch_size=config.batch_size, epochs=config.epochs,
                                max_steps=config.max_steps)
        plan = with_rewrites(schedule(pairs[:records], batch_size=config.batch_size, seed=config.seed,
                                      steps=n_steps), pairs, records)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay, betas=(0.9, 0.99))
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lr_lambda(n_steps, max(1, round(config.warmup_ratio * n_steps))))
        log.info("%d optimizer steps of %d records over %d records (%.1f epochs; %d sequences with the rewrites)",
                 n_steps, config.batch_size, records, n_steps * config.batch_size / records, len(pairs))
        meter = Throughput(shape.params, next(model.parameters()).device)
        return cls(model, method, run, pairs, plan, micro, params, optimizer, scheduler, ckpt, meter, group)

    def resume(self) -> int:
        """Load the latest checkpoint (LoRA, optimizer, scheduler, RNG states, the method's state); the step it
        was written after, 0 when there is none."""
        step, extra = self.ckpt.restore(self.model, self.optimizer, self.scheduler)
        if extra is not None:
            self.method.restore(extra)
        return step

    def report(self) -> dict[str, Any]:
        """Throughput, the micro-batch the run ended with, out-of-memory retries and the share of padding."""
        waste = padding_waste([m for b in self.plan for m in micro_batches(b, self.pairs, self.micro)], self.pairs)
        return {**self.meter.summary(), "micro_batch": self.micro, "oom_retries": self.ooms, "padding_waste": waste}


def _train_steps(s: _Steps, start: int, on_step: StepCallback | None) -> list[dict[str, float]]:
    """Optimizer steps from `start` to the end of the plan; the stats of each."""
    config, history, step = s.run.config, [], start
    with StepBar(s.run.progress, len(s.plan), start) as bar:
        while step < len(s.plan):
            t0 = time.perf_counter()
            try:
                stats, trained, teacher = _accumulate(s, step)
                grad_norm = torch.nn.utils.clip_grad_norm_(s.params, config.max_grad_norm)
            except Exception as exc:
                step = _after_out_of_memory(s, exc, step, in_update=False)
                continue
            try:
                s.optimizer.step()
            except Exception as exc:
                step = _after_out_of_memory(s, exc, step, in_update=True)
                continue
            s.scheduler.step()
            s.optimizer.zero_grad(set_to_none=True)
            s.method.end_step()
            rate = s.meter.step(trained, teacher, time.perf_counter() - t0)
            stats.update(grad_norm=float(grad_norm), lr=s.scheduler.get_last_lr()[0], **rate)
            history.append(stats)
            bar.advance(stats)
            step += 1
            if (config.checkpoint_every and step % config.checkpoint_every == 0 and step < len(s.plan)
                    and (s.group is None or s.group.main)):
                s.ckpt.save(step, s.model, s.optimizer, s.scheduler, s.method.state())
            if on_step is not None:
                on_step(step, stats)
    return history


def _accumulate(s: _Steps, step: int) -> tuple[dict[str, float], int, int]:
    """Forward and backward over one step's micro-batches: (stats, student tokens, teacher tokens processed).
    Among several processes, over this rank's share of the step, weighted by the tokens of the whole step."""
    mine = s.plan[step] if s.group is None else s.group.shard(s.plan[step])
    batches = s.method.batches(s.model, [[s.pairs[i] for i in m] for m in micro_batches(mine, s.pairs, s.micro)],
                               step, s.run)
    total = sum(len(p.completion_ids) for b in batches for p in b)
    if s.group is not None:
        total = int(s.group.sum([total])[0])
    stats = {"loss": 0.0, "kl": 0.0, "tokens": 0.0}
    trained = teacher = 0
    for batch in batches:
        loss, kl, n, ran = s.method.loss(s.model, batch, s.run)
        trained += sum(len(p.student_ids) + len(p.completion_ids) for p in batch)
        teacher += ran
        # each micro-batch's token mean, weighted by its tokens: the step's loss is the token mean over the whole
        # batch, whatever the micro-batches are
        (loss * (n / total)).backward()
        stats["loss"] += loss.item() * n / total
        stats["kl"] += kl * n / total
        stats["tokens"] += n
    if s.group is not None:  # the step every rank takes: one process's gradient of the whole batch
        s.group.sum_gradients(s.params)
        stats = dict(zip(stats, s.group.sum(list(stats.values())), strict=True))
    return stats, trained, teacher


def _after_out_of_memory(s: _Steps, exc: Exception, step: int, *, in_update: bool) -> int:
    """Out of memory: halve the micro-batch and give the step to go on from — this one (a step boundary is a
    consistent state), or the last checkpoint's when the optimizer's update ran out (the parameters may be
    half-updated). Any other error goes on up."""
    if not is_out_of_memory(exc):
        raise exc
    s.optimizer.zero_grad(set_to_none=True)
    _free_memory()
    if s.micro == 1:
        raise TrainError("out of memory with a micro-batch of 1",
                         fix='set quantize = "4bit", a lower max_length, or a smaller max_memory share for other '
                             "programs") from None
    s.micro, s.ooms = max(1, s.micro // 2), s.ooms + 1
    if in_update:
        if not s.run.config.checkpoint_every or not s.ckpt.has_checkpoint():
            raise TrainError("out of memory in the optimizer step, and no checkpoint to resume",
                             fix="set checkpoint_every, or a smaller micro_batch") from None
        step = s.resume()
    log.warning("out of memory at step %d: micro-batch halved to %d, resuming from step %d", step + 1, s.micro, step)
    return step


# -- the adapter and its report ----------------------------------------------------------------------------------


def _save(model: Any, result: TrainResult, config: TrainConfig, checkpointing: bool, meta: dict[str, Any]) -> None:
    """The adapter in PEFT layout, its settings and `redline.json` (`meta`: identity, records…; the metrics)."""
    out_dir = result.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out_dir), selected_adapters=["default"])
    config.save(out_dir / "train_config.json")
    metrics = result.metrics
    log.info("trained %d steps (micro-batch %d%s): %.0f tokens/s processed%s%s",
             result.steps - result.resumed_from_step, metrics["micro_batch"],
             ", gradient checkpointing" if checkpointing else "",
             metrics.get("tokens_per_s", 0.0), f", MFU {metrics['mfu']:.0%}" if "mfu" in metrics else "",
             f", peak GPU memory {metrics['peak_memory_bytes'] / 2**30:.1f} GiB" if "peak_memory_bytes" in metrics
             else "")
    write_json(out_dir / "redline.json", {**meta, "created_at": utc_now(), "metrics": result.to_dict(),
                                          "train_config": config.to_dict()})


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


def _run_fingerprint(model_path: str | Path, config: TrainConfig, method: Method, pairs: Sequence[Pair]) -> str:
    settings = {**{k: v for k, v in config.to_dict().items() if k not in _LAYOUT}, "method": method.name}
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
