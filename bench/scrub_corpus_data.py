"""The scrubber's corpus: synthetic secrets in their providers' real formats, and ordinary code that must survive.

Every value is generated from a fixed seed at import (nothing real, nothing a secret scanner would flag in the
repository itself). `SECRETS` holds (provider, text, secret): the text is how the secret shows up in code, config,
a log or a test failure, and `secret` is the part that must not survive. `ORDINARY` holds snippets full of things
that look random but are not secrets: hashes, UUIDs, digests, identifiers, test vectors, templates.
"""

from __future__ import annotations

import base64
import hashlib
import random
import string
import uuid

_rng = random.Random(20261130)
UP = string.ascii_uppercase + string.digits
B62 = string.ascii_letters + string.digits
LOW = string.ascii_lowercase + string.digits
HEX = "0123456789abcdef"


def _r(alphabet: str, n: int) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def _mixed(n: int) -> str:
    """Random base62 with at least one digit, one upper and one lower letter (as real tokens have)."""
    while True:
        s = _r(B62, n)
        if any(c.isdigit() for c in s) and any(c.isupper() for c in s) and any(c.islower() for c in s):
            return s


def _b64(nbytes: int) -> str:
    return base64.b64encode(_rng.randbytes(nbytes)).decode()


def _pw() -> str:
    return _mixed(10) + _rng.choice("!#%&*+") + _r(LOW, 3)


def _pem(kind: str) -> str:
    body = "\n".join(_b64(48) for _ in range(5))
    return f"-----BEGIN {kind}PRIVATE KEY-----\n{body}\n-----END {kind}PRIVATE KEY-----", body.splitlines()[2]


def _jwt() -> str:
    head = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').decode().rstrip("=")
    claims = base64.urlsafe_b64encode(f'{{"sub":"{_r(LOW, 10)}","iat":1732960000}}'.encode()).decode().rstrip("=")
    return f"{head}.{claims}.{base64.urlsafe_b64encode(_rng.randbytes(32)).decode().rstrip('=')}"


