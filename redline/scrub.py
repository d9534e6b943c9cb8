"""Secret scrubbing: every string of a record is cleaned before it reaches the queue.

Two strengths, because the fields differ in what a wrong guess costs:

* `scrub(text, code=True)` — for text the model reads or writes (prompt, completion, a correction): only *real
  detections* — provider token formats (detect-secrets' regexes plus the newer formats and truncated prefixes),
  private-key blocks, passwords in URLs, `Authorization:` headers, and values assigned to secret-named keys
  (`password = "…"`, `.env` `DB_PASSWORD=…`, YAML `password: …`, JSON `"api_key": "…"`). A false positive here
  rewrites code and corrupts a training example, so nothing is redacted for merely looking random.
* `scrub(text)` — for prose (feedback messages, tracebacks, review comments, `meta`): the same, plus long
  high-entropy tokens that are not identifiers, hashes, UUIDs, digests or base64 of text.

A secret becomes `[REDACTED:<kind>]`; the patterns are in `redline.secret_formats`. `bench/scrub_corpus.py`
measures both strengths against a corpus.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from collections.abc import Callable
from functools import partial

from redline.secret_formats import (
    _AUTH_B64,
    _AUTH_HEADER,
    _BARE,
    _CANDIDATE,
    _CONFIG_LINE,
    _CONTEXTUAL,
    _DECODED_BEFORE,
    _DIGEST_BEFORE,
    _DIGEST_PREFIX,
    _ENV_LINE,
    _HEXISH,
    _KEYWORD_HINT,
    _OBJECT_ID,
    _OWN_LOOKBEHIND,
    _PEM_B64,
    _PLACEHOLDER,
    _PLACEHOLDER_WORDS,
    _PREFIXED_EACH,
    _PREFIXED_RE,
    _PRIVATE_KEY_BLOCK,
    _PUBLIC_BEFORE,
    _PUBLIC_BLOCK,
    _QUOTED,
    _SECRET_WORD,
    _TYPE_WORDS,
    _URL_PASSWORD,
    _WORD,
    _WORD_CHARS,
    _WORDS_ONLY,
    _provider_patterns,
    _provider_prefilter,
)

MARK = "[REDACTED:{}]"

def scrub(text: str, *, code: bool = False, found: list[str] | None = None) -> str:
    """`text` with every secret replaced by a marker; unchanged when there is none.

    `code=True` applies only real detections (no high-entropy guess), for prompts and completions. Each secret
    removed is appended to `found`, so a caller can also cut its pieces out of the record's other fields
    (`scrub_fragments`): pytest shortens long values to `head...tail`, and a tail alone matches no detector."""
    if len(text) < 8:  # too short to hold a secret and the name it is given
        return text
    seen: list[str] = [] if found is None else found

    def track(fn: Callable[[re.Match[str]], str]) -> Callable[[re.Match[str]], str]:
        def sub(m: re.Match[str]) -> str:
            out = fn(m)
            if out != m.group(0):
                seen.append(_removed(m.group(0), out))
            return out
        return sub

    text = _PRIVATE_KEY_BLOCK.sub(track(lambda m: MARK.format("private-key")), text)
    text = _PREFIXED_RE.sub(track(_mark_prefixed), text)
    for kind, needle, pattern in _OWN_LOOKBEHIND:
        if needle in text:
            text = pattern.sub(track(lambda m, kind=kind: MARK.format(kind)), text)
    prefilter = _provider_prefilter()
    if prefilter is None or prefilter.search(text):
        for kind, pattern in _provider_patterns():
            text = pattern.sub(track(partial(_mark_match, kind=kind)), text)
    low = text.lower()
    for kind, needles, pattern in _CONTEXTUAL:
        if any(n in low for n in needles):
            text = pattern.sub(track(partial(_keep_context, kind=kind)), text)
    if "auth" in low:
        text = _AUTH_B64.sub(track(_mark_auth_b64), text)
    if "ls0tls1crudjti" in low:
        text = _PEM_B64.sub(track(_mark_pem_b64), text)
    if _KEYWORD_HINT.search(text):
        text = _URL_PASSWORD.sub(track(lambda m: _keep_head(m, "url-password")), text)
        text = _AUTH_HEADER.sub(track(lambda m: _keep_head(m, "authorization")), text)
        text = _ENV_LINE.sub(track(_mark_env_line), text)
        text = _CONFIG_LINE.sub(track(_mark_config_line), text)
        text = _QUOTED.sub(track(lambda m: _keep_head(m, "password", quoted=True)), text)
        text = _BARE.sub(track(_mark_bare), text)
    if not code:
        public = [m.span() for m in _PUBLIC_BLOCK.finditer(text)] if "-----BEGIN" in text else []
        text = _CANDIDATE.sub(track(partial(_mark_random, public=public)), text)
    return scrub_fragments(text, seen) if seen else text


def _removed(before: str, after: str) -> str:
    """The part of `before` a replacement took out (the match minus the context it kept)."""
    head = _common(before, after)
    tail = _common(before[head:][::-1], after[head:][::-1])
    return before[head:len(before) - tail]


def _common(a: str, b: str) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


#: #30: what stands before a random-looking token that is public: an SSH public key's type
def _mark_random(m: re.Match[str], public: list[tuple[int, int]] = ()) -> str:  # type: ignore[assignment]
    token = m.group(0)
    if _DIGEST_BEFORE.search(m.string[max(0, m.start() - 8):m.start()]) or not looks_random(token):
        return token  # `h1:…` (go.sum), `sha256:…`: a digest, not a key
    if _OBJECT_ID.fullmatch(token) or any(a <= m.start() < b for a, b in public) \
            or _PUBLIC_BEFORE.search(m.string[max(0, m.start() - 40):m.start()]):
        return token  # a certificate, a public key, an API object's id
    line = m.string[m.string.rfind("\n", 0, m.start()) + 1:m.start()]
    if _DECODED_BEFORE.search(line) and not _SECRET_WORD.search(line):
        return token  # a test vector
    return MARK.format("high-entropy")


#: the shortest piece of a known secret that is cut out next to an ellipsis
MIN_FRAGMENT = 6


def scrub_fragments(text: str, secrets: list[str]) -> str:
    """`text` with the given secrets cut out: whole, and the pieces pytest leaves around `...` when it shortens
    a long value (`'aws_key = "AKIA12...XYZ789"'` keeps a head and a tail no detector recognises)."""
    for secret in {s for s in secrets if len(s) >= 2 * MIN_FRAGMENT and "REDACTED" not in s}:
        text = text.replace(secret, MARK.format("secret"))
        for dots in ("...", "…"):
            start = 0
            while (i := text.find(dots, start)) >= 0:
                before, after = text[:i], text[i + len(dots):]
                k = next((k for k in range(len(secret) - 1, MIN_FRAGMENT - 1, -1) if before.endswith(secret[:k])),
                         0)
                j = next((j for j in range(len(secret) - 1, MIN_FRAGMENT - 1, -1) if after.startswith(secret[-j:])),
                         0)
                if k or j:
                    text = before[:len(before) - k] + (MARK.format("secret") if k else "") + dots + \
                        (MARK.format("secret") if j else "") + after[j:]
                start = i + len(dots) + (len(MARK.format("secret")) if k else 0)
    return text


def _is_placeholder(value: str) -> bool:
    """Empty, a template (`{password}`, `${DB_PASSWORD}`, `<token>`), a mask (`****`) or prose with spaces."""
    v = value.strip().rstrip(".…_-").strip()
    return (len(v) < 4 or " " in value or "***" in v or "REDACTED" in v or len(set(v)) == 1
            or v.lower() in _PLACEHOLDER_WORDS or v.lower() in _TYPE_WORDS or bool(_PLACEHOLDER.search(v)))


#: `get_token()`, `os.environ.get(…`: a call where a value would stand
_CALL = re.compile(r"^[A-Za-z_][\w.]*\(")


def _keep_head(m: re.Match[str], kind: str, *, quoted: bool = False) -> str:
    secret = m.group("secret")
    if _is_placeholder(secret) or (quoted and (_WORDS_ONLY.fullmatch(secret.strip("_-")) or _CALL.match(secret))):
        return m.group(0)  # `EXPIRED_TOKEN = "expired_token"`, `token: \`get_token()\``: a name, a call
    tail = m.group("q") if quoted and m.groupdict().get("q") else ""
    return m.group("head") + MARK.format(kind) + tail


def _looks_like_code(value: str) -> bool:
    """An annotation or expression (`str`, `Optional[str]`, `settings.TOKEN`, `Token`) rather than a value."""
    if value.lower() in _TYPE_WORDS or "[" in value or "(" in value:
        return True
    if re.fullmatch(r"[A-Za-z_][A-Za-z_]*(?:\.[A-Za-z_]\w*)*", value):
        return True  # an identifier or attribute chain without digits: a name, not a password
    return False


def _mark_config_line(m: re.Match[str]) -> str:
    """YAML/INI `password: value` at the start of a line; a Python annotation or assignment is left alone."""
    value = m.group("secret").strip()
    if _is_placeholder(value) or " " in value or re.search(r"[()\[\]{},:]$|[(\[]", value):
        return m.group(0)
    if re.fullmatch(r"[A-Z][A-Za-z_]*", value) or (m.group("sep") == "=" and _looks_like_code(value)):
        return m.group(0)  # `token: Token`, `password = password`
    return m.group("head") + MARK.format("password")


def _mark_env_line(m: re.Match[str]) -> str:
    """`KEY=value` alone on a line: `.env`, unless it is a keyword argument (`token=token,`, `password=pw)`)."""
    value = m.group("secret")
    if value.endswith((",", "(", ")")) or (m.group("head").strip().islower() and _looks_like_code(value)):
        return m.group(0)
    return _keep_head(m, "password", quoted=True)


def _mark_bare(m: re.Match[str]) -> str:
    value = m.group("secret")
    shown = re.split(r"\.\.\.|…", value)[0].rstrip(".,;:!?")  # `os...KEY` as pytest shows it; `input.`
    if m.group("after") or _is_placeholder(value) or _looks_like_code(value) or _looks_like_code(shown) \
            or value.isdigit() or _WORDS_ONLY.fullmatch(shown):  # `token=11098`, `token: re-exchanging`
        return m.group(0)
    return m.group("head") + MARK.format("password") + m.group("after")


def _keep_context(m: re.Match[str], kind: str) -> str:
    """A contextual detection (`--token VALUE`, `<password>VALUE</password>`): the value unless it is a template,
    a flag's next word (`--token-file path`), a name or an expression."""
    secret = m.group("secret")
    if "REDACTED" in secret or (kind != "mnemonic" and (_is_placeholder(secret) or _looks_like_code(secret)
                                                         or _WORDS_ONLY.fullmatch(secret) or secret.isdigit()
                                                         or secret.startswith("-"))):
        return m.group(0)
    return m.group("head") + MARK.format(kind) + m.group(0)[len(m.group("head")) + len(secret):]


