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


_FIRST_SECRETS: list[tuple[str, str, str]] = _secrets()
_FIRST_ORDINARY: list[str] = _ordinary()


# -- written apart from the detectors (issue #30) ----------------------------------------------------------------
# The entries below were written before reading redline/scrub.py's patterns, from the providers' documented token
# formats and from where such values turn up (config files, command lines, client constructors, logs, test
# failures). Their own seed, so the entries above keep their values.

_rng2 = random.Random(20261207)
#: lower-case bech32 (age recipients, bc1 addresses) and its upper-case form (age secret keys)
BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
URLSAFE = B62 + "-_"
#: the first BIP-39 English words (a mnemonic is any 12 of the 2048)
BIP39 = ("abandon ability able about above absent absorb abstract absurd abuse access accident account accuse "
         "achieve acid acoustic acquire across act action actor actress actual adapt add addict address adjust "
         "admit adult advance advice aerobic affair afford afraid again age agent agree ahead aim air airport "
         "aisle alarm album alcohol alert alien all alley allow almost alone alpha already also alter").split()


def _q(alphabet: str, n: int) -> str:
    return "".join(_rng2.choice(alphabet) for _ in range(n))


def _qmixed(n: int, alphabet: str = B62) -> str:
    while True:
        s = _q(alphabet, n)
        if any(c.isdigit() for c in s) and any(c.isupper() for c in s) and any(c.islower() for c in s):
            return s


def _qb64(nbytes: int) -> str:
    return base64.b64encode(_rng2.randbytes(nbytes)).decode()


def _qpw() -> str:
    return _qmixed(9) + _rng2.choice("!#%&*+-=") + _q(LOW, 4)


def _quuid() -> uuid.UUID:
    return uuid.UUID(int=_rng2.getrandbits(128), version=4)


