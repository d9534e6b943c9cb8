"""Public entry points: train an adapter, load a model (with or without one), generate from it.

    from redline.trainer.api import TrainingExample, TrainConfig, TrainResult, train, load_for_inference, generate

`train(model, examples, out_dir, config)` is the loop itself; `redline.trainer.run.run_training` is a whole run
on a repository's queue (claim, train, gate, register, promote).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from redline.records import Generation, Prompt
from redline.trainer.config import TrainConfig
from redline.trainer.data import TrainingExample
from redline.trainer.loop import TrainResult, train


def load_for_inference(model_path: str | Path, adapter_dir: Path | None = None, *, device: str | None = None
                       ) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode: the base model, or the base with the adapter in `adapter_dir`."""
    from redline.trainer.model import load_base

    model, tokenizer = load_base(model_path, device=device)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
        model.eval()
    return model, tokenizer


def generate(model: Any, tokenizer: Any, generation_or_prompt: Generation | Prompt | str, *,
             max_new_tokens: int = 128, greedy: bool = True, n: int = 1, temperature: float = 1.0) -> list[str]:
    """Decoded completions for a record's prompt, rendered exactly as the student context renders it (raw text,
    chat template with the generation prompt, or the tokenizer's FIM tokens). Stops at eos."""
    from redline.prompts import student_prompt_ids
    from redline.trainer.generation import decode, sample_ids

    ids = student_prompt_ids(tokenizer, generation_or_prompt)
    outs = sample_ids(model, tokenizer, ids, max_new_tokens=max_new_tokens, greedy=greedy, n=n,
                      temperature=temperature)
    return [decode(tokenizer, o) for o in outs]


def probe_model(model_path: str | Path, examples: Sequence[TrainingExample], config: TrainConfig | None = None,
                *, repo_root: Path | None = None, device: str | None = None) -> Any:
    """The hindsight probe (`probe.py`) of the base model on these records, as `redline train` runs it before
    training: what the model fixes when shown the feedback, per strategy (for `redline doctor`)."""
    from redline.evidence import Judge
    from redline.trainer.contexts import Rendering
    from redline.trainer.model import fit_to_model, load_base
    from redline.trainer.probe import probe

    config = config or TrainConfig()
    model, tokenizer = load_base(model_path, device=device, quantize=config.quantize)
    config = fit_to_model(config, model)
    with Judge(repo_root) as judge:
        return probe(model, tokenizer, examples, Rendering.of(config), judge, limit=config.probe_records or 16,
                     batch_size=config.batch_size)


def plan_training(model_path: str | Path, examples: Sequence[TrainingExample], config: TrainConfig | None = None
                  ) -> dict[str, Any]:
    """What a run would train on, without loading the model: counts, token totals, one rendered student and
    teacher context (for `redline train --dry-run`)."""
    from transformers import AutoTokenizer

    from redline.trainer.contexts import Rendering, build_pair
    from redline.trainer.data import balance_accepted
    from redline.trainer.errors import ModelNotAvailable
    from redline.trainer.model import tokenizer_fingerprint
    from redline.trainer.revisions import writes_rewrites

    config = config or TrainConfig()
    try:
        tok = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
    except (OSError, ValueError):
        raise ModelNotAvailable(f"no tokenizer for {model_path!r} locally",
                                fix=f"fetch it once with `hf download {model_path}`") from None
    fp = tokenizer_fingerprint(tok)
    chosen = balance_accepted(examples, config.seed)
    rendering = Rendering.of(config)
    pairs = [p for i, ex in enumerate(chosen)
             if (p := build_pair(tok, i, ex.generation, ex.feedback, rendering, fingerprint=fp,
                                 anchors=config.use_passed_anchors))]
    plan: dict[str, Any] = {
        "records": len(examples), "trainable": len(pairs), "skipped": len(chosen) - len(pairs),
        "anchors": sum(p.anchor for p in pairs), "accepted_left_out": len(examples) - len(chosen),
        "truncated": sum(p.truncated for p in pairs),
        "student_prompt_tokens": sum(len(p.student_ids) for p in pairs),
        "teacher_prompt_tokens": sum(len(p.teacher_ids) for p in pairs),
        "completion_tokens": sum(len(p.completion_ids) for p in pairs),
        "method": config.method, "hindsight": config.hindsight,
        # written by the base model when training starts (not in a dry run): one per failed record
        "teacher_rewrites": sum(not p.anchor for p in pairs) if writes_rewrites(config) else 0,
    }
    example = next((p for p in pairs if not p.anchor), None)
    if example is not None:
        plan["example_student"] = tok.decode(example.student_ids + example.completion_ids)
        plan["example_teacher"] = tok.decode(example.teacher_ids + example.completion_ids)
        plan["example_completion"] = tok.decode(example.completion_ids)
    return plan


__all__ = [
    "TrainConfig", "TrainResult", "TrainingExample", "generate", "load_for_inference", "plan_training",
    "probe_model", "train",
]
