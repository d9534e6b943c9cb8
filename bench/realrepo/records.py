"""Records this repository's tools would produce: SmolLM2's attempts at train tasks and the checker's feedback, as
`redline.records` objects (write them with `bench.world.records.write_jsonl`).

- a failing attempt: one `diagnostic`/ruff feedback per lint finding (rule code, file range) and one
  `test_failure`/pytest for the first failing test (the test's id as `rule`), all on the generation, placed in the
  file (`path`, `range`) and in the generation's span (`meta.span_line`), as the language server attributes them;
- with `corrections=True`, also the human's correction after accepting it: `edit` feedback whose `correction` is
  the reference body, exactly what the language server records for a settled human rewrite of a generated span
  (`lsp_server.spans.edit_feedback`; the trainer reads it with `feedback_text.correction_of`);
- a passing attempt: one `accept` (an anchor);
- every finding and accept carries the repository's checks as a `redline.evidence.Recheck` (`recheck.py`), so the
  trainer's probe and gate rerun them on a new answer.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from bench.realrepo.checker import CheckResult, Finding, check
from bench.realrepo.evaluate import attempts, max_new_tokens
from bench.realrepo.recheck import recipe
from bench.realrepo.repos import Repo
from bench.realrepo.tasks import Task
from redline.evidence import Recheck, with_recheck
from redline.records import Feedback, Generation, Insertion, ModelRef, Prompt, Range
from redline.trainer.feedback_text import is_accepted

Record = tuple[Generation, list[Feedback]]
MODEL_ID = "SmolLM2-135M-Instruct"


def span_range(task: Task, completion: str) -> Range:
    """Where the completion lies in the file (0-based, end exclusive): from the end of the docstring's line."""
    row = task.prompt.count("\n")
    last = task.prompt.rsplit("\n", 1)[-1]
    lines = completion.split("\n")
    end_col = len(lines[-1]) + (len(last) if len(lines) == 1 else 0)
    return Range(start_line=row, end_line=row + len(lines) - 1, start_col=len(last), end_col=end_col)


def finding_feedback(f: Finding, generation_id: str | None = None, path: str | None = None) -> Feedback:
    """One finding as Redline feedback, placed in the file and in the generation's span."""
    where = None
    if f.row is not None:
        start_col = (f.col or 1) - 1
        end_row = f.end_row or f.row
        where = Range(start_line=f.row - 1, end_line=end_row - 1, start_col=start_col,
                      end_col=(f.end_col - 1) if f.end_col else start_col)
    meta = {"realrepo": True}
    if f.line is not None:
        meta["span_line"] = f.line - 1
    return Feedback(kind=f.kind, source=f.source, message=f.message, detail=f.detail, severity=f.severity,  # type: ignore[arg-type]
                    rule=f.rule, path=f.path or path, range=where, generation_id=generation_id, meta=meta)


def findings_feedback(result: CheckResult, task: Task, generation_id: str | None = None) -> list[Feedback]:
    return [finding_feedback(f, generation_id, task.path) for f in result.findings]


def correction_feedback(task: Task, generation: Generation) -> Feedback:
    """The human's rewrite of the generated span into the reference body (as `lsp_server.spans.edit_feedback`)."""
    return Feedback(kind="edit", source="lsp.edit", message="the human rewrote this generated code",
                    correction=task.solution(), generation_id=generation.id, path=task.path,
                    range=span_range(task, task.solution()), severity="info", trust="high",
                    meta={"generated_chars": len(generation.completion), "generated_text": generation.completion})


def feedback_of(result: CheckResult, task: Task, generation: Generation, *, corrections: bool = False,
                recheck: Recheck | None = None) -> list[Feedback]:
    """The checker's say on one attempt; with `recheck` (the repository's checks as a command: `recheck.recipe`)
    each finding and accept carries how to draw it again, as a repository's tools' findings do (the correction is
    judged against its own text, so it carries none)."""
    if result.passed:
        out = [Feedback(kind="accept", source="pytest", message="all checks passed", severity="info",
                        generation_id=generation.id)]
    else:
        out = findings_feedback(result, task, generation.id)
    if recheck is not None:
        out = [with_recheck(fb, recheck) for fb in out]
    if corrections and not result.passed:
        out.append(correction_feedback(task, generation))
    return out