def _decoded(value: str) -> bytes | None:
    """The bytes of base64 `value`; when text follows it without a break (`…S0tLS0Kx = `), the whole groups before."""
    for text in (value + "=" * (-len(value) % 4), value[:len(value) - len(value) % 4]):
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


def _mark_auth_b64(m: re.Match[str]) -> str:
    """`"auth": "dXNlcjpwYXNz"`: redacted when it decodes to `user:password` (Docker's config.json, npm)."""
    raw = _decoded(m.group("secret").rstrip("="))
    if raw is None or b":" not in raw.strip(b":") or not all(32 < b < 127 for b in raw):
        return m.group(0)
    return m.group("head") + MARK.format("basic-auth")


def _mark_pem_b64(m: re.Match[str]) -> str:
    """Base64 of a PEM block (`LS0tLS1CRUdJTi…` is `-----BEGIN`): redacted when the block is a private key."""
    raw = _decoded(m.group(0).rstrip("="))
    return MARK.format("private-key") if raw is not None and b"PRIVATE KEY" in raw[:64] else m.group(0)


def _mark_prefixed(m: re.Match[str]) -> str:
    if m.start() and m.string[m.start() - 1] in _WORD_CHARS:
        return m.group(0)  # inside a longer word: `mysk_live_…` is not Stripe's
    # the alternation takes the first format that matches here, so the first one that matches alone is it
    kind = next((k for k, p in _PREFIXED_EACH if p.match(m.string, m.start())), "secret")
    return MARK.format(kind)