def _secrets() -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []

    def add(provider: str, template: str, secret: str) -> None:
        out.append((provider, template.replace("{S}", secret), secret))

    akia = "AKIA" + _r(UP, 16)
    add("aws", 'aws_access_key_id = "{S}"', akia)
    add("aws", "export AWS_ACCESS_KEY_ID={S}", "AKIA" + _r(UP, 16))
    add("aws", "ASIA session: {S}", "ASIA" + _r(UP, 16))
    add("aws", "[default]\naws_secret_access_key = {S}", _b64(30))
    add("aws", 'AWS_SECRET_ACCESS_KEY = "{S}"', _b64(30))
    cut = "AKIA" + _r(UP, 8)
    add("aws-truncated", "AssertionError: assert 'prefix-xxxxxxxxxxxxxxxxxxxx-{S}...EXAMPLE' == 'x'", cut)
    add("github", "token = '{S}'", "ghp_" + _mixed(36))
    add("github", '{"token": "{S}", "scopes": ["repo"]}', "gho_" + _mixed(36))
    add("github", "GITHUB_TOKEN={S}", "github_pat_" + _mixed(22) + "_" + _mixed(59))
    add("github", "git clone https://x-access-token:{S}@github.com/org/repo.git", "ghs_" + _mixed(36))
    add("github-truncated", "E       AssertionError: assert '{S}...' == ''", "ghp_" + _mixed(8))
    add("gitlab", "deploy:\n  token: {S}", "glpat-" + _mixed(20))
    add("gitlab", "variables:\n  GITLAB_TOKEN: {S}", "glpat-" + _mixed(20))
    add("slack", "posting with {S} to #alerts", "xoxb-" + _r(string.digits, 12) + "-" + _r(string.digits, 13)
        + "-" + _mixed(24))
    add("slack", "SLACK_USER_TOKEN = '{S}'", "xoxp-" + _r(string.digits, 12) + "-" + _r(string.digits, 12) + "-"
        + _r(string.digits, 13) + "-" + _r(HEX, 32))
    add("slack", 'WEBHOOK = "{S}"', f"https://hooks.slack.com/services/T{_r(UP, 8)}/B{_r(UP, 10)}/{_mixed(24)}")
    add("stripe", 'stripe.api_key = "{S}"', "sk_live_" + _mixed(24))
    add("stripe", "STRIPE_RESTRICTED={S}", "rk_live_" + _mixed(24))
    add("stripe", "const stripe = require('stripe')('{S}');", "sk_test_" + _mixed(24))
    add("openai", "OPENAI_API_KEY={S}", "sk-proj-" + _mixed(48))
    add("openai", 'openai.api_key = "{S}"', "sk-" + _mixed(20) + "T3BlbkFJ" + _mixed(20))
    add("openai-truncated", "assert client.api_key == '{S}...'", "sk-proj-" + _mixed(8))
    add("anthropic", 'export ANTHROPIC_API_KEY="{S}"', "sk-ant-api03-" + _mixed(80))
    add("huggingface", 'login(token="{S}")', "hf_" + _mixed(34))
    add("huggingface", "HF_TOKEN={S}", "hf_" + _mixed(34))
    add("huggingface", "download failed; retried with {S} as the token", "hf_" + _mixed(34))
    add("google", 'const config = { apiKey: "{S}", authDomain: "app.firebaseapp.com" };', "AIza" + _mixed(35))
    add("google", "GET https://maps.googleapis.com/maps/api/geocode/json?address=x&key={S}", "AIza" + _mixed(35))
    add("jwt", "Authorization: Bearer {S}", _jwt())
    add("jwt", 'session_cookie = "{S}"', _jwt())
    for kind in ("RSA ", "OPENSSH ", "EC ", ""):
        pem, line = _pem(kind)
        add("private-key", "key = '''{S}'''".replace("{S}", pem), line)
    add("url-password", 'DATABASE_URL = "postgres://app:{S}@db.internal:5432/app"', _pw())
    add("url-password", "REDIS_URL=redis://:{S}@cache:6379/0", _pw())
    add("url-password", 'client = MongoClient("mongodb+srv://admin:{S}@cluster0.x1y2z.mongodb.net/test")', _pw())
    add("url-password", "broker_url = 'amqp://guest:{S}@rabbit//'", _pw())
    add("dotenv", "DB_PASSWORD={S}", _pw())
    add("dotenv", "SECRET_KEY=django-insecure-{S}", _mixed(40))
    add("yaml", "database:\n  user: app\n  password: {S}", _pw())
    add("yaml", "db: {user: app, password: {S}}", _mixed(14))
    add("json", '{"user": "app", "password": "{S}"}', _pw())
    add("compose", "    environment:\n      - POSTGRES_PASSWORD={S}", _mixed(16))
    add("kwargs", 'conn = psycopg.connect(host="db", user="app", password="{S}")', _pw())
    add("java", 'String password = "{S}";', _pw())
    add("go", 'const apiKey = "{S}"', _mixed(32))
    add("ini", "[database]\nhost = db\npassword = {S}", _pw())
    add("npm", "//npm.registry.example/:_authToken={S}", "npm_" + _mixed(36))
    add("pypi", "[pypi]\nusername = __token__\npassword = {S}", "pypi-AgEIcHlwaS5vcmc" + _mixed(70))
    add("sendgrid", 'SENDGRID_API_KEY = "{S}"', "SG." + _mixed(22) + "." + _mixed(43))
    add("twilio", "TWILIO_API_KEY=SK{S}", _r(HEX, 32))
    add("telegram", "bot = Bot('{S}')", _r(string.digits, 10) + ":AA" + _mixed(33))
    add("azure", "AZURE_STORAGE=DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={S};"
        "EndpointSuffix=core.windows.net", _b64(64))
    add("mailchimp", "MAILCHIMP_KEY={S}", _r(HEX, 32) + "-us6")
    add("digitalocean", 'DO_TOKEN = "{S}"', "dop_v1_" + _r(HEX, 64))
    add("shopify", "X-Shopify-Access-Token: {S}", "shpat_" + _r(HEX, 32))
    add("basic-auth", "Authorization: Basic {S}", base64.b64encode(f"admin:{_pw()}".encode()).decode())
    add("cli", "mysql -h db -u root --password={S} app", _pw())
    add("hmac", 'HMAC_SECRET = "{S}"', _r(HEX, 64))
    add("heroku", "HEROKU_API_KEY={S}", str(uuid.UUID(int=_rng.getrandbits(128))))
    add("datadog", "DD_API_KEY={S}", _r(HEX, 32))
    add("netrc", "machine api.example.com login deploy password {S}", _pw())
    return out


