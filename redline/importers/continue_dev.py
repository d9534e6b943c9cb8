"""Continue's local dev data (`~/.continue/dev_data/0.2.0/*.jsonl`, one event per line).

Shapes from Continue's schemas (`packages/config-yaml/src/schemas/data/`): every event carries the base fields
(`eventName`, `schema`, `createdAt`, `userId`, `userAgent`, `selectedProfileId`); `autocomplete.jsonl` adds
`completionId`, `prefix`, `suffix`, `prompt` (the rendered prompt), `completion`, `accepted`, `modelName`,
`modelProvider`, `filepath`, `gitRepo`, `timestamp`; `editOutcome.jsonl` adds `prompt`, `completion`,
`previousCode`, `newCode`, `accepted`, `modelName`, `filepath`.

An autocomplete becomes a fill-in-the-middle generation (id from `completionId`), with `accept` feedback when it
was accepted; one never accepted stays a generation without feedback (not trained on). An edit outcome becomes a
raw-prompt generation of its own, with `accept` when applied; when it rewrote code that holds an accepted
autocomplete of the same file, that autocomplete gets `edit` feedback (low trust: the new code is the whole
rewritten region).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from redline.config import Config
from redline.importers.common import RepoIdentity, Report, iso_time, json_lines, stable_id, text_field, write
from redline.queue.protocol import Store
from redline.records import Feedback, Generation, Insertion, ModelRef, Prompt

SOURCE = "continue"
FILES = ("autocomplete.jsonl", "editOutcome.jsonl")
#: an accepted completion shorter than this is not looked for inside later edits
_MIN_EDIT_MATCH = 10


def default_dir() -> Path:
    """`$CONTINUE_GLOBAL_DIR/dev_data/0.2.0`, else `~/.continue/dev_data/0.2.0` (Continue's own rule)."""
    base = os.environ.get("CONTINUE_GLOBAL_DIR") or str(Path.home() / ".continue")
    return Path(base) / "dev_data" / "0.2.0"


def import_dir(store: Store, config: Config, directory: Path) -> Report:
    report = Report()
    repo = RepoIdentity.of(config)
    generations: list[Generation] = []
    feedback: list[Feedback] = []
    accepted: list[tuple[Generation, str]] = []  # (autocomplete, its repo path) for edits to find
    for name in FILES:
        path = directory / name
        if not path.exists():
            continue
        report.files += 1
        for lineno, obj in json_lines(path, report):
            try:
                if name == "autocomplete.jsonl":
                    taken = _autocomplete(obj, repo)
                else:
                    taken = _edit_outcome(obj, repo, accepted)
            except ValueError as exc:
                report.skip(path, lineno, str(exc))
                continue
            report.events += 1
            if taken is None:
                report.other_repo += 1
                continue
            gen, fbs = taken
            generations.append(gen)
            feedback.extend(fbs)
            if name == "autocomplete.jsonl" and any(f.kind == "accept" for f in fbs) and gen.insertion:
                accepted.append((gen, gen.insertion.path))
    write(store, config, _unique(generations), feedback, report)
    return report


def _autocomplete(obj: dict[str, Any], repo: RepoIdentity) -> tuple[Generation, list[Feedback]] | None:
    cid = text_field(obj, "completionId")
    completion, prefix = text_field(obj, "completion"), text_field(obj, "prefix")
    suffix, filepath = text_field(obj, "suffix"), text_field(obj, "filepath")
    git_repo = obj.get("gitRepo") if isinstance(obj.get("gitRepo"), str) else None
    rel = repo.owns(path=filepath, remote=git_repo)
    if rel is None:
        return None
    accepted = obj.get("accepted")
    if accepted is not None and not isinstance(accepted, bool):
        raise ValueError("accepted is not true or false")
    when = iso_time(obj.get("timestamp")) or iso_time(obj.get("createdAt"))
    gen = Generation(prompt_format="fim", prompt=Prompt(prefix=prefix, suffix=suffix), completion=completion,
                     model=ModelRef(_model(obj)), origin="editor", id=stable_id(SOURCE, cid),
                     insertion=Insertion(rel) if rel else None,
                     meta=_meta(obj, capture_id=cid, rendered_prompt=obj.get("prompt"), git_repo=git_repo))
    if when:
        gen.created_at = when
    fbs = [Feedback(kind="accept", source=SOURCE, message="accepted in the editor (Continue autocomplete)",
                    generation_id=gen.id, path=rel or None, severity="info", created_at=gen.created_at)] \
        if accepted else []
    return gen, fbs


def _edit_outcome(obj: dict[str, Any], repo: RepoIdentity, accepted_completions: list[tuple[Generation, str]]
                  ) -> tuple[Generation, list[Feedback]] | None:
    prompt, completion = text_field(obj, "prompt"), text_field(obj, "completion")
    previous, new, filepath = text_field(obj, "previousCode"), text_field(obj, "newCode"), text_field(obj, "filepath")
    if not isinstance(obj.get("accepted"), bool):
        raise ValueError("accepted is not true or false")
    rel = repo.owns(path=filepath)
    if rel is None:
        return None
    when = iso_time(obj.get("createdAt"))
    digest = hashlib.sha256("\0".join([filepath, when or "", prompt, previous, new]).encode("utf-8",
                                                                                            "surrogatepass"))
    gen = Generation(prompt_format="raw", prompt=Prompt(text=prompt), completion=completion,
                     model=ModelRef(_model(obj)), origin="editor", id=stable_id(SOURCE, "edit", digest.hexdigest()),
                     insertion=Insertion(rel) if rel else None,
                     meta=_meta(obj, capture_id=None, rendered_prompt=None, previous_code=previous, new_code=new))
    if when:
        gen.created_at = when
    fbs = []
    if obj["accepted"]:
        fbs.append(Feedback(kind="accept", source=SOURCE, message="applied in the editor (Continue edit)",
                            generation_id=gen.id, path=rel or None, severity="info", created_at=gen.created_at))
        for earlier, path in accepted_completions:
            text = earlier.completion.strip()
            if path == rel and len(text) >= _MIN_EDIT_MATCH and text in previous and text not in new:
                fbs.append(Feedback(kind="edit", source=SOURCE, correction=new, trust="low", severity="info",
                                    message="the code holding this completion was rewritten later (Continue edit)",
                                    generation_id=earlier.id, path=rel or None, created_at=gen.created_at,
                                    meta={"previous_code": previous}))
    return gen, fbs


def _model(obj: dict[str, Any]) -> str:
    name = obj.get("modelName")
    return name if isinstance(name, str) and name else "unknown"


def _meta(obj: dict[str, Any], **extra: Any) -> dict[str, Any]:
    meta = {"capture": SOURCE, "event": obj.get("eventName"), "model_provider": obj.get("modelProvider"), **extra}
    return {k: v for k, v in meta.items() if v is not None}


def _unique(generations: list[Generation]) -> list[Generation]:
    """One generation per id (Continue may log one completion more than once, e.g. shown and then accepted)."""
    seen: dict[str, Generation] = {}
    for g in generations:
        seen.setdefault(g.id, g)
    return list(seen.values())
