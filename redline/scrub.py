"""Secret scrubbing: every string of a record is cleaned before it reaches the queue.

Two strengths, because the fields differ in what a wrong guess costs:

* `scrub(text, code=True)` — for text the model reads or writes (prompt, completion, a correction): only *real
  detections* — provider token formats (detect-secrets' regexes plus the newer formats and truncated prefixes),
  private-key blocks, passwords in URLs, `Authorization:` headers, and values assigned to secret-named keys
  (`password = "…"`, `.env` `DB_PASSWORD=…`, YAML `password: …`, JSON `"api_key": "…"`). A false positive here
  rewrites code and corrupts a training example, so nothing is redacted for merely looking random.
* `scrub(text)` — for prose (feedback messages, tracebacks, review comments, `meta`): the same, plus long
  high-entropy tokens that are not identifiers, hashes, UUIDs, digests or base64 of text.

A secret becomes `[REDACTED:<kind>]`. `bench/scrub_corpus.py` measures both against a corpus; the detectors for
the formats its second part (written apart from them, issue #30) found missing are marked "#30" below.
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
    r"-----BEGIN[ A-Z0-9]*PRIVATE KEY( BLOCK)?-----.*?(-----END[ A-Z0-9]*PRIVATE KEY( BLOCK)?-----|\Z)"
    # #30: PuTTY's .ppk holds the private part between `Private-Lines:` and its MAC
    r"|Private-Lines: *\d+\r?\n.*?(?=\r?\nPrivate-(?:MAC|Hash):|\Z)", re.DOTALL
)
#: #30: the public PEM blocks (certificates, public keys): their base64 is not random in the sense that matters
_PUBLIC_BLOCK = re.compile(r"-----BEGIN (?![A-Z ]*PRIVATE)[A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|\Z)",
                           re.DOTALL)
#: `scheme://[user]:password@host` (the user may be empty, as in `redis://:pw@host`)
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@'\"`]*:)(?P<secret>[^\s@/'\"`]+)(?=@)")
_AUTH_HEADER = re.compile(
    r"(?i)(?P<head>\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token|digest|ssws)\s+|key=))"
    r"(?P<secret>[A-Za-z0-9._~+/=:-]{8,})"
)

#: providers' token formats, with a distinctive prefix; `{8,}` so a value pytest cut short is still caught
_PREFIXED: list[tuple[str, str]] = [
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
    # #30: formats the corpus written apart from these detectors found missing (providers' documented shapes)
    ("google-oauth-token", r"ya29\.[A-Za-z0-9_-]{20,}"),
    ("google-oauth-secret", r"GOCSPX-[A-Za-z0-9_-]{8,}"),
    ("slack-token", r"xapp-\d-[A-Za-z0-9-]{8,}"),
    ("slack-token", r"xoxe(?:\.xox[bp])?-\d-[A-Za-z0-9-]{8,}"),
    ("stripe-webhook-secret", r"whsec_[A-Za-z0-9]{8,}"),
    ("groq-key", r"gsk_[A-Za-z0-9]{20,}"),
    ("perplexity-key", r"pplx-[A-Za-z0-9]{20,}"),
    ("docker-hub-token", r"dckr_(?:pat|oat)_[A-Za-z0-9_-]{8,}"),
    ("vault-token", r"hv[sbr]\.[A-Za-z0-9_-]{20,}"),
    ("notion-token", r"ntn_\d{11}[A-Za-z0-9]{20,}"),
    ("notion-token", r"secret_[A-Za-z0-9]{43}(?![A-Za-z0-9])"),
    ("mailgun-key", r"key-[0-9a-f]{32}(?![0-9a-f])"),
    ("braintree-token", r"access_token\$(?:production|sandbox)\$[0-9a-z]{16}\$[0-9a-f]{32}"),
    ("discord-token", r"[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}(?![A-Za-z0-9_-])"),
    ("grafana-token", r"glsa_[A-Za-z0-9]{32}_[0-9a-f]{8}"),
    ("grafana-token", r"glc_[A-Za-z0-9+/=_-]{32,}"),
    ("age-secret-key", r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"),
    ("firebase-server-key", r"AAAA[A-Za-z0-9_-]{7}:APA91b[A-Za-z0-9_-]{100,}"),
    ("launchdarkly-key", r"(?:sdk|mob)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"),
    ("buildkite-token", r"bkua_[0-9a-f]{40}"),
    ("postman-key", r"PMAK-[0-9a-f]{24}-[0-9a-f]{34}"),
    ("dropbox-token", r"sl\.(?:u\.)?[A-Za-z0-9_-]{120,}"),
    ("bitcoin-private-key", r"[5KL][1-9A-HJ-NP-Za-km-z]{50,51}(?![A-Za-z0-9])"),
]
#: One pass for the formats that start a word. That they start one is checked on each match (`_mark_prefixed`),
#: which also finds the format that matched: a lookbehind in front of every alternative, or a named group around
#: each, made this pass ten times slower (1 s on 270 kB of code with the #30 formats; this way 0.1 s). The formats
#: with a lookbehind of their own run one by one, each only when its literal part is in the text.
_PREFIXED_RE = re.compile("|".join(f"(?:{p})" for _, p in _PREFIXED))
_PREFIXED_EACH = [(kind, re.compile(p)) for kind, p in _PREFIXED]
#: formats bounded by a lookbehind of their own: (kind, a literal the text must hold for it to run, pattern)
_OWN_LOOKBEHIND: list[tuple[str, str, re.Pattern[str]]] = [(k, n, re.compile(p)) for k, n, p in [
    ("aws-access-key", "", r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[0-9A-Z]{8,}(?![a-z])"),
    ("azure-key", "AccountKey=", r"(?<=AccountKey=)[A-Za-z0-9+/=]{20,}"),
    ("azure-key", "SharedAccessKey=", r"(?<=SharedAccessKey=)[A-Za-z0-9+/=]{20,}"),
    # #30
    ("google-oauth-token", "1//0", r"(?<![A-Za-z0-9/])1//0[A-Za-z0-9_-]{20,}"),
    ("azure-client-secret", "Q~",
     r"(?<![A-Za-z0-9_~.-])[A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34}(?![A-Za-z0-9_~.-])"),
    ("azure-sas-signature", "sig=", r"(?<=[?&]sig=)[A-Za-z0-9%+/=_-]{20,}"),
    ("discord-webhook", "/api/webhooks/", r"(?<=discord\.com/api/webhooks/)\d+/[A-Za-z0-9_-]{20,}"),
    ("discord-webhook", "/api/webhooks/", r"(?<=discordapp\.com/api/webhooks/)\d+/[A-Za-z0-9_-]{20,}"),
    ("teams-webhook", "/IncomingWebhook/",
     r"(?<=/IncomingWebhook/)[0-9a-f]{32}(?:/[0-9a-f-]{36})?(?:/[A-Za-z0-9_-]+)?"),
]]
_WORD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")

#: a key name that holds a secret: it must END with one of these words (`MAX_TOKENS`, `password_hash` do not);
#: #30 added `X-API-Key`-style dashes, a `PAT` and Rails' `secret_key_base`
_SECRET_NAME = (
    r"[A-Za-z0-9_.-]*?(?:password|passwd|passphrase|pwd|(?<![a-z])pass|(?<![a-z])pat|secret|token|api[_-]?key|apikey"
    r"|access[_-]?key(?:_?id)?|secret_?key(?:_?base)?|private_?key|(?:hmac|signing|encryption|master|session|client"
    r"|auth|app)[_-]?key|credentials?|dsn|conn(?:ection)?_?string)"
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

#: #30: where a secret sits by its shape in the call or file around it, not by a name:
#: (kind, needles, pattern), the pattern run only when one of its needles is in the lower-cased text
_CONTEXTUAL: list[tuple[str, tuple[str, ...], re.Pattern[str]]] = [
    # a command line: `--token VALUE`, `--password=VALUE`, `sshpass -p VALUE`, `curl -u user:VALUE`
    ("password", ("-token", "-pass", "-secret", "-api", "-auth"), re.compile(
        r"(?i)(?P<head>(?<![\w-])--?(?:[a-z0-9]+-)*(?:token|password|passwd|pass|secret|api-?key|auth-?key|authkey)"
        r"(?:=|[ \t]+)(?P<q>['\"]?))(?P<secret>[^\s'\"]{6,})(?P=q)")),
    ("password", ("sshpass",), re.compile(
        r"(?P<head>\bsshpass[ \t]+-p[ \t]*(?P<q>['\"]?))(?P<secret>[^\s'\"]{4,})(?P=q)")),
    ("password", ("-u ", "--user"), re.compile(
        r"(?P<head>(?<![\w-])(?:-u|--user)[ \t]+(?P<q>['\"]?)[^\s:'\"]+:)(?P<secret>[^\s'\"@]{4,})")),
    # `auth=("user", "VALUE")`, `HTTPBasicAuth("user", "VALUE")`, Twilio's `Client("AC…", "VALUE")`
    ("password", ("auth", "client("), re.compile(
        r"(?P<head>(?:\bauth[ \t]*=[ \t]*\(|BasicAuth\(|DigestAuth\(|\bClient\([ \t]*[\"']AC[0-9a-f]{32}[\"'][ \t]*,)"
        r"[ \t]*(?:[\"'][^\"'\n]*[\"'][ \t]*,[ \t]*)?(?P<q>[\"']))(?P<secret>[^\"'\n]{4,})(?P=q)")),
    # XML: `<password>VALUE</password>` (Maven settings.xml, .NET config)
    ("password", ("password>", "passwd>", "secret>", "token>", "key>"), re.compile(
        r"(?i)(?P<head><(?P<tag>[A-Za-z0-9_.:-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key"
        r"|private[_-]?key))>)(?P<secret>[^<\s]{4,})(?=</(?P=tag)>)")),
    # ~/.pgpass: `host:port:database:user:VALUE`, a line of its own or a quoted value (a test's assertion)
    ("password", (":",), re.compile(
        r"(?m)(?P<head>(?:^|(?<=[\s\"'`]))[A-Za-z0-9_.*-]+:(?:\d{1,5}|\*):[A-Za-z0-9_.*-]+:[A-Za-z0-9_.*@-]+:)"
        r"(?P<secret>[^\s:\"'`]{4,})(?=[\s\"'`]|$)")),
    # kaggle.json: {"username": …, "key": VALUE}
    ("kaggle-key", ('"key"',), re.compile(
        r"(?P<head>\"username\"[ \t]*:[ \t]*\"[^\"]*\"[ \t]*,[ \t]*\"key\"[ \t]*:[ \t]*\")(?P<secret>[0-9a-f]{32})"
        r"(?=\")")),
    # a wallet key handed to a client: `Account.from_key("0x…")`, viem's `privateKeyToAccount`, `new Wallet("0x…")`
    ("wallet-key", ("from_key", "privatekeytoaccount", "wallet("), re.compile(
        r"(?P<head>(?:from_key|privateKeyToAccount|Wallet)\([ \t]*(?P<q>[\"'`]))(?P<secret>(?:0x)?[0-9a-fA-F]{64})"
        r"(?P=q)")),
    # a recovery phrase: 12 to 24 lower-case words assigned to a mnemonic / seed phrase
    ("mnemonic", ("mnemonic", "phrase"), re.compile(
        r"(?i)(?P<head>(?:mnemonic|seed[_ -]?phrase|recovery[_ -]?phrase)[\"']?[ \t]*[:=][ \t]*(?P<q>[\"']?))"
        r"(?P<secret>[a-z]+(?: [a-z]+){11,23})(?P=q)")),
]
#: #30: Docker's config.json (`"auth": base64(user:password)`) and base64 of a private key (kubeconfig's
#: `client-key-data`): recognised by what they decode to
_AUTH_B64 = re.compile(r"(?i)(?P<head>[\"']?auth[\"']?[ \t]*[:=][ \t]*[\"'])"
                       r"(?P<secret>[A-Za-z0-9+/]{8,}={0,2})(?=[\"'])")
_PEM_B64 = re.compile(r"LS0tLS1CRUdJTi[A-Za-z0-9+/]{20,}={0,2}")

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
#: #30: and single patterns that match identifiers: a Twilio account SID (`AC…`) is in every API URL, not a secret
_SKIP_PATTERNS = {"AC[a-z0-9]{32}"}


@lru_cache(maxsize=1)
def _provider_patterns() -> list[tuple[str, re.Pattern[str]]]:
    """detect-secrets' provider regexes (AWS, GitHub, Slack, Stripe, JWT, …), compiled once."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    patterns: list[tuple[str, re.Pattern[str]]] = []
    for secret_type, cls in get_mapping_from_secret_type_to_class().items():
        if issubclass(cls, RegexBasedDetector) and cls.__name__ not in _SKIP_DETECTORS:
            kind = re.sub(r"[^a-z0-9]+", "-", secret_type.lower()).strip("-")
            patterns.extend((kind, p) for p in cls().denylist if p.pattern not in _SKIP_PATTERNS)  # type: ignore[misc]
    return patterns


