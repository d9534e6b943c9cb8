"""Records made ready for any queue backend: every record validated, every string scrubbed of secrets.

Backend-agnostic on purpose: whatever stores the records (the local SQLite file, a team's PostgreSQL), secrets
are cut on the writer's machine, before a record is written anywhere — the queue, the spool or the network.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from redline.records import Feedback, Generation, Span, sha256_text, validate

#: `scrub(text, code=...)`: `code=True` for text the model reads or writes (see redline/scrub.py)
Scrubber = Callable[..., str]


@dataclass(frozen=True, slots=True)
class Batch:
    """Records ready to store, made by `prepare` only: a backend's `write` and the spool take them as they are,
    without scrubbing or checking again."""

    generations: list[Generation]
    feedback: list[Feedback]
    spans: list[Span]

    def __len__(self) -> int:
        return len(self.generations) + len(self.feedback) + len(self.spans)


def prepare(generations: Iterable[Generation] = (), feedback: Iterable[Feedback] = (), spans: Iterable[Span] = (),
            *, scrub: Scrubber | None = None) -> Batch:
    """Scrub (when `scrub` is given) and validate every record; a bad one raises `RecordError` naming its field.

    Generations and feedback are scrubbed in place; a span's text is scrubbed into a copy."""
    gens = [validate(g if scrub is None else scrub_generation(g, scrub), "generation") for g in generations]
    fbs = [validate(f, "feedback") for f in feedback]
    if scrub is not None:
        for f in fbs:
            scrub_feedback(f, scrub)
    ready = [validate(s, "span") for s in spans]
    if scrub is not None:
        ready = [dataclasses.replace(s, text=scrub(s.text, code=True)) if s.text else s for s in ready]
    return Batch(gens, fbs, ready)


def scrub_value(value: Any, scrub: Callable[[str], str]) -> Any:
    """Every string inside a JSON-like value (`meta`, `sampling`), nested ones included."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: scrub_value(v, scrub) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub_value(v, scrub) for v in value]
    return value


def record_scrubbers(scrub: Scrubber) -> tuple[Callable[[str], str], Callable[[str], str], list[str]]:
    """(prose, code, found): scrubbers that remember each secret they cut, so a second pass (`_pieces`) can cut
    what is left of it elsewhere in the record (pytest's `head...tail` of a value it shortened)."""
    found: list[str] = []
    return (lambda t: scrub(t, found=found)), (lambda t: scrub(t, code=True, found=found)), found


def _pieces(found: list[str]) -> Callable[[str], str]:
    from redline.scrub import scrub_fragments

    return lambda t: scrub_fragments(t, found)


def scrub_generation(g: Generation, scrub: Scrubber) -> Generation:
    """Scrub every string of a generation: prompt and completion as code (real detections only), the rest as prose.

    If the completion changed, its recorded token ids no longer match it: they are dropped, the insertion's
    `content_hash` is recomputed from the stored text, and `meta.scrubbed` tells the trainer to skip it."""
    prose, code, found = record_scrubbers(scrub)
    p = g.prompt
    for _ in range(2):  # the second pass cuts pieces of secrets found anywhere in the record
        if p.messages:
            for m in p.messages:
                m.content = code(m.content)
        p.text = None if p.text is None else code(p.text)
        p.prefix = None if p.prefix is None else code(p.prefix)
        p.suffix = None if p.suffix is None else code(p.suffix)
        g.meta = scrub_value(g.meta, prose)
        g.sampling = scrub_value(g.sampling, prose)
        clean = code(g.completion)
        if clean != g.completion:
            if g.insertion is not None and g.insertion.content_hash == sha256_text(g.completion):
                g.insertion.content_hash = sha256_text(clean)
            g.completion = clean
            g.token_ids = None
            g.token_logprobs = None
            g.meta["scrubbed"] = True
        if not found:
            break
        prose = code = _pieces(found)
    return g


def scrub_feedback(f: Feedback, scrub: Scrubber) -> Feedback:
    """Scrub every string of a feedback record (a correction is code); an automatic fingerprint follows the
    scrubbed text, so no hash of a secret is stored."""
    auto = f.fingerprint == f.compute_fingerprint()
    prose, code, found = record_scrubbers(scrub)
    for _ in range(2):
        f.message = prose(f.message)
        f.detail = None if f.detail is None else prose(f.detail)
        f.correction = None if f.correction is None else code(f.correction)
        f.rule = None if f.rule is None else prose(f.rule)
        f.meta = scrub_value(f.meta, prose)
        if not found:
            break
        prose = code = _pieces(found)
    if auto:
        f.fingerprint = f.compute_fingerprint()
    return f

