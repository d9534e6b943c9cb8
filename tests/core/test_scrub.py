"""The secrets corpus: every secret is redacted, ordinary code is left byte-for-byte alone."""

from __future__ import annotations

import pytest

from redline.scrub import scrub

PEM = (
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\n"
    "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n"
    "-----END RSA PRIVATE KEY-----"
)

SECRETS = [
    ('aws_access_key_id = "AKIAIOSFODNN7EXAMPLE"', "AKIAIOSFODNN7EXAMPLE"),
    ("token = 'ghp_abcdefghijklmnopqrstuvwxyz0123456789'", "ghp_abcdefghijklmnopqrstuvwxyz0123456789"),
    ("SLACK = 'xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx'", "xoxb-123456789012"),
    ('stripe.api_key = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"', "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ('DATABASE_URL = "postgres://admin:Sup3rS3cret@db.internal:5432/app"', "Sup3rS3cret"),
    ('password = "hunter2hunter2"', "hunter2hunter2"),
    ("db_passwd: correct-horse-battery", "correct-horse-battery"),
    (f"key = '''{PEM}'''", "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun"),
    ("session = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U'",
     "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ('HMAC_KEY = "8f4b2c1e9d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c"', "8f4b2c1e9d7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c"),
    ("client = Client(api_key='Zx9Qm2LpV7tR4sK8wN3bH6jD1fG5yC0a')", "Zx9Qm2LpV7tR4sK8wN3bH6jD1fG5yC0a"),
    ("OPENAI_API_KEY=sk-proj-aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5bC7dE9fG1hJ3", "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3zA5"),
]

BENIGN = [
    "def compute_moving_average(values: list[float], window_size: int) -> list[float]:",
    "    return sum(values[i - window_size:i]) / window_size",
    "MAX_RETRY_COUNT_FOR_NETWORK_REQUESTS = 10",
    "from redline.queue.store import SQLiteStore",
    "url = 'https://docs.python.org/3/library/sqlite3.html'",
    "password = get_password_from_keyring()",
    "assert response.status_code == 200, response.text",
    "self.assertEqual(parse_version('1.2.3'), (1, 2, 3))",
    "# see https://github.com/owner/repo/issues/1234 for details",
]


@pytest.mark.parametrize(("text", "secret"), SECRETS)
def test_secret_is_redacted(text: str, secret: str) -> None:
    clean = scrub(text)
    assert secret not in clean
    assert "[REDACTED:" in clean


@pytest.mark.parametrize("text", BENIGN)
def test_ordinary_code_is_unchanged(text: str) -> None:
    assert scrub(text) == text


def test_context_around_a_secret_survives() -> None:
    clean = scrub('DATABASE_URL = "postgres://admin:Sup3rS3cret@db.internal:5432/app"')
    assert clean.startswith('DATABASE_URL = "postgres://admin:')
    assert clean.endswith('@db.internal:5432/app"')


def test_secrets_in_a_long_multiline_prompt() -> None:
    body = "\n".join(BENIGN * 200)
    text = body + "\n" + "\n".join(t for t, _ in SECRETS) + "\n" + body
    clean = scrub(text)
    for _, secret in SECRETS:
        assert secret not in clean
    assert clean.startswith(body) and clean.endswith(body)


@pytest.mark.parametrize("line", [
    "docker run -u 1000:1000 app", "docker run -u root:root app", "ssh -p 2222 deploy@host",
    "echo $PW | docker login -u deploy --password-stdin", "vault write auth --token-file ~/.token",
    "kubeadm token create --print-join-command", 'curl -u "$USER:$PASSWORD" https://x', "mysk_live_notakey12345678",
    "ether 02:42:ac:11:00:02", "root:x:0:0:root:/root:/bin/bash", '<password>${env.DB_PASSWORD}</password>',
    'r = requests.get(url, auth=(user, password))', '"auth": "required"', 'MNEMONIC = os.environ["MNEMONIC"]',
    'tx = "0x' + "ab" * 32 + '"', "--secret=$(cat /run/secrets/key)",
])
def test_the_contextual_detectors_leave_look_alikes_alone(line: str) -> None:
    """Issue #30's new detectors (command lines, XML, pgpass, auth tuples, mnemonics) on what only looks like them."""
    assert scrub(line, code=True) == line


def test_a_test_vector_is_left_but_a_named_key_handed_to_a_decoder_is_cut() -> None:
    """Prose strength: random base64 given to a decoder is a test vector, unless the line names a secret."""
    vector = "0H1VZPMTvq8Yb3kR7wXc2LdN9sUeA4fG6hJ1mQpZ+/tKxWy5oBiCnE3rD8gVlSu"
    kept = f'    data = base64.b64decode("{vector}")'
    assert scrub(kept) == kept
    for line in (f'    key = base64.b64decode("{vector}")', f'SIGNING_SECRET = bytes.fromhex("{vector}")',
                 f'x = "{vector}"'):
        assert vector not in scrub(line)