@lru_cache(maxsize=1)
def _provider_prefilter() -> re.Pattern[str] | None:
    """One case-insensitive alternation of every provider regex: a superset test, so most texts take one pass."""
    try:
        return re.compile("|".join(f"(?:{p.pattern})" for _, p in _provider_patterns()), re.IGNORECASE)
    except re.error:
        return None


_KEYWORD_HINT = re.compile(
    r"pass|pwd|pat|secret|token|key|credential|dsn|conn|authorization|://", re.IGNORECASE
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
_PUBLIC_BEFORE = re.compile(r"(?:ssh-[a-z0-9]+|ecdsa-sha2-nistp\d+|sk-ssh-\S+|sk-ecdsa-\S+) $")
#: #30: identifiers of objects in providers' APIs (Stripe `cus_…`, `pi_…`, publishable `pk_live_…`; OpenAI
#: `chatcmpl-…`, `file-…`, `asst_…`) and a CSP `nonce-…`: random, and meant to be shown
_OBJECT_ID = re.compile(r"(?:pk_(?:live|test)|cus|pi|ch|sub|in|prod|price|pm|evt|acct|txn|re|seti|src|card|po|tr|cs"
                        r"|chatcmpl|cmpl|file|asst|thread|run|msg|call|batch|ftjob|vs|resp|nonce)[_-]"
                        r"[A-Za-z0-9+/]{8,}={0,2}")


#: #30: a literal handed to a decoder (`data = base64.b64decode("…")`): a test vector, unless the line names a
#: secret (`key = base64.b64decode("…")` stays redacted)
_DECODED_BEFORE = re.compile(r"(?:b64decode|b32decode|b16decode|decodebytes|fromhex|unhexlify|atob|Buffer\.from)"
                             r"\([ \t]*[rbu]?[\"'`]$")
_SECRET_WORD = re.compile(r"(?i)key|secret|token|pass|pwd|credential|auth|cookie|session|sign|hmac|private"
                          r"|\bsig\b|seed")


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
