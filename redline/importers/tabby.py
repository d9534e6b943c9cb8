"""Tabby's event logs (`$TABBY_ROOT/events/YYYY-MM-DD.json`, default `~/.tabby/events`; one JSON line each).

Shapes from Tabby's `crates/tabby-common/src/api/event.rs`: a line is `{"user"?, "ts": epoch ms, "event": E}` with
`E` one of `{"completion": {completion_id, language, prompt, segments?: {prefix, suffix?, git_url?, filepath?,
...}, choices: [{index, text}], user_agent?}}`, `{"select": {completion_id, choice_index, kind?, ...}}`,
`{"dismiss": {completion_id, choice_index, ...}}` and `{"view": ...}`.

Each choice becomes a generation (id from `completion_id` and the choice index; fill-in-the-middle when the
segments are logged, else the full prompt as raw text); `select` adds `accept` to it (`kind: "line"`, a partial
accept, says so in the feedback); a dismissed or never selected choice stays a generation without feedback.
A completion is this repository's when its `git_url` is one of the repository's remotes or its file lies in it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from redline.config import Config
from redline.importers.common import RepoIdentity, Report, iso_time, json_lines, stable_id, text_field, write
from redline.queue.protocol import Store
from redline.records import Feedback, Generation, Insertion, ModelRef, Prompt

SOURCE = "tabby"


def default_dir() -> Path:
    """`$TABBY_ROOT/events`, else `~/.tabby/events` (Tabby's own rule)."""
    return Path(os.environ.get("TABBY_ROOT") or Path.home() / ".tabby") / "events"


def import_dir(store: Store, config: Config, directory: Path) -> Report:
    report = Report()
    repo = RepoIdentity.of(config)
    generations: dict[str, Generation] = {}
    selects: list[tuple[str, dict[str, Any], str | None]] = []
    for path in sorted([*directory.glob("*.json"), *directory.glob("*.jsonl")]):
        report.files += 1
        for lineno, obj in json_lines(path, report):
            event = obj.get("event")
            if not isinstance(event, dict) or len(event) != 1:
                report.skip(path, lineno, "no event object")
                continue
            ((kind, body),) = event.items()
            if not isinstance(body, dict):
                report.skip(path, lineno, f"{kind} is not an object")
                continue
            try:
                if kind == "completion":
                    report.events += 1
                    found = _completion(body, repo, iso_time(obj.get("ts")))
                    if found is None:
                        report.other_repo += 1
                    for g in found or []:
                        generations.setdefault(g.id, g)
                elif kind == "select":
                    report.events += 1
                    gid = stable_id(SOURCE, text_field(body, "completion_id"), _index(body))
                    selects.append((gid, body, iso_time(obj.get("ts"))))
                elif kind in ("dismiss", "view", "chat_completion"):
                    report.events += 1  # a dismissed choice is already an unaccepted generation
                else:
                    report.skip(path, lineno, f"unknown event {kind!r}")
            except ValueError as exc:
                report.skip(path, lineno, str(exc))
    feedback = []
    for gid, body, when in selects:
        gen = generations.get(gid) or store.get_generation(gid)  # selected later than an earlier import
        if gen is None:
            continue  # a completion of another repository (or one never logged)
        line = body.get("kind") == "line"
        said = "accepted a line of it in the editor (Tabby)" if line else "accepted in the editor (Tabby)"
        fb = Feedback(kind="accept", source=SOURCE, generation_id=gid, severity="info", message=said,
                      path=gen.insertion.path if gen.insertion else None, meta={"kind": body.get("kind")})
        if when:
            fb.created_at = when
        feedback.append(fb)
    write(store, config, list(generations.values()), feedback, report)
    return report


def _completion(body: dict[str, Any], repo: RepoIdentity, when: str | None) -> list[Generation] | None:
    cid, prompt = text_field(body, "completion_id"), text_field(body, "prompt")
    choices = body.get("choices")
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise ValueError("choices is not a list of objects")
    raw_segments = body.get("segments")
    segments: dict[str, Any] = raw_segments if isinstance(raw_segments, dict) else {}
    filepath = segments.get("filepath") if isinstance(segments.get("filepath"), str) else None
    git_url = segments.get("git_url") if isinstance(segments.get("git_url"), str) else None
    rel = repo.owns(path=filepath, remote=git_url)
    if rel is None:
        return None
    prefix = segments.get("prefix") if isinstance(segments.get("prefix"), str) else None
    suffix = segments.get("suffix") if isinstance(segments.get("suffix"), str) else ""
    out = []
    for choice in choices:
        index, text = _index(choice, "index"), text_field(choice, "text")
        shown = Prompt(prefix=prefix, suffix=suffix) if prefix is not None else Prompt(text=prompt)
        gen = Generation(prompt_format="fim" if prefix is not None else "raw", prompt=shown, completion=text,
                         model=ModelRef("tabby"), origin="editor",
                         id=stable_id(SOURCE, cid, index), insertion=Insertion(rel) if rel else None,
                         meta={"capture": SOURCE, "completion_id": cid, "choice_index": index,
                               "rendered_prompt": prompt, "language": body.get("language"),
                               **({"git_url": git_url} if git_url else {})})
        if when:
            gen.created_at = when
        out.append(gen)
    return out


def _index(body: dict[str, Any], name: str = "choice_index") -> int:
    value = body.get(name, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} is not a non-negative integer")
    return value
