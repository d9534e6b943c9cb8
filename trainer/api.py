"""Public entry points: train an adapter, load a model (with or without one), generate from it.

    from trainer.api import TrainingExample, TrainConfig, TrainResult, train_adapter, load_for_inference, generate
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from redline.records import Generation, Prompt
from trainer.config import TrainConfig
from trainer.data import TrainingExample
from trainer.loop import StepCallback, TrainResult, train


def train_adapter(model_path: str | Path, examples: Sequence[TrainingExample], out_dir: Path,
                  config: TrainConfig | None = None, *, checker: Callable[[TrainingExample, str], bool] | None = None,
                  progress: bool = True, on_step: StepCallback | None = None, parent_version: str | None = None,
                  init_adapter: Path | None = None, device: str | None = None) -> TrainResult:
    """Train a LoRA adapter on `examples` and write it to `out_dir` (PEFT layout + redline.json).

    With `config.checkpoint_every`, checkpoints go to `out_dir/checkpoints` and a rerun with the same arguments
    resumes from the latest one. `parent_version` is the adapter the records' attempts were sampled from when
    on-policy (their recorded log-probs then need no importance correction); `init_adapter` continues training
    that adapter instead of starting a fresh LoRA. `on_step(step, stats)` is called after each optimizer step."""
    return train(model_path, examples, Path(out_dir), config or TrainConfig(), checker=checker,
                 progress=progress, on_step=on_step, parent_version=parent_version, init_adapter=init_adapter,
                 device=device)


def load_for_inference(model_path: str | Path, adapter_dir: Path | None = None, *, device: str | None = None
                       ) -> tuple[Any, Any]:
    """(model, tokenizer) in eval mode: the base model, or the base with the adapter in `adapter_dir`."""
    from trainer.model import load_base

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
    from trainer.contexts import student_prompt_ids
    from trainer.generation import decode, sample_ids

    ids = student_prompt_ids(tokenizer, generation_or_prompt)
    outs = sample_ids(model, tokenizer, ids, max_new_tokens=max_new_tokens, greedy=greedy, n=n,
                      temperature=temperature)
    return [decode(tokenizer, o) for o in outs]


def plan_training(model_path: str | Path, examples: Sequence[TrainingExample], config: TrainConfig | None = None
                  ) -> dict[str, Any]:
    """What a run would train on, without loading the model: counts, token totals, one rendered student and
    teacher context (for `redline train --dry-run`)."""
    from transformers import AutoTokenizer

    from trainer.contexts import build_pair
    from trainer.errors import ModelNotAvailable
    from trainer.model import tokenizer_fingerprint

    config = config or TrainConfig()
    try:
        tok = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
    except (OSError, ValueError):
        raise ModelNotAvailable(f"no tokenizer for {model_path!r} locally",
                                fix=f"fetch it once with `hf download {model_path}`") from None
    fp = tokenizer_fingerprint(tok)
    pairs = [p for i, ex in enumerate(examples)
             if (p := build_pair(tok, i, ex.generation, ex.feedback, config, fingerprint=fp))]
    plan: dict[str, Any] = {
        "records": len(examples), "trainable": len(pairs), "skipped": len(examples) - len(pairs),
        "anchors": sum(p.anchor for p in pairs), "truncated": sum(p.truncated for p in pairs),
        "student_prompt_tokens": sum(len(p.student_ids) for p in pairs),
        "teacher_prompt_tokens": sum(len(p.teacher_ids) for p in pairs),
        "completion_tokens": sum(len(p.completion_ids) for p in pairs),
        "method": config.method, "hindsight": config.hindsight,
    }
    example = next((p for p in pairs if not p.anchor), None)
    if example is not None:
        plan["example_student"] = tok.decode(example.student_ids + example.completion_ids)
        plan["example_teacher"] = tok.decode(example.teacher_ids + example.completion_ids)
        plan["example_completion"] = tok.decode(example.completion_ids)
    return plan


__all__ = [
    "TrainConfig", "TrainResult", "TrainingExample", "generate", "load_for_inference", "plan_training",
    "train_adapter",
]
