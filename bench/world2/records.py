"""Records a repository's tools would produce: the base model's attempts on train tasks plus the checker's feedback,
as `redline.records` objects (chat prompts: `Prompt(messages=[Message("user", task.prompt)])`, `prompt_format="chat"`)
and as a JSONL file in Redline's import format.

Each line of the JSONL file: `{"generation": Generation.to_dict(), "feedback": [Feedback.to_dict(), ...]}`.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path

from bench.world2.checker import CheckResult, Finding
from bench.world2.evaluate import attempts, load, max_new_tokens
from bench.world2.pretrain import WEIGHTS, sha256_file
from bench.world2.recheck import recipe
from bench.world2.repos import Repo, check
from bench.world2.tasks import Task
from redline.evidence import Recheck, with_recheck
from redline.records import Feedback, Generation, Message, ModelRef, Prompt, Range
from redline.trainer.feedback_text import is_accepted

Record = tuple[Generation, list[Feedback]]
MODEL_ID = "redline-world2-tiny"


def feedback_of(result: CheckResult, generation: Generation, recheck: Recheck | None = None) -> list[Feedback]:
    """One `Feedback` per finding; a passing attempt gets one `accept` (usable as an anchor). With `recheck`
    (the world's checker as a command) each carries how to draw it again, as a repository's tools' findings do."""
    if result.passed:
        out = [Feedback(kind="accept", source="pytest", message="all checks passed", severity="info",
                        generation_id=generation.id)]
    else:
        lines = generation.completion.split("\n")
        out = [_feedback(f, generation.id, lines) for f in result.findings]
    return [with_recheck(fb, recheck) for fb in out] if recheck is not None else out


def _feedback(f: Finding, generation_id: str, lines: list[str]) -> Feedback:
    where = None
    if f.line is not None and 1 <= f.line <= len(lines):
        where = Range(start_line=f.line - 1, end_line=f.line - 1, start_col=0, end_col=len(lines[f.line - 1]))
    return Feedback(kind=f.kind, source=f.source, message=f.message, detail=f.detail, severity=f.severity,
                    rule=f.rule, range=where, generation_id=generation_id, meta={"world": "world2"})


def make_records(model_path: str | Path, repo: Repo, n: int, seed: int = 0, *, temperature: float = 0.0,
                 adapter_dir: str | Path | None = None, kept: int = 0) -> list[Record]:
    """The model's attempts on `n` train tasks of `repo` (drawn with `seed`), checked, as (generation, feedback).

    `kept`: then up to that many more records of code the developer kept as written — the model's passing
    attempts on other train tasks (a second seeded draw), with the `accept` the language server records for them."""
    if n > len(repo.train_tasks):
        raise ValueError(f"n={n} exceeds the {len(repo.train_tasks)} train tasks of {repo.id}")
    tasks = random.Random(f"{repo.id}:{seed}").sample(repo.train_tasks, n)
    records = _records(model_path, repo, tasks, seed, temperature, adapter_dir)
    drawn = {t.id for t in tasks}
    rest = [t for t in repo.train_tasks if t.id not in drawn]
    random.Random(f"{repo.id}:{seed}:kept").shuffle(rest)
    for start in range(0, len(rest), 64):
        if kept <= 0:
            break
        for gen, feedback in _records(model_path, repo, rest[start:start + 64], seed, temperature, adapter_dir):
            if kept > 0 and is_accepted(feedback):
                gen.meta["kept"] = True
                records.append((gen, [Feedback(kind="accept", source="lsp.kept", severity="info",
                                               message="kept as written, saved, no problem found",
                                               generation_id=gen.id)]))
                kept -= 1
    return records


def _records(model_path: str | Path, repo: Repo, tasks: list[Task], seed: int, temperature: float,
             adapter_dir: str | Path | None) -> list[Record]:
    outs = attempts(model_path, adapter_dir, repo, tasks, temperature=temperature, seed=seed)
    model_path = Path(model_path)
    weights = model_path / WEIGHTS
    model = ModelRef(id=model_path.name if model_path.name != "model" else MODEL_ID,
                     revision=sha256_file(weights)[:12] if weights.exists() else None)
    cap = max_new_tokens(load(model_path, adapter_dir)[1], repo, tasks)
    records: list[Record] = []
    for task, (code, _ids) in zip(tasks, outs, strict=True):
        gen = Generation(prompt_format="chat", prompt=Prompt(messages=[Message("user", task.prompt)]),
                         completion=code, model=model, repo_id=repo.id, origin="bench", split="train",
                         sampling={"temperature": temperature, "max_new_tokens": cap},
                         meta={"task_id": task.id, "structure": list(task.structure)})
        records.append((gen, feedback_of(check(repo, task, code), gen, recipe(repo, task))))
    return records


def write_jsonl(records: Iterable[Record], path: str | Path) -> Path:
    """Write records in Redline's import format, one JSON object per line."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for gen, feedback in records:
            fh.write(json.dumps({"generation": gen.to_dict(), "feedback": [f.to_dict() for f in feedback]}) + "\n")
    return path


def read_jsonl(path: str | Path) -> list[Record]:
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            obj = json.loads(line)
            out.append((Generation.from_dict(obj["generation"]), [Feedback.from_dict(f) for f in obj["feedback"]]))
    return out