def _mark_match(m: re.Match[str], kind: str) -> str:
    """Replace the secret group when the pattern captures one (keeping `key = "` context), else the match."""
    if "REDACTED" in m.group(0) and m.group(0).strip("\"' =:").startswith("[REDACTED"):
        return m.group(0)
    groups = [i for i in range(1, (m.re.groups or 0) + 1) if m.group(i) and len(m.group(i)) >= 8]
    if not groups:
        return MARK.format(kind)
    g = max(groups, key=lambda i: len(m.group(i)))
    if _is_placeholder(m.group(g)):
        return m.group(0)  # `postgres://{user}:{password}@…` is a template
    start, end = m.start(g) - m.start(), m.end(g) - m.start()
    whole = m.group(0)
    return whole[:start] + MARK.format(kind) + whole[end:]


# -- high entropy (prose only) -----------------------------------------------------------------------------------


def shannon_entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def looks_random(token: str) -> bool:
    """A long token with the entropy of a key — not an identifier, a path, a hash, a UUID or base64 of text."""
    core = token.rstrip("=")
    if len(core) < 20 or not re.search(r"\d", core) or not re.search(r"[A-Za-z]", core):
        return False
    if _HEXISH.fullmatch(core) or _DIGEST_PREFIX.match(core):
        return False  # git SHAs, UUIDs (with or without dashes), sha256/512 digests, `sha512-…` integrity
    if _is_identifier(core) or _is_text_base64(token):
        return False
    parts = [p for p in re.split(r"[/_-]+", core) if p]
    if len(parts) > 1 and all(_HEXISH.fullmatch(p) or _is_identifier(p) or p.isdigit() or len(p) <= 3
                              for p in parts):
        return False  # a path, a URL path or a slug: `org/repo/commit/<sha>`, `recent-models-64f9a55bb3115b4f`
    return shannon_entropy(core) >= 4.0


def _is_identifier(token: str) -> bool:
    """camelCase / snake_case / a path: made of word-like pieces (`convertUtf8BytesToBase64UrlString2`)."""
    letters = [w for w in _WORD.findall(token) if w.isalpha()]
    if not letters:
        return False
    chars = sum(len(w) for w in letters)
    vowels = sum(1 for w in letters if re.search(r"[aeiouyAEIOUY]", w) or len(w) <= 4)
    return chars / len(letters) >= 3.0 and vowels / len(letters) >= 0.75


def _is_text_base64(token: str) -> bool:
    """Base64 that decodes to printable text (a test vector), not to the random bytes of a key."""
    core = token.replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(core + "=" * (-len(core) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) >= 8 and sum(32 <= b < 127 or b in (9, 10, 13) for b in raw) / len(raw) >= 0.95
