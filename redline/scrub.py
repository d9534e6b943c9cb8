"""Secret scrubbing: every string of a record is cleaned before it reaches the queue.

Two strengths, because the fields differ in what a wrong guess costs:

* `scrub(text, code=True)` — for text the model reads or writes (prompt, completion, a correction): only *real
  detections* — provider token formats (detect-secrets' regexes plus the newer formats and truncated prefixes),
  private-key blocks, passwords in URLs, `Authorization:` headers, and values assigned to secret-named keys
  (`password = "…"`, `.env` `DB_PASSWORD=…`, YAML `password: …`, JSON `"api_key": "…"`). A false positive here
  rewrites code and corrupts a training example, so nothing is redacted for merely looking random.
* `scrub(text)` — for prose (feedback messages, tracebacks, review comments, `meta`): the same, plus long
  high-entropy tokens that are not identifiers, hashes, UUIDs, digests or base64 of text.

A secret becomes `[REDACTED:<kind>]`. `bench/scrub_corpus.py` measures both against a corpus.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections import Counter
from collections.abc import Callable
from functools import lru_cache, partial

MARK = "[REDACTED:{}]"

_PRIVATE_KEY_BLOCK = re.compile(
    r"-----BEGIN[ A-Z0-9]*PRIVATE KEY( BLOCK)?-----.*?(-----END[ A-Z0-9]*PRIVATE KEY( BLOCK)?-----|\Z)", re.DOTALL
)
#: `scheme://[user]:password@host` (the user may be empty, as in `redis://:pw@host`)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'\"`]*:)(?P<secret>[^\s@/'\"`]+)(?=@)")
_AUTH_HEADER = re.compile(
    r"(?i)(?P<head>\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token|digest)\s+)"
    r"(?P<secret>[A-Za-z0-9._~+/=-]{8,})"
)

#: providers' token formats, with a distinctive prefix; `{8,}` so a value pytest cut short is still caught
_PREFIXED: list[tuple[str, str]] = [
    ("aws-access-key", r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[0-9A-Z]{8,}(?![a-z])"),
    ("github-token", r"(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{8,}"),
    ("github-token", r"github_pat_[A-Za-z0-9_]{8,}"),
    ("gitlab-token", r"(?:glpat|gldt|glft|glsoat|glrt|glcbt|glimt|glptt|gloas)-[A-Za-z0-9_-]{8,}"),
    ("slack-token", r"xox[abposre]-[A-Za-z0-9-]{8,}"),
    ("stripe-key", r"(?:sk|rk)_(?:live|test)_[0-9a-zA-Z]{8,}"),
    ("openai-key", r"sk-(?:proj|svcacct|admin|ant-api\d\d|ant)-[A-Za-z0-9_-]{8,}"),
    ("openai-key", r"sk-(?=[A-Za-z0-9]*\d)(?=[A-Za-z0-9]*[A-Z])[A-Za-z0-9]{20,}"),
    ("huggingface-token", r"hf_(?=[A-Za-z0-9]*[A-Z])[A-Za-z0-9]{20,}"),
    ("huggingface-token", r"hf_[A-Za-z0-9]{8,}(?=\.\.\.|…)"),
    ("google-api-key", r"AIza[0-9A-Za-z_-]{8,}"),
    ("npm-token", r"npm_(?=[A-Za-z0-9]*\d)[A-Za-z0-9]{12,}"),
    ("pypi-token", r"pypi-AgE[A-Za-z0-9_-]{8,}"),
    ("sendgrid-key", r"SG\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    ("digitalocean-token", r"do[por]_v1_[a-f0-9]{8,}"),
    ("shopify-token", r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{8,}"),
    ("json-web-token", r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{4,}\.?[A-Za-z0-9_-]*"),
    ("azure-key", r"(?<=AccountKey=)[A-Za-z0-9+/=]{20,}"),
    ("azure-key", r"(?<=SharedAccessKey=)[A-Za-z0-9+/=]{20,}"),
]
_PREFIXED_RE = re.compile(
    "|".join(f"(?P<k{i}>{'' if p.startswith('(?<') else '(?<![A-Za-z0-9_])'}{p})" for i, (_, p) in enumerate(_PREFIXED))
)

#: a key name that holds a secret: it must END with one of these words (`MAX_TOKENS`, `password_hash` do not)
_SECRET_NAME = (
    r"[A-Za-z0-9_.-]*?(?:password|passwd|passphrase|pwd|(?<![a-z])pass|secret|token|api_?key|apikey|access_?key(?:_?id)?"
    r"|secret_?key|private_?key|(?:hmac|signing|encryption|master|session|client|auth|app)_?key|credentials?"
    r"|dsn|conn(?:ection)?_?string)"
)
#: `.env` / shell: `KEY=value` on its own line, no spaces around `=`
_ENV_LINE = re.compile(
    rf"(?im)^(?P<head>[ \t]*(?:export[ \t]+)?{_SECRET_NAME}=)(?P<q>[\"']?)(?P<secret>[^\s\"']+)(?P=q)[ \t]*$"
)
#: YAML / INI at the start of a line: `password: value`, `- token: value`, `password = value`
_CONFIG_LINE = re.compile(
    rf"(?im)^(?P<head>[ \t]*(?:-[ \t]+)?{_SECRET_NAME}[ \t]*(?P<sep>:|=)[ \t]*)"
    r"(?P<secret>[^\s\"'#][^\n#]*?)[ \t]*(?:#.*)?$"
)
#: anywhere: `name = "value"`, `name: 'value'`, `"name": "value"`, `name="value"`, `self.name = "value"`
_QUOTED = re.compile(
    rf"(?i)(?<![A-Za-z0-9_])(?P<head>[\"']?{_SECRET_NAME}[\"']?\]?[ \t]*(?:=|:=|:|=>|==|[ \t]+is[ \t]+)[ \t]*[rbuf]?"
    rf"(?P<q>[\"'`]))(?P<secret>[^\"'`\n]{{4,}}?)(?P=q)"
)
#: anywhere, unquoted: `{user: x, password: hunter2}`, `--password=s3cret`
_BARE = re.compile(
    rf"(?i)(?<![A-Za-z0-9_])(?P<head>{_SECRET_NAME}[ \t]*(?::|=)[ \t]*|passw(?:or)?d[ \t]+)"
    r"(?P<secret>[^\s\"'`,;(){}\[\]<>#]{4,})"
    r"(?P<after>[(\[.]?)"
)

_TYPE_WORDS = {"str", "bytes", "int", "float", "bool", "none", "null", "nil", "true", "false", "any", "object",
               "optional", "undefined", "string", "number", "secretstr", "secretbytes", "self", "cls"}
_PLACEHOLDER_WORDS = {"password", "passwd", "secret", "token", "changeme", "username", "example", "redacted",
                      "your-api-key", "your_api_key"}
#: words joined by `_`/`-` without a digit (`expired_token`, `X-Xet-Access-Token`): a constant's name, not a secret
_WORDS_ONLY = re.compile(r"[a-z]+(?:[_-]+[a-z]+)+|[A-Z][a-z]*(?:-[A-Z][a-z]*)+|[A-Z]+")
_PLACEHOLDER = re.compile(r"^(?:\$|%|\{|<|\*+$|x+$|\.\.\.|…)|\{\{|\$\{|\{[A-Za-z_]\w*\}", re.IGNORECASE)

_CANDIDATE = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{20,}={0,2}(?![A-Za-z0-9+/_\-])")
_HEXISH = re.compile(r"[0-9a-fA-F]+(?:-[0-9a-fA-F]+)*")
_DIGEST_PREFIX = re.compile(r"(?i)^(?:sha1|sha224|sha256|sha384|sha512|md5|blake2b?)[-_]")
_DIGEST_BEFORE = re.compile(r"(?i)(?:h1|sha\d+|md5|blake2b?)[:=-]$")
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")

#: detect-secrets detectors that are not about secrets in source code, or that fire on ordinary identifiers
_SKIP_DETECTORS = {"IPPublicDetector", "PrivateKeyDetector", "ArtifactoryDetector", "KeywordDetector"}


@lru_cache(maxsize=1)
def _provider_patterns() -> list[tuple[str, re.Pattern[str]]]:
    """detect-secrets' provider regexes (AWS, GitHub, Slack, Stripe, JWT, …), compiled once."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    patterns: list[tuple[str, re.Pattern[str]]] = []
    for secret_type, cls in get_mapping_from_secret_type_to_class().items():
        if issubclass(cls, RegexBasedDetector) and cls.__name__ not in _SKIP_DETECTORS:
            kind = re.sub(r"[^a-z0-9]+", "-", secret_type.lower()).strip("-")
            patterns.extend((kind, p) for p in cls().denylist)  # type: ignore[misc]
    return patterns


