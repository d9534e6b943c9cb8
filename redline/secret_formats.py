"""What a secret looks like: the patterns `redline.scrub` detects by — provider token formats (detect-secrets'
regexes plus newer formats and truncated prefixes), private-key blocks, passwords in URLs, `Authorization:`
headers, values assigned to secret-named keys — and the shapes that only look like one (digests, object ids, text
decoded on purpose). Kept apart from the scrubbing itself so the table can grow without the algorithm moving;
the detectors added for the formats the #30 corpus found missing are marked "#30".
"""

from __future__ import annotations

import re
from functools import lru_cache

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
