"""The hindsight probe: can this model fix its own mistakes when it is shown the feedback?

Self-distillation can only teach what the teacher — the same base model, shown the hindsight — does better than
the student. So before a night of training, on a sample of failed records, the base model answers each prompt
again greedily, once with the prompt alone and once per way of showing the hindsight (`Rendering` strategies),
and each answer is judged by the evidence that drew the red line (`redline.evidence`: the tool rerun, the
feedback's own criterion). The strategy that fixes most is the one the teacher uses; when none fixes (almost)
anything beyond the prompt alone, training on this feedback cannot work, and the user is told what would.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from redline.evidence import Judge
from redline.prompts import encode
from redline.trainer.contexts import Rendering, render_teacher, strategies_for
from redline.trainer.data import TrainingExample
from redline.trainer.feedback_text import aggregate, correction_of, demonstration_of, is_passed
from redline.trainer.progress import count_bar
from redline.trainer.replay import answers, budget_of, judge_all, student_contexts

log = logging.getLogger("redline.trainer")

#: failed records the probe answers again (per strategy): enough to tell 0 from a few, cheap on a 7B model
SAMPLE = 16
#: fewest judged answers per strategy before "nothing to learn" stops a run (fewer say too little either way)
MIN_JUDGED = 8
#: the prompt alone (no hindsight): what the model does without the feedback
ALONE = "none"
#: what to do when the model uses none of the ways to show it the feedback
ADVICE = ("a larger model, corrections in the queue (edit the model's code and save: the language server records "
          "the edit), or `serve_hints` (the repository's recurring red lines in every prompt, today)")
#: the same, for a queue whose records already show the model a correct version it does not copy
ADVICE_CORRECTED = ("a larger model (this one does not write even the correct versions it is shown), or "
                    "`serve_hints` (the repository's recurring red lines in every prompt, today)")


@dataclass(frozen=True)
class ProbeRow:
    strategy: str
    fixed: int
    judged: int

    @property
    def share(self) -> float:
        return self.fixed / self.judged if self.judged else 0.0


@dataclass
class ProbeReport:
    rows: list[ProbeRow] = field(default_factory=list)
    #: the strategy the teacher uses (None: none judged, or none fixed anything beyond the prompt alone)
    chosen: str | None = None
    records: int = 0
    #: why no strategy was chosen, in a user's words
    reason: str | None = None
    #: probed records that showed the model a correct version (a human's correction, a demonstration)
    corrected: int = 0

    @property
    def advice(self) -> str:
        """What would work instead, for this queue: corrections only where it lacks them."""
        return ADVICE_CORRECTED if self.records and self.corrected * 2 >= self.records else ADVICE

    @property
    def learnable(self) -> bool:
        return self.chosen is not None

    @property
    def conclusive(self) -> bool:
        """Enough answers were judged to say "nothing to learn" (MIN_JUDGED for the best strategy)."""
        return any(r.judged >= MIN_JUDGED for r in self.rows if r.strategy != ALONE)

    def line(self) -> str:
        """One line: the fix counts per strategy, and what follows."""
        counts = ", ".join(f"{r.strategy} {r.fixed}/{r.judged}" for r in self.rows)
        head = f"hindsight probe ({self.records} failed records, fixed when answered again): {counts}"
        if self.chosen is not None:
            return f"{head} — the teacher uses `{self.chosen}`"
        if self.conclusive:
            return f"{head} — {self.reason}; what would work: {self.advice}"
        return f"{head} — {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [dataclasses.asdict(r) for r in self.rows], "chosen": self.chosen, "records": self.records,
                "reason": self.reason, "line": self.line()}


def failed_sample(examples: Sequence[TrainingExample], limit: int = SAMPLE) -> list[TrainingExample]:
    """Up to `limit` records with something against them, spread over the queue (every k-th, not the first)."""
    failed = [ex for ex in examples if not is_passed(ex.feedback)]
    step = max(1, len(failed) // limit)
    return failed[::step][:limit]


def probe(model: Any, tokenizer: Any, examples: Sequence[TrainingExample], rendering: Rendering, judge: Judge, *,
          limit: int = SAMPLE, progress: bool = False, batch_size: int = 8) -> ProbeReport:
    """The base model's fix rate per hindsight strategy on a sample of failed records (module doc). `model` is
    the base (no adapter is attached yet when the trainer calls this)."""
    sample = failed_sample(examples, limit)
    report = ProbeReport(records=len(sample), corrected=sum(
        correction_of(ex.feedback) is not None or demonstration_of(ex.feedback) is not None for ex in sample))
    if not sample:
        report.reason = "no failed records to probe"
        return report
    strategies = [ALONE, *strategies_for(tokenizer, [ex.generation for ex in sample], rendering)]
    with count_bar("hindsight probe", progress, len(sample) * len(strategies)) as advance:
        for strategy in strategies:
            contexts = (student_contexts(tokenizer, sample, rendering.max_length) if strategy == ALONE
                        else _teacher_contexts(tokenizer, sample, dataclasses.replace(rendering, hindsight=strategy)))
            texts = answers(model, tokenizer, contexts, sample, using=nullcontext, batch_size=batch_size,
                            on_batch=advance)
            judged = [j for j in judge_all(judge, sample, texts) if j.verdict.clean is not None]
            report.rows.append(ProbeRow(strategy, sum(bool(j.verdict.clean) for j in judged), len(judged)))
    _choose(report)
    log.info("%s", report.line())
    return report


def _teacher_contexts(tokenizer: Any, sample: Sequence[TrainingExample], rendering: Rendering) -> list[list[int]]:
    out = []
    for ex in sample:
        feedback = aggregate(ex.feedback, max_chars=rendering.max_feedback_chars)
        text, special = render_teacher(tokenizer, ex.generation, feedback, rendering)
        out.append(encode(tokenizer, text, special)[-max(1, rendering.max_length - budget_of(ex)):])
    return out


def _choose(report: ProbeReport) -> None:
    """The strategy that fixes most, if it fixes more than the prompt alone by more than one record in twenty
    (and at least one record): below that, the feedback is not what makes the difference."""
    alone = next(r for r in report.rows if r.strategy == ALONE)
    shown = [r for r in report.rows if r.strategy != ALONE and r.judged]
    if not shown:
        report.reason = "nothing could judge the answers (no check to rerun and no criterion in the feedback)"
        return
    best = max(shown, key=lambda r: r.fixed)  # max keeps the first of equals: strategies come in preference order
    margin = max(1, round(0.05 * best.judged))
    if best.fixed - alone.fixed >= margin:
        report.chosen = best.strategy
        return
    report.reason = (f"this model fixes {best.fixed} of {best.judged} of its red lines when shown the feedback "
                     f"({alone.fixed} without it): training on this feedback cannot teach it")
    if best.judged < MIN_JUDGED:
        report.reason = (f"only {best.judged} answer(s) could be judged (need {MIN_JUDGED} to tell): the static "
                         "choice is used")