def model_ref(model_path: str | Path) -> ModelRef:
    """SmolLM2's id, and the source wheel's sha256 (first 12 hex digits) as its revision when the build says."""
    from bench.smollm2 import RECORD

    record_file = Path(model_path) / RECORD
    revision = None
    if record_file.is_file():
        revision = json.loads(record_file.read_text(encoding="utf-8"))["source"]["sha256"][:12]
    return ModelRef(id=MODEL_ID, revision=revision)


def record_of(repo: Repo, task: Task, code: str, *, model: ModelRef, corrections: bool = False,
              prompt_format: str = "raw", sampling: dict[str, Any] | None = None) -> Record:
    """One attempt at `task` as a record: the generation as the editor sent and got it, and the checker's say."""
    if prompt_format not in ("raw", "fim"):
        raise ValueError(f"prompt_format must be 'raw' or 'fim', not {prompt_format!r}")
    prompt = Prompt(text=task.prompt) if prompt_format == "raw" else Prompt(prefix=task.prompt, suffix="")
    gen = Generation(prompt_format=prompt_format, prompt=prompt, completion=code, model=model,  # type: ignore[arg-type]
                     repo_id=repo.id, origin="bench", split="train", sampling=dict(sampling or {}),
                     insertion=Insertion(path=task.path, range=span_range(task, code)),
                     meta={"task_id": task.id, "family": task.spec.family, "rules": list(task.rules)})
    return gen, feedback_of(check(repo, task, code), task, gen, corrections=corrections, recheck=recipe(repo, task))


def make_records(model_path: str | Path, repo: Repo, n: int, seed: int = 0, *, temperature: float = 0.0,
                 adapter_dir: str | Path | None = None, kept: int = 0, corrections: bool = False,
                 prompt_format: str = "raw") -> list[Record]:
    """SmolLM2's attempts at `n` train tasks of `repo` (drawn with `seed`), checked, as (generation, feedback).

    `kept`: then up to that many more records of code the developer kept as written — the model's passing attempts
    at other train tasks, with the `accept` the language server records for them (as `bench.world`).
    `corrections`: a failing attempt also carries the human's correction (an `edit` with the reference body).
    `prompt_format`: "raw" (`prompt.text`) or "fim" (`prompt.prefix`, empty suffix: the same text for a model
    without FIM tokens, and the trainer's `fim` strategy then puts the feedback as a comment above the cursor)."""
    if n > len(repo.train_tasks):
        raise ValueError(f"n={n} exceeds the {len(repo.train_tasks)} train tasks of {repo.id}")
    tasks = random.Random(f"{repo.id}:{seed}").sample(repo.train_tasks, n)
    kw = {"temperature": temperature, "seed": seed, "adapter_dir": adapter_dir, "corrections": corrections,
          "prompt_format": prompt_format}
    records = _records(model_path, repo, tasks, **kw)
    if kept > 0:
        drawn = {t.id for t in tasks}
        rest = [t for t in repo.train_tasks if t.id not in drawn]
        random.Random(f"{repo.id}:{seed}:kept").shuffle(rest)
        for gen, feedback in _records(model_path, repo, rest, **kw):
            if kept > 0 and is_accepted(feedback):
                gen.meta["kept"] = True
                records.append((gen, [Feedback(kind="accept", source="lsp.kept", severity="info",
                                               message="kept as written, saved, no problem found",
                                               generation_id=gen.id)]))
                kept -= 1
    return records


def _records(model_path: str | Path, repo: Repo, tasks: list[Task], *, temperature: float, seed: int,
             adapter_dir: str | Path | None, corrections: bool, prompt_format: str) -> list[Record]:
    from transformers import AutoTokenizer

    outs = attempts(model_path, adapter_dir, repo, tasks, temperature=temperature, seed=seed)
    sampling = {"temperature": temperature,
                "max_new_tokens": max_new_tokens(AutoTokenizer.from_pretrained(model_path), tasks)}
    model = model_ref(model_path)
    return [record_of(repo, task, code, model=model, corrections=corrections, prompt_format=prompt_format,
                      sampling=sampling) for task, (code, _ids) in zip(tasks, outs, strict=True)]