def _more_secrets() -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []

    def add(provider: str, template: str, secret: str) -> None:
        out.append((provider, template.replace("{S}", secret), secret))

    lines = [_qb64(48) for _ in range(6)]
    add("gcp-service-account", '{"type": "service_account", "project_id": "app-1234", "private_key_id": "'
        + _q(HEX, 40) + '", "private_key": "-----BEGIN PRIVATE KEY-----\\n' + "\\n".join(lines)
        + '\\n-----END PRIVATE KEY-----\\n", "client_email": "ci@app-1234.iam.gserviceaccount.com"}', lines[3])
    add("google-oauth", '{"installed": {"client_id": "1234-abc.apps.googleusercontent.com", "client_secret": "{S}"}}',
        "GOCSPX-" + _qmixed(28, URLSAFE))
    add("google-oauth", "GOOGLE_REFRESH_TOKEN=1//0{S}", _qmixed(99, URLSAFE))
    add("google-oauth", "refreshing credentials: got {S} (expires in 3599s)", "ya29.a0" + _qmixed(150, URLSAFE))
    add("azure-ad", "cred = ClientSecretCredential(tenant_id, client_id, '{S}')",
        _qmixed(3) + _q(string.digits, 1) + "Q~" + _qmixed(34, B62 + "_.~-"))
    sig = _qb64(32).replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    add("azure-sas", "blob = 'https://acct.blob.core.windows.net/exports/2025.csv?sv=2022-11-02&ss=b&srt=o&sp=r"
        "&se=2026-01-01T00:00:00Z&spr=https&sig={S}'", sig)
    add("azure-devops", "AZURE_DEVOPS_EXT_PAT={S}", _q("abcdefghijklmnopqrstuvwxyz234567", 52))
    add("github", '{"access_token": "{S}", "token_type": "bearer", "expires_in": 28800}', "ghu_" + _qmixed(36))
    add("github", "refresh with {S} before it expires", "ghr_" + _qmixed(76))
    add("gitlab", "gitlab-runner register --url https://gitlab.example.com --token {S}", "glrt-" + _qmixed(20, URLSAFE))
    add("gitlab", "curl -X POST -F token={S} -F ref=main https://gitlab.example.com/api/v4/projects/7/trigger/pipeline",
        "glptt-" + _q(HEX, 40))
    add("gitlab", "git clone https://gitlab+deploy-token-3:{S}@gitlab.com/org/app.git", "gldt-" + _qmixed(20, URLSAFE))
    add("slack", 'SocketModeHandler(app, "{S}").start()',
        f"xapp-1-A0{_q(UP, 9)}-{_q(string.digits, 13)}-{_q(HEX, 64)}")
    add("slack", "rotated the refresh token to {S}", "xoxe-1-" + _qmixed(140))
    add("stripe", "event = stripe.Webhook.construct_event(payload, sig_header, '{S}')", "whsec_" + _qmixed(32))
    add("anthropic", "x-api-key: {S}", "sk-ant-admin01-" + _qmixed(86, URLSAFE) + "AA")
    add("openai", 'client = OpenAI(api_key="{S}")', "sk-svcacct-" + _qmixed(156, URLSAFE))
    add("groq", "E       AssertionError: assert '{S}' is None", "gsk_" + _qmixed(52))
    add("replicate", "export REPLICATE_API_TOKEN={S}", "r8_" + _qmixed(37))
    add("perplexity", 'PerplexityClient(key="{S}")', "pplx-" + _qmixed(48))
    add("xai", "XAI_API_KEY={S}", "xai-" + _qmixed(80))
    add("databricks", "[DEFAULT]\nhost = https://adb-1234567890.12.azuredatabricks.net\ntoken = {S}",
        "dapi" + _q(HEX, 32))
    add("rubygems", "---\n:rubygems_api_key: {S}", "rubygems_" + _q(HEX, 48))
    add("docker-hub", "echo {S} | docker login -u deploy --password-stdin", "dckr_pat_" + _qmixed(27, URLSAFE))
    add("terraform-cloud", 'credentials "app.terraform.io" {\n  token = "{S}"\n}',
        _qmixed(14) + ".atlasv1." + _qmixed(67))
    add("vault", "vault login {S}", "hvs.CAESI" + _qmixed(86, URLSAFE))
    add("doppler", 'DOPPLER_TOKEN="{S}"', "dp.st.prd." + _qmixed(43))
    add("pulumi", "PULUMI_ACCESS_TOKEN={S}", "pul-" + _q(HEX, 40))
    add("linear", 'const linear = new LinearClient({ apiKey: "{S}" });', "lin_api_" + _qmixed(40))
    add("notion", 'notion = Client(auth="{S}")', "ntn_" + _q(string.digits, 11) + _qmixed(35))
    add("atlassian", "JIRA_API_TOKEN={S}", "ATATT3xFfGF0" + _qmixed(180, URLSAFE) + "=" + _q(HEX.upper(), 8))
    add("bitbucket", 'bb = Bitbucket(username="deploy", app_password="{S}")', "ATBB" + _qmixed(32))
    add("shopify", "verifying the webhook HMAC with {S}", "shpss_" + _q(HEX, 32))
    add("mailgun", 'requests.post(MAILGUN_URL, auth=("api", "{S}"), data=message)', "key-" + _q(HEX, 32))
    add("square", "SQUARE_APPLICATION_SECRET: {S}", "sq0csp-" + _qmixed(43, URLSAFE))
    # the token's fixed `access_token$production$` head is left out of the secret: the leak check would find its
    # first 12 characters in the keyword argument of the same name
    add("braintree", 'gateway = braintree.BraintreeGateway(access_token="access_token$production${S}")',
        f"{_q(LOW, 16)}${_q(HEX, 32)}")
    add("facebook", "GET https://graph.facebook.com/v19.0/me?fields=id,name&access_token={S}", "EAAB" + _qmixed(160))
    discord_id = base64.b64encode(str(_rng2.randrange(10**17, 10**18)).encode()).decode().rstrip("=")
    add("discord", 'client.run("{S}")', f"{discord_id}.{_qmixed(6, URLSAFE)}.{_qmixed(38, URLSAFE)}")
    add("discord", 'WEBHOOK_URL = "https://discord.com/api/webhooks/1187654321098765432/{S}"', _qmixed(68, URLSAFE))
    add("teams", f"notify: https://contoso.webhook.office.com/webhookb2/{_quuid()}@{_quuid()}/IncomingWebhook/"
        + "{S}" + f"/{_quuid()}", _q(HEX, 32))
    add("sentry", "SENTRY_AUTH_TOKEN={S}", "sntryu_" + _q(HEX, 64))
    add("newrelic", 'newrelic.api_key = "{S}"', "NRAK-" + _q(UP, 27))
    add("grafana", 'provider "grafana" {\n  url  = "https://grafana.example.com"\n  auth = "{S}"\n}',
        "glsa_" + _qmixed(32) + "_" + _q(HEX, 8))
    add("supabase", "supabase login --token {S}", "sbp_" + _q(HEX, 40))
    add("netlify", "      NETLIFY_AUTH_TOKEN: {S}", "nfp_" + _qmixed(40))
    add("age", "# created: 2025-12-01T10:00:00Z\n# public key: age1" + _q(BECH32, 58) + "\n{S}",
        "AGE-SECRET-KEY-1" + _q(BECH32.upper(), 58))
    pgp = [_qb64(48) for _ in range(4)]
    add("pgp", "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBGV" + pgp[0][7:] + "\n" + "\n".join(pgp[1:])
        + "\n=" + _qb64(3) + "\n-----END PGP PRIVATE KEY BLOCK-----", pgp[2])
    putty = _qb64(48)
    add("putty", "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: deploy@ci\nPublic-Lines: 2\n"
        "AAAAC3NzaC1lZDI1NTE5AAAAI" + _qb64(24) + "\n" + _qb64(12) + "\nPrivate-Lines: 1\n{S}\nPrivate-MAC: "
        + _q(HEX, 64), putty)
    key_pem = "-----BEGIN EC PRIVATE KEY-----\n" + "\n".join(_qb64(48) for _ in range(3)) + \
        "\n-----END EC PRIVATE KEY-----\n"
    add("kubeconfig", "users:\n- name: admin\n  user:\n    client-certificate-data: " + _qb64(90)
        + "\n    client-key-data: {S}", base64.b64encode(key_pem.encode()).decode())
    add("kubeadm", "kubeadm join 10.0.0.1:6443 --token {S} --discovery-token-ca-cert-hash sha256:" + _q(HEX, 64),
        f"{_q(LOW, 6)}.{_q(LOW, 16)}")
    add("docker-config", '{"auths": {"registry.example.com": {"auth": "{S}"}}}',
        base64.b64encode(f"deploy:{_qpw()}".encode()).decode())
    add("pgpass", "db.internal:5432:app:app:{S}", _qpw())
    add("jdbc", 'spring.datasource.url=jdbc:postgresql://db:5432/app?user=app&password={S}&ssl=true', _qpw())
    add("sqlserver", "Server=tcp:app.database.windows.net,1433;Initial Catalog=app;User ID=app;Password={S};"
        "Encrypt=True;", _qpw())
    add("smtp-url", "EMAIL_URL=smtp+tls://mailer:{S}@smtp.example.com:587", _qpw())
    add("http-header", "> GET /v2/reports HTTP/1.1\n> Host: api.example.com\n> X-API-Key: {S}\n> Accept: */*",
        _qmixed(32))
    add("curl", "curl -u deploy:{S} https://ci.example.com/api/json", _qpw())
    add("drf-token", "Authorization: Token {S}", _q(HEX, 40))
    add("mapbox", "mapboxgl.accessToken = '{S}';",
        "sk.eyJ1IjoiYWNtZSIsImEiOiJjbG" + _qmixed(20) + "In0." + _qmixed(22, URLSAFE))
    add("firebase-fcm", 'headers = {"Authorization": "key={S}"}', "AAAA" + _qmixed(7, URLSAFE) + ":APA91b"
        + _qmixed(134, URLSAFE))
    add("okta", "Authorization: SSWS {S}", "00" + _qmixed(40, URLSAFE))
    add("launchdarkly", 'ldclient.set_config(Config("{S}"))', f"sdk-{_quuid()}")
    add("tailscale", "tailscale up --authkey={S}", "tskey-auth-k" + _qmixed(10) + "CNTRL-" + _qmixed(32))
    add("wireguard", "[Interface]\nPrivateKey = {S}\nAddress = 10.8.0.2/32", _qb64(32))
    add("kaggle", '{"username": "alice", "key": "{S}"}', _q(HEX, 32))
    add("npmrc", "//registry.example.com/:username=deploy\n//registry.example.com/:_password={S}",
        base64.b64encode(_qpw().encode()).decode())
    add("aws", "[default]\naws_session_token = {S}", "FwoGZXIvYXdzE" + _qb64(260).replace("\n", ""))
    add("postgres-env", "PGPASSWORD='{S}' psql -h db -U app app", _qpw())
    add("jenkins", "JENKINS_API_TOKEN={S}", "11" + _q(HEX, 32))
    add("huggingface", "HUGGING_FACE_HUB_TOKEN={S}", "api_org_" + _qmixed(34))
    add("circleci", "CIRCLE_TOKEN={S}", "CCIPAT_" + _qmixed(22) + "_" + _q(HEX, 40))
    add("buildkite", "buildkite-agent start --token {S}", "bkua_" + _q(HEX, 40))
    add("postman", 'pm.environment.set("apiKey", "{S}");', f"PMAK-{_q(HEX, 24)}-{_q(HEX, 34)}")
    add("dropbox", 'dbx = dropbox.Dropbox("{S}")', "sl." + _qmixed(135, URLSAFE))
    add("sshpass", "sshpass -p '{S}' ssh deploy@10.0.0.5 uptime", _qpw())
    add("django", "SECRET_KEY = '{S}'", _q(string.ascii_lowercase + string.digits + "!@#$%^&*(-_=+)", 50))
    add("rails", "production:\n  secret_key_base: {S}", _q(HEX, 128))
    add("laravel", "APP_KEY=base64:{S}", _qb64(32))
    add("symfony", "APP_SECRET={S}", _q(HEX, 32))
    add("maven", "<server>\n  <id>nexus</id>\n  <username>deploy</username>\n  <password>{S}</password>\n</server>",
        _qpw())
    add("terraform", 'db_password = "{S}"', _qpw())
    add("helm", "auth:\n  adminPassword: {S}\n  replicaCount: 2", _qpw())
    add("k8s-secret", "kind: Secret\ntype: Opaque\ndata:\n  password: {S}", base64.b64encode(_qpw().encode()).decode())
    add("ethereum", 'account = Account.from_key("{S}")', "0x" + _q(HEX, 64))
    add("bip39", 'MNEMONIC="{S}"', " ".join(_rng2.choice(BIP39) for _ in range(12)))
    add("bitcoin-wif", 'wif = "{S}"', "L" + _q(B58, 51))
    add("query-key", "fetched https://api.example.com/v1/forecast?lat=1&lon=2&api_key={S}&units=metric", _qmixed(32))
    add("requests-auth", 'r = requests.get(url, auth=("admin", "{S}"))', _qpw())
    add("cloudflare", "CLOUDFLARE_API_TOKEN={S}", _qmixed(40, URLSAFE))
    add("twilio", 'client = Client("AC' + _q(HEX, 32) + '", "{S}")', _q(HEX, 32))
    return out