def _ordinary() -> list[str]:
    sha1 = _r(HEX, 40)
    sha256 = hashlib.sha256(b"corpus").hexdigest()
    sha512 = hashlib.sha512(b"corpus").hexdigest()
    u = uuid.UUID(int=_rng.getrandbits(128))
    sri = base64.b64encode(hashlib.sha512(b"left-pad").digest()).decode()
    sri384 = base64.b64encode(hashlib.sha384(b"bootstrap").digest()).decode()
    go_sum = base64.b64encode(hashlib.sha256(b"errors").digest()).decode()
    text_b64 = base64.b64encode(b"the quick brown fox jumps over the lazy dog").decode()
    return [
        f"git checkout {sha1}",
        f"Merge commit {sha1[:12]} into main",
        f"# fixed in https://github.com/org/repo/commit/{sha1}",
        f"https://github.com/org/repo/blob/{_r(HEX, 40)}/src/app.py#L10",
        f'EXPECTED = "{sha256}"',
        f'assert hashlib.sha256(b"corpus").hexdigest() == "{sha256}"',
        f'digest_512 = "{sha512}"',
        f'request_id = "{u}"',
        f'trace_id = "{u.hex}"',
        f'generation_id = "{_r(HEX, 32)}"',
        f'uuid.UUID("{uuid.UUID(int=_rng.getrandbits(128))}")',
        f'"integrity": "sha512-{sri}"',
        f'<script src="/bootstrap.min.js" integrity="sha384-{sri384}" crossorigin="anonymous"></script>',
        f"FROM python:3.12-slim@sha256:{_r(HEX, 64)}",
        f"image: ghcr.io/org/app@sha256:{_r(HEX, 64)}",
        f"github.com/pkg/errors v0.9.1 h1:{go_sum}",
        f'{{file = "pkg-1.0-py3-none-any.whl", hash = "sha256:{_r(HEX, 64)}"}}',
        f"requests==2.32.3 --hash=sha256:{_r(HEX, 64)}",
        f'checksum = "{_r(HEX, 64)}"',
        f'assert base64.b64encode(b"the quick brown fox jumps over the lazy dog") == b"{text_b64}"',
        "def convertUtf8BytesToBase64UrlString2(data: bytes) -> str:",
        "result = convertUtf8BytesToBase64UrlString2(payload)",
        "def test_parse_iso8601_timestamp_with_utc_offset_2():",
        "class HTTP2ServerPushPromiseFrameV3Handler(BaseFrameHandler):",
        "MAX_RETRY_COUNT_FOR_NETWORK_REQUESTS_V2 = 10",
        "from myproject.services.authentication.oauth2_token_refresher import OAuth2TokenRefresher",
        "/home/runner/work/project/project/src/module_v2/handlers/user_auth_handler.py:42: in handle",
        "FAILED tests/test_api.py::test_login[user-2-expired_token] - AssertionError: assert 401 == 200",
        'url = f"postgres://{user}:{password}@{host}:{port}/{db}"',
        'DATABASE_URL = "postgres://${DB_USER}:${DB_PASSWORD}@db:5432/app"',
        "def login(username: str, password: str) -> Token:",
        "    password: Optional[str] = None",
        "    api_key: SecretStr",
        "password = get_password_from_keyring()",
        'api_key = os.environ["OPENAI_API_KEY"]',
        'API_KEY = os.getenv("API_KEY")',
        "const token = localStorage.getItem('token');",
        "self.api_key = api_key",
        "client = Client(api_key=api_key, timeout=30)",
        "MAX_TOKENS = 4096",
        'token_type = "bearer"',
        'TOKEN_URL = "https://oauth2.googleapis.com/token"',
        "PASSWORD_MIN_LENGTH = 12",
        "password_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt())",
        '"password": {"type": "string", "minLength": 8}',
        "DB_PASSWORD=${DB_PASSWORD}",
        "          DB_PASSWORD: ${{ secrets.DB_PASSWORD }}",
        'password: "{{ vault_db_password }}"',
        "api_key: <your-api-key>",
        "export GITHUB_TOKEN=$(gh auth token)",
        'headers = {"Authorization": f"Bearer {token}"}',
        "raise ValueError('invalid token: expected three dot-separated parts')",
        "E   KeyError: 'password'",
        "    if not token or token.is_expired():",
        "@settings(max_examples=500, derandomize=True)\n@seed(123456789012345678901234567890)",
        "assert parse_version('1.2.3') == (1, 2, 3)",
        "timestamp = 1732960000123  # 2024-11-30T10:26:40.123Z",
        "secretKeyRef: {name: db-credentials, key: password}",
        "passwords_checked = 1024",
        "bypass: true",
        "ENCRYPTION_KEY_LENGTH = 32",
    ]


SECRETS: list[tuple[str, str, str]] = _secrets()
ORDINARY: list[str] = _ordinary()
