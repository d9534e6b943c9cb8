"""Does a red line come back? An answer re-checked with the evidence that drew the red line in the first place.

The hindsight probe (can the model fix its mistakes when shown the feedback?) and the gate (does the adapter
write code the repository's tools no longer flag?) both ask this of new answers to old prompts. In order of
strength:

1. **Rerun the tool** that drew it: each finding can carry a `Recheck` in `meta["recheck"]` — the command that
   checks one file (ruff, a project's own lint script, one pytest node, a synthetic world's checker), recorded
   with its version when the finding was harvested. The answer is spliced into its file in a scratch copy of the
   repository (or given on stdin), the command rerun under a time limit, and the answer is clean when the tool
   reports nothing on the answer's own lines (for a test: the node passes). Nothing in the user's tree changes.
2. **The feedback's own criterion**, where nothing can be rerun: a named banned call must be gone, a named
   replacement present (`` `fetch` is banned: use `http_get` ``, "name 'read_file' is not defined").
3. **A reference** (the human's correction, or the teacher's greedy one): the answer equals it.

An answer identical to the failed attempt draws the same red line (the same code meets the same checks); one
identical to an accepted answer passes as it did. Whatever cannot be judged says so (`Verdict.clean is None`).
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from redline.records import Feedback, Generation

#: the Feedback.meta key that holds a finding's recipe
RECHECK = "recheck"
#: kinds that draw a red line (an accept draws none; an edit is judged against its correction)
RED_LINES = frozenset({"diagnostic", "test_failure", "review", "reject"})
Reads = Literal["ruff-json", "exit"]


@dataclass(frozen=True)
class Recheck:
    """How to draw a red line again. `argv` runs in a scratch copy of the repository with the answer spliced into
    its file (`{file}` in `argv` is replaced by that file's repo-relative path), or, with `stdin`, in the
    repository itself with the file's text on stdin (a checker that needs no tree). `reads` says how to read the
    result: `ruff-json` (findings as ruff's JSON; each one on the answer's lines is a red line) or `exit` (a
    non-zero exit is the red line: one test node, a checker that only says pass or fail)."""

    argv: tuple[str, ...]
    reads: Reads = "ruff-json"
    tool: str = ""
    version: str | None = None
    stdin: bool = False

    def to_meta(self) -> dict[str, Any]:
        return {"argv": list(self.argv), "reads": self.reads, "tool": self.tool, "version": self.version,
                "stdin": self.stdin}

    @classmethod
    def from_meta(cls, data: Any) -> Recheck | None:
        """The recipe in a finding's meta, or None when it has none (or one this version cannot run)."""
        if not isinstance(data, dict):
            return None
        argv, reads = data.get("argv"), data.get("reads", "ruff-json")
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            return None
        if reads not in ("ruff-json", "exit"):
            return None
        version = data.get("version")
        return cls(tuple(argv), reads, str(data.get("tool") or argv[0]),
                   version if isinstance(version, str) else None, data.get("stdin") is True)

    @property
    def label(self) -> str:
        return " ".join(x for x in (self.tool or self.argv[0], self.version) if x)


def with_recheck(feedback: Feedback, recheck: Recheck) -> Feedback:
    """`feedback` carrying `recheck` (in place: harvesters call this before the record is queued)."""
    feedback.meta[RECHECK] = recheck.to_meta()
    return feedback


def recheck_of(feedback: Feedback) -> Recheck | None:
    return Recheck.from_meta(feedback.meta.get(RECHECK))


@dataclass(frozen=True)
class Verdict:
    """One answer judged against one record's red lines. `clean`: True when none comes back, False when one does,
    None when nothing could judge it; `how` names what judged it, in words a user reads."""

    clean: bool | None
    how: str
    #: the red lines that came back (rule codes or test ids, else the message's first words)
    back: tuple[str, ...] = ()


@dataclass(frozen=True)
class Placed:
    """An answer in its file: the file's repo-relative path (None when unknown), its whole text, and the
    0-based lines [first, last] that hold the answer."""

    path: str | None
    text: str
    first: int
    last: int


def place_answer(generation: Generation, answer: str, file_text: str | None = None) -> Placed:
    """The file with `answer` where the model's completion was.

    With the file's current text (`file_text`) holding the original completion exactly once, the answer replaces
    it there: the truest copy of the file. Otherwise the file is rebuilt from the prompt: a fim prompt's prefix and
    suffix around the answer, a raw prompt (a file prefix, as completion plugins send it) followed by it; a chat
    answer stands alone."""
    path = generation.insertion.path if generation.insertion else generation.meta.get("path")
    path = path if isinstance(path, str) and path else None
    if file_text is not None and generation.completion and file_text.count(generation.completion) == 1:
        before, _, after = file_text.partition(generation.completion)
    elif generation.prompt_format == "fim":
        before, after = generation.prompt.prefix or "", generation.prompt.suffix or ""
    elif generation.prompt_format == "raw":
        before, after = generation.prompt.text or "", ""
    else:
        before, after = "", ""
    first = before.count("\n")
    last = first + max(0, answer.rstrip("\n").count("\n"))
    return Placed(path, before + answer + after, first, last)


class Judge:
    """Judges answers for one repository; reruns share one scratch copy of it (made on first need)."""

    def __init__(self, repo_root: Path | None, *, timeout_s: float = 60.0) -> None:
        self.repo_root = Path(repo_root) if repo_root is not None else None
        self.timeout_s = timeout_s
        self._scratch: Any = None

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.close()
            self._scratch = None

    def __enter__(self) -> Judge:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def verdict(self, generation: Generation, feedback: Sequence[Feedback], answer: str, *,
                file_text: str | None = None, reference: str | None = None) -> Verdict:
        """Does any of the record's red lines come back on `answer`? (See the module doc for the order.)"""
        lines = [f for f in feedback if f.kind in RED_LINES]
        edits = [f.correction for f in feedback if f.kind == "edit" and f.correction is not None]
        if not lines and not edits:
            return self._accepted(generation, feedback, answer, file_text)
        if _same(answer, generation.completion):
            return Verdict(False, "the same code as the attempt", tuple(_name(f) for f in lines) or ("edit",))
        verdicts = []
        recipes: dict[Recheck, list[Feedback]] = {}
        loose: list[Feedback] = []
        for f in lines:
            recipe = recheck_of(f)
            if recipe is None:
                loose.append(f)
            else:
                recipes.setdefault(recipe, []).append(f)
        placed = place_answer(generation, answer, file_text) if recipes else None
        for recipe, found in recipes.items():
            assert placed is not None
            verdicts.append(self._rerun(recipe, placed, found))
        for f in loose:
            verdicts.append(_by_criterion(f, answer))
        if edits and not lines:  # a human's correction alone: the answer is judged against it
            verdicts.append(_by_reference(answer, edits[-1], "the human's correction"))
        undecided = [v for v in verdicts if v.clean is None]
        if undecided and reference is not None:
            verdicts = [v for v in verdicts if v.clean is not None]
            verdicts.append(_by_reference(answer, reference, "the teacher's correction"))
        return _combine(verdicts)

    def _accepted(self, generation: Generation, feedback: Sequence[Feedback], answer: str,
                  file_text: str | None) -> Verdict:
        """A record with nothing against it: the same answer passes as it did; another is rerun where the accept
        carries a recipe (a world's checker, the repository's tests), else not judged."""
        if _same(answer, generation.completion):
            return Verdict(True, "the same code as the accepted answer")
        recipes = {r for f in feedback if (r := recheck_of(f)) is not None}
        if not recipes:
            return Verdict(None, "not judged: a different answer and nothing to rerun")
        placed = place_answer(generation, answer, file_text)
        return _combine([self._rerun(r, placed, []) for r in recipes])

    def _rerun(self, recipe: Recheck, placed: Placed, found: Sequence[Feedback]) -> Verdict:
        try:
            if not recipe.stdin:
                if self.repo_root is None or placed.path is None:
                    return Verdict(None, f"not judged: {recipe.label} needs the file, and its path is unknown")
                if self._scratch is None:
                    from redline.scratch import ScratchTree

                    self._scratch = ScratchTree(self.repo_root)
                with self._scratch.spliced(placed.path, placed.text) as root:
                    argv = [a.replace("{file}", placed.path) for a in recipe.argv]
                    done = subprocess.run(argv, cwd=root, capture_output=True, text=True, timeout=self.timeout_s,
                                          check=False)
            else:
                done = subprocess.run(list(recipe.argv), input=placed.text, cwd=self.repo_root, capture_output=True,
                                      text=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return Verdict(None, f"not judged: {recipe.label} took longer than {self.timeout_s:.0f} s")
        except OSError as exc:
            return Verdict(None, f"not judged: {recipe.label} could not run ({exc.strerror or exc})")
        how = f"{recipe.label} rerun"
        if recipe.reads == "exit":
            return Verdict(done.returncode == 0, how, () if done.returncode == 0 else tuple(_name(f) for f in found)
                           or (recipe.tool,))
        try:
            rows = json.loads(done.stdout or "[]")
        except ValueError:
            return Verdict(None, f"not judged: {recipe.label} printed no JSON (exit {done.returncode})")
        if not isinstance(rows, list):
            return Verdict(None, f"not judged: {recipe.label} printed no list of findings")
        back = sorted({str(r.get("code") or r.get("message") or "?") for r in rows
                       if isinstance(r, dict) and _on_answer(r, placed)})
        return Verdict(not back, how, tuple(back))


def _on_answer(row: dict[str, Any], placed: Placed) -> bool:
    """Is a ruff JSON row (`location.row` 1-based) about the answer? A finding on its lines is; so is a syntax
    error (no code) anywhere from the answer on, since an answer that leaves the file unparsable fixes nothing."""
    location = row.get("location")
    line = location.get("row") if isinstance(location, dict) else None
    if not isinstance(line, int) or isinstance(line, bool):
        return location is None  # a finding about the whole file
    if row.get("code") in (None, "invalid-syntax", "E999"):  # how ruff versions have named a syntax error
        return line - 1 >= placed.first
    return placed.first <= line - 1 <= placed.last


def _combine(verdicts: Sequence[Verdict]) -> Verdict:
    """Back if any comes back; clean if all are judged clean; else not judged."""
    if not verdicts:
        return Verdict(None, "not judged: no red line to check")
    hows = "; ".join(dict.fromkeys(v.how for v in verdicts))
    back = tuple(dict.fromkeys(b for v in verdicts for b in v.back))
    if any(v.clean is False for v in verdicts):
        return Verdict(False, hows, back)
    if all(v.clean for v in verdicts):
        return Verdict(True, hows)
    return Verdict(None, hows)


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()) == " ".join(b.split())


def _name(f: Feedback) -> str:
    return f.rule or " ".join((f.message or f.kind).split()[:6])


def _by_reference(answer: str, reference: str, what: str) -> Verdict:
    if _same(answer, reference):
        return Verdict(True, f"equals {what}")
    return Verdict(None, f"not judged: differs from {what}, and nothing to rerun")


# -- the feedback's own criterion ---------------------------------------------------------------------------------

_BANNED = [
    re.compile(r"`([A-Za-z_][\w.]*)`\s+is\s+(?:banned|deprecated|forbidden|not allowed)", re.I),
    re.compile(r"(?:do not|don't|never|no longer)\s+(?:use|call|write)\s+`([A-Za-z_][\w.]*)", re.I),
    re.compile(r"name '([A-Za-z_]\w*)' is not defined"),
    re.compile(r"has no attribute '([A-Za-z_]\w*)'"),
]
_REQUIRED = [
    re.compile(r"(?:use|write|call|with)\s+`([^`]+)`", re.I),
    re.compile(r"wrap[^`\n]*`[^`]+`[^`\n]*?\bin\s+`([^`]+)`", re.I),
    re.compile(r"Did you mean:? '([A-Za-z_]\w*)'"),
]
_CALLED = re.compile(r"([A-Za-z_][\w.]*)\s*\(")


@dataclass(frozen=True)
class Criterion:
    """What a finding's words ask of the code: names that must be gone, snippets that must be there."""

    banned: frozenset[str] = field(default_factory=frozenset)
    required: frozenset[str] = field(default_factory=frozenset)

    def __bool__(self) -> bool:
        return bool(self.banned or self.required)


def criterion_of(feedback: Feedback) -> Criterion:
    """The banned and required names a finding's message (and detail) spell out; empty when it names none."""
    text = "\n".join(x for x in (feedback.message, feedback.detail) if x)
    banned = {m.group(1) for p in _BANNED for m in p.finditer(text)}
    required: set[str] = set()
    for p in _REQUIRED:
        for m in p.finditer(text):
            snippet = m.group(1).strip()
            called = _CALLED.findall(snippet)
            required.update(called or [snippet])
    return Criterion(frozenset(banned), frozenset(required - banned))


def _by_criterion(feedback: Feedback, answer: str) -> Verdict:
    crit = criterion_of(feedback)
    if not crit:
        return Verdict(None, "not judged: nothing to rerun and the feedback names no criterion")
    code = " ".join(answer.split())
    still = [b for b in sorted(crit.banned) if re.search(rf"(?<![\w.]){re.escape(b)}(?!\w)", answer)]
    missing = [r for r in sorted(crit.required) if " ".join(r.split()) not in code]
    how = "the feedback's own criterion"
    return Verdict(not still and not missing, how, (_name(feedback),) if still or missing else ())
