"""Turning the pytest plugin's collected failures into feedback, attributed frame by frame.

A failure is attributed to the generation whose model-written lines hold its innermost project frame; if none
do, the next frame out is tried, and so on up to the test function itself (a model may have written the test).
A wrong value returned by generated code leaves only test frames: when the run traced coverage
(`--redline-trace`), the failure goes, at low trust (`meta.attribution = "coverage"`), to each generation whose
lines the test executed. Otherwise it is kept unattributed, at its innermost project frame, with a low-trust
commit hint when git blame points at an AI-trailer commit.
"""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from redline.attribution import Attributor, repo_relative
from redline.ci_hook.generated import BlameHints
from redline.ci_hook.recheck import pytest_node
from redline.evidence import with_recheck
from redline.queue.protocol import Store
from redline.records import Feedback, Range

#: longest long report kept per failure; the head and the tail (where the error is) survive
MAX_DETAIL_CHARS = 20_000


class FailureFeedback:
    """Builds feedback from failures one at a time with one `Attributor` for the run (each file placed once)."""

    def __init__(self, store: Store, repo_root: Path, rootpath: Path, *, blame_files: int = 0) -> None:
        self.repo_root = repo_root
        self.rootpath = rootpath
        self.blame_files = blame_files
        self.attributor = Attributor(store, repo_root)
        self.hints = BlameHints(repo_root)
        self._places: dict[str, str | None] = {}

    def _node_from_repo(self, nodeid: str) -> str:
        """A node id (relative to pytest's rootdir) as seen from the repository root, where reruns start."""
        try:
            sub = self.rootpath.resolve().relative_to(self.repo_root.resolve()).as_posix()
        except ValueError:
            return nodeid
        return nodeid if sub in ("", ".") else f"{sub}/{nodeid}"

    def feedback(self, failure: dict[str, Any]) -> list[Feedback]:
        """The failure as feedback: on the generation its innermost model-written frame is in; else, when the
        run traced coverage, on each generation whose lines the test executed (low trust); else unattributed."""
        locations = _locations(self.repo_root, self.rootpath, failure, self._places)
        found = self.attributor.find(locations)
        annotation = failure.get("annotation") or {}
        meta: dict[str, Any] = {
            "when": failure.get("when"),
            "assertion": annotation.get("assertion"),
            "exc_type": annotation.get("exc_type"),
            "frames": [[p, line] for p, line in locations],
        }
        if failure.get("subtest"):
            meta["subtest"] = str(failure["subtest"])
        path: str | None = locations[0][0] if locations else None
        line: int | None = locations[0][1] if locations else None
        if found is not None:
            path, line = found[1], found[2]
            meta["attributed_frame"] = [path, line]
        fb = Feedback(kind="test_failure", source="pytest", message=str(failure.get("message") or "")[:2000],
                      detail=_clip(str(failure.get("detail") or "")) or None, path=path,
                      range=Range(line, line + 1) if path is not None and line is not None else None,
                      rule=str(failure.get("nodeid") or "") or None, meta=meta)
        if fb.rule:  # the node can be rerun on an answer spliced into its file (the gate, the hindsight probe)
            with_recheck(fb, pytest_node(self._node_from_repo(fb.rule), _pytest_version()))
        if found is not None:
            match = found[0]
            return [fb.attributed_to(match.generation_id, span_line=match.span_line, attribution=match.confidence)]
        traced = self._executed(annotation.get("executed") or {})
        if traced:
            return [replace(fb.attributed_to(gid, attribution="coverage", executed_lines=n), trust="low")
                    for gid, n in traced.items()]
        if fb.path and fb.range and self.hints.files_blamed < self.blame_files:
            hint = self.hints.hint(fb.path, fb.range.start_line)
            if hint is not None:
                fb.meta["generated_hint"] = hint
        return [fb]

    def _executed(self, executed: dict[str, list[int]]) -> dict[str, int]:
        """Generation id → how many of its model-written lines the failing test ran (from the coverage trace)."""
        ran: dict[str, int] = {}
        for file, lines in executed.items():
            if file not in self._places:
                self._places[file] = repo_relative(self.repo_root, file)
            rel = self._places[file]
            if rel is None:
                continue
            hit = {int(n) - 1 for n in lines}  # coverage.py counts from 1
            for anchor in self.attributor.anchors(rel):
                n = len(hit.intersection(anchor.own))
                if n:
                    gid = anchor.span.generation_id
                    ran[gid] = ran.get(gid, 0) + n
        return ran


def _locations(repo_root: Path, rootpath: Path, failure: dict[str, Any],
               places: dict[str, str | None]) -> list[tuple[str, int]]:
    """Repo-relative (path, 0-based line) of each project frame, innermost first, then the test's own line."""
    seen: list[tuple[str, int]] = []
    frames = (failure.get("annotation") or {}).get("frames") or []
    for frame in frames:
        if frame[0] not in places:
            places[frame[0]] = repo_relative(repo_root, frame[0])
        rel = places[frame[0]]
        if rel is not None and (rel, frame[1]) not in seen:
            seen.append((rel, int(frame[1])))
    location = failure.get("location") or []
    if len(location) >= 2 and isinstance(location[0], str) and isinstance(location[1], int):
        rel = repo_relative(repo_root, rootpath / location[0])
        if rel is not None and (rel, location[1]) not in seen:
            seen.append((rel, location[1]))
    return seen


def _clip(text: str) -> str:
    if len(text) <= MAX_DETAIL_CHARS:
        return text
    half = MAX_DETAIL_CHARS // 2
    return f"{text[:half]}\n… [{len(text) - MAX_DETAIL_CHARS} characters cut] …\n{text[-half:]}"


@cache
def _pytest_version() -> str | None:
    try:
        return metadata.version("pytest")
    except metadata.PackageNotFoundError:
        return None
