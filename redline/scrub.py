"""Secret scrubbing: every free-text field is cleaned before it reaches the queue.

The detectors are detect-secrets' own (its provider regexes and its keyword detector), applied to whole texts
rather than line by line so a 10,000-line prompt costs milliseconds; on top come the things code is full of and
detect-secrets' line scanner misses or over-reports: private-key blocks spanning lines, passwords in URLs, and
long high-entropy tokens. A secret becomes `[REDACTED:<kind>]`.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import lru_cache

MARK = "[REDACTED:{}]"

_PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN[ A-Z0-9]*PRIVATE KEY( BLOCK)?-----.*?(-----END[ A-Z0-9]*PRIVATE KEY( BLOCK)?-----|\Z)", re.DOTALL
)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'\"]+:)(?P<secret>[^\s@/'\"]+)(?=@)")
_KEYWORD_HINT = re.compile(r"pass|pwd|secret|token|api_?key|apikey|auth|credential|private", re.IGNORECASE)
_CANDIDATE = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{20,}={0,2}(?![A-Za-z0-9+/_\-])")
_CONFIG_LINE = re.compile(r"^\s*[\w.-]+\s*:\s*[^\s(){}]+\s*$")
_HEX = re.compile(r"[0-9a-fA-F]+")

#: detect-secrets detectors that are not about secrets in source code
_SKIP_DETECTORS = {"IPPublicDetector", "PrivateKeyDetector"}


@lru_cache(maxsize=1)
def _provider_patterns() -> list[tuple[str, re.Pattern[str]]]:
    """detect-secrets' provider regexes (AWS, GitHub, Slack, Stripe, JWT, …), compiled once."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    patterns = []
    for secret_type, cls in get_mapping_from_secret_type_to_class().items():
        if issubclass(cls, RegexBasedDetector) and cls.__name__ not in _SKIP_DETECTORS:
            kind = re.sub(r"[^a-z0-9]+", "-", secret_type.lower()).strip("-")
            patterns.extend((kind, p) for p in cls().denylist)
    return patterns


@lru_cache(maxsize=1)
def _provider_prefilter() -> re.Pattern[str] | None:
    """One case-insensitive alternation of every provider regex: a superset test, so most texts take one pass."""
    try:
        return re.compile("|".join(f"(?:{p.pattern})" for _, p in _provider_patterns()), re.IGNORECASE)
    except re.error:
        return None


@lru_cache(maxsize=1)
def _keyword_detector():  # type: ignore[no-untyped-def]
    from detect_secrets.plugins.keyword import KeywordDetector

    return KeywordDetector()


def shannon_entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def looks_random(token: str) -> bool:
    """A long token with letters, digits and the entropy of a key — not an identifier or a word."""
    core = token.rstrip("=")
    if len(core) < 20 or not re.search(r"\d", core) or not re.search(r"[A-Za-z]", core):
        return False
    if _HEX.fullmatch(core):
        return len(core) >= 32 and shannon_entropy(core) >= 3.0
    if re.fullmatch(r"[a-z0-9]+(_[a-z0-9]+)+", core) or re.fullmatch(r"[A-Z0-9]+(_[A-Z0-9]+)+", core):
        return False  # snake_case / CONSTANT_CASE names
    return shannon_entropy(core) >= 4.0


def scrub(text: str) -> str:
    """`text` with every secret replaced by a marker; unchanged when there is none."""
    if not text:
        return text
    text = _PRIVATE_KEY_BLOCK.sub(MARK.format("private-key"), text)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MARK.format("url-password"), text)
    prefilter = _provider_prefilter()
    if prefilter is None or prefilter.search(text):
        for kind, pattern in _provider_patterns():
            text = pattern.sub(lambda m, kind=kind: _mark_match(m, kind), text)
    if _KEYWORD_HINT.search(text):
        text = "\n".join(_scrub_keyword_line(line) for line in text.split("\n"))
    return _CANDIDATE.sub(lambda m: MARK.format("high-entropy") if looks_random(m.group(0)) else m.group(0), text)


def _mark_match(m: re.Match[str], kind: str) -> str:
    """Replace the secret group when the pattern captures one (keeping `key = "` context), else the match."""
    groups = [i for i in range(1, (m.re.groups or 0) + 1) if m.group(i) and len(m.group(i)) >= 8]
    if not groups:
        return MARK.format(kind)
    g = max(groups, key=lambda i: len(m.group(i)))
    start, end = m.start(g) - m.start(), m.end(g) - m.start()
    whole = m.group(0)
    return whole[:start] + MARK.format(kind) + whole[end:]


def _scrub_keyword_line(line: str) -> str:
    if not _KEYWORD_HINT.search(line) or len(line) > 2000:
        return line
    detector = _keyword_detector()
    # the keyword detector's patterns depend on the file type: code, plus config syntax for `key: value` lines
    filenames = ("snippet.py", "snippet.yaml") if _CONFIG_LINE.match(line) else ("snippet.py",)
    for filename in filenames:
        for found in detector.analyze_line(filename=filename, line=line):
            value = found.secret_value
            if value and "REDACTED" not in value and len(value) >= 4:
                line = line.replace(value, MARK.format("password"))
    return line