def _more_ordinary() -> list[str]:
    u1, u2 = _quuid(), _quuid()
    sourcemap = base64.b64encode(b'{"version":3,"sources":["src/app.ts"],"names":[],"mappings":"AAAA,SAAS,GAAG"}')
    return [
        f"{_q(HEX, 7)} Fix flaky retry test\n{_q(HEX, 7)} Bump ruff to 0.8.1\n{_q(HEX, 7)} Merge pull request #41",
        _q(HEX, 40),
        f"Change-Id: I{_q(HEX, 40)}",
        f"v1.4.2-14-g{_q(HEX, 8)}",
        f'__version__ = "0.1.dev14+g{_q(HEX, 8)}.d20251201"',
        f"golang.org/x/tools v0.0.0-20231010123456-{_q(HEX, 12)} // indirect",
        f"GET /api/v1/users/{u1}/sessions HTTP/1.1",
        f'[Guid("{str(u2).upper()}")]',
        f"metadata:\n  name: web\n  uid: {_quuid()}\n  resourceVersion: \"4821337\"",
        f'  "lineage": "{_quuid()}",\n  "serial": 42,',
        f"{_q(HEX, 32)}  dist/app-1.0.tar.gz",
        f'"integrity": "sha1-{base64.b64encode(_rng2.randbytes(20)).decode()}"',
        f'  resolved "https://registry.yarnpkg.com/lodash/-/lodash-4.17.21.tgz#{_q(HEX, 40)}"',
        f'content-hash = "{_q(HEX, 64)}"',
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{_q(HEX, 64)}\nsize 1048576",
        f"/nix/store/{_q('0123456789abcdfghijklmnpqrsvwxyz', 32)}-python3-3.11.6/bin/python3",
        f'{_q(HEX, 12)}   postgres:16   "docker-entrypoint.s…"   2 hours ago   Up 2 hours   5432/tcp',
        f'def test_roundtrip():\n    data = base64.b64decode("{_qb64(48)}")\n    assert decode(encode(data)) == data',
        '<img alt="" src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwAD'
        'hgGAWjR9awAAAABJRU5ErkJggg==">',
        f"//# sourceMappingURL=data:application/json;charset=utf-8;base64,{sourcemap.decode()}",
        f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{_qb64(24)}{_qb64(6)} alice@laptop",
        "-----BEGIN CERTIFICATE-----\n" + "\n".join(_qb64(48) for _ in range(4)) + "\n-----END CERTIFICATE-----",
        "-----BEGIN PUBLIC KEY-----\n" + "\n".join(_qb64(48) for _ in range(2)) + "\n-----END PUBLIC KEY-----",
        f'const stripe = Stripe("pk_live_{_qmixed(24)}");',
        f'recipient = "0x{_q(HEX, 40)}"',
        f"send 0.01 BTC to bc1q{_q(BECH32, 38)}",
        f"age -r age1{_q(BECH32, 58)} -o backup.age backup.tar",
        f"role-to-assume: arn:aws:iam::{_q(string.digits, 12)}:role/github-actions-deploy",
        f"aws ec2 run-instances --image-id ami-0{_q(HEX, 16)} --subnet-id subnet-0{_q(HEX, 16)}",
        f'<script defer src="/static/js/main.{_q(HEX, 8)}.chunk.js"></script>',
        f'<div class="css-{_q(LOW, 7)} e{_q(LOW, 6)}0">',
        f"web-7d9f8b6c5d-{_q(LOW, 5)}   1/1   Running   0   3h12m",
        f'ETag: W/"{_q(HEX, 32)}"',
        f"Content-Security-Policy: script-src 'self' 'nonce-{_qb64(16)}'",
        "def test_refresh_token_rotation_invalidates_the_previous_token_family():",
        "GITHUB_TOKEN_REFRESH_INTERVAL_SECONDS = 3600",
        "secret = settings.AWS_SECRET_ACCESS_KEY",
        "PASSWORD_RESET_TOKEN_TTL = timedelta(hours=2)",
        "aws_secret_access_key = <YOUR_SECRET_ACCESS_KEY>",
        'password: "********"',
        'GITHUB_PAT = re.compile(r"ghp_[A-Za-z0-9]{36}")',
        'fake_token = "ghp_" + "x" * 36',
        "migrations/0042_auto_20251201_1342.py",
        f"1.0.0-rc.1+build.20251201.{_q(HEX, 8)}",
        f"event_id: {_q(HEX, 32)}",
        "inet6 fe80::1ff:fe23:4567:890a%eth0 prefixlen 64",
        "ether 02:42:ac:11:00:02  txqueuelen 0  (Ethernet)",
        'db.orders.find({"_id": ObjectId("' + _q(HEX, 24) + '")})',
        "channel_id = 1187654321098765432",
        f'order_id = "01J{_q("0123456789ABCDEFGHJKMNPQRSTVWXYZ", 23)}"',
        f'customer = stripe.Customer.retrieve("cus_{_qmixed(14)}")\nintent = "pi_{_qmixed(24)}"',
        f'completion id chatcmpl-{_qmixed(29)} used file-{_qmixed(24)} and asst_{_qmixed(24)}',
        f"Twilio account AC{_q(HEX, 32)} sent message SM{_q(HEX, 32)}",
        f'node_id: "PR_kwDOA{_qmixed(13, URLSAFE)}"',
        f'model = AutoModelForCausalLM.from_pretrained("Qwen/Qwen2.5-Coder-1.5B", revision="{_q(HEX, 40)}")',
        'tokenizer = AutoTokenizer.from_pretrained("hf-internal-testing/tiny-random-LlamaForCausalLM")',
        "torch-2.5.1+cu124-cp312-cp312-linux_x86_64.whl",
        "torch.manual_seed(1234567890)",
        f'session_id = request.cookies.get("session")  # e.g. {_q(HEX, 16)}',
        f"kubeadm token create --print-join-command  # prints a sha256:{_q(HEX, 64)} CA hash",
    ]


MORE_SECRETS: list[tuple[str, str, str]] = _more_secrets()
MORE_ORDINARY: list[str] = _more_ordinary()

#: every entry; the ones written apart from the detectors are also `MORE_SECRETS` / `MORE_ORDINARY`
SECRETS: list[tuple[str, str, str]] = _FIRST_SECRETS + MORE_SECRETS
ORDINARY: list[str] = _FIRST_ORDINARY + MORE_ORDINARY