@lru_cache(maxsize=1)
def _provider_prefilter() -> re.Pattern[str] | None:
    """One case-insensitive alternation of every provider regex: a superset test, so most texts take one pass."""
    try:
        return re.compile("|".join(f"(?:{p.pattern})" for _, p in _provider_patterns()), re.IGNORECASE)
    except re.error:
        return None


_KEYWORD_HINT = re.compile(
    r"pass|pwd|secret|token|key|credential|dsn|conn|authorization|://", re.IGNORECASE
)


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
    prefilter = _provider_prefilter()
    if prefilter is None or prefilter.search(text):
        for kind, pattern in _provider_patterns():
            text = pattern.sub(track(partial(_mark_match, kind=kind)), text)
    if _KEYWORD_HINT.search(text):
        text = _URL_PASSWORD.sub(track(lambda m: _keep_head(m, "url-password")), text)
        text = _AUTH_HEADER.sub(track(lambda m: _keep_head(m, "authorization")), text)
        text = _ENV_LINE.sub(track(_mark_env_line), text)
        text = _CONFIG_LINE.sub(track(_mark_config_line), text)
        text = _QUOTED.sub(track(lambda m: _keep_head(m, "password", quoted=True)), text)
        text = _BARE.sub(track(_mark_bare), text)
    if not code:
        text = _CANDIDATE.sub(track(_mark_random), text)
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


def _mark_random(m: re.Match[str]) -> str:
    before = m.string[max(0, m.start() - 8):m.start()]
    if _DIGEST_BEFORE.search(before) or not looks_random(m.group(0)):
        return m.group(0)  # `h1:…` (go.sum), `sha256:…`: a digest, not a key
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


def _keep_head(m: re.Match[str], kind: str, *, quoted: bool = False) -> str:
    secret = m.group("secret")
    if _is_placeholder(secret) or (quoted and (_WORDS_ONLY.fullmatch(secret.strip("_-")) or "(" in secret)):
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


def _mark_prefixed(m: re.Match[str]) -> str:
    index = int(m.lastgroup[1:]) if m.lastgroup else 0
    return MARK.format(_PREFIXED[index][0])


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
