"""The VS Code extension in a real VS Code: code-server (from the npm registry) with the packaged `.vsix`, driven by
Debian's chromium through playwright-core (`editors/vscode/test/e2e/drive.mjs`). A workspace holding a git repo
opens, the extension activates and starts `redline lsp` (the status bar item appears), an inline completion from a
running `redline serve` is accepted with Tab, and the queue then holds that generation with a tracked span.

Run by `editors/vscode/ci.sh`, which builds the `.vsix`, installs code-server once into a cache and sets
REDLINE_VSCODE_E2E=1; anywhere else the test is skipped (it needs both, and a minute)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from redline.config import load_config
from redline.queue import open_store
from tests.conftest import skip_or_fail, wait_for
from tests.core.helpers import stop
from tests.lsp_server.conftest import serve_unavailable

ROOT = Path(__file__).resolve().parents[2]
EXT = ROOT / "editors" / "vscode"
ARTIFACTS = EXT / "test-artifacts"
COMMENT = "import only pi"
APP = "import math\n\n\ndef area(r):\n    return math.pi * r * r\n\n"

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("REDLINE_VSCODE_E2E") != "1",
                                 reason="run by editors/vscode/ci.sh (needs the .vsix and code-server)")]


def prerequisites() -> tuple[Path, Path, str]:
    """(code-server, vsix, chromium), or skip naming exactly what is missing (under CI: fail)."""
    error = os.environ.get("CODE_SERVER_ERROR")
    if error:
        skip_or_fail(f"code-server could not be installed: {error}")
    code_server = Path(os.environ.get("CODE_SERVER", ""))
    if not code_server.is_file():
        skip_or_fail(f"CODE_SERVER={code_server} is not an executable (editors/vscode/test/e2e/install-code-server.sh)")
    vsix = EXT / "out" / "redline.vsix"
    if not vsix.is_file():
        skip_or_fail(f"{vsix} is missing: run `npm run package` in editors/vscode")
    chromium = shutil.which("chromium") or ""
    if not chromium:
        skip_or_fail("chromium is not installed: apt-get install -y chromium")
    return code_server, vsix, chromium


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Lines:
    """A process's output, read line by line on a thread (so a wait can watch it grow without blocking)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        threading.Thread(target=self._read, args=(proc,), daemon=True).start()

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.append(line)

    def find(self, marker: str) -> str | None:
        return next((line for line in list(self.lines) if marker in line), None)


def workspace(tmp_path: Path, model: Path | None) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "app.py").write_text(APP, encoding="utf-8")
    if model is not None:
        (repo / "redline.toml").write_text(f'model = "{model}"\n', encoding="utf-8")
    (repo / ".vscode").mkdir()
    (repo / ".vscode" / "settings.json").write_text(json.dumps({
        "redline.interpreter": sys.executable,
        "redline.inlineCompletions.debounceMs": 100,
        "redline.inlineCompletions.maxTokens": 12,
        "redline.trace.server": "messages",
        "editor.inlineSuggest.enabled": True,
        "editor.quickSuggestions": {"other": False, "comments": False, "strings": False},
    }), encoding="utf-8")
    return repo


def user_settings(user_data: Path) -> None:
    (user_data / "User").mkdir(parents=True)
    (user_data / "User" / "settings.json").write_text(json.dumps({
        "workbench.startupEditor": "none", "security.workspace.trust.enabled": False,
        "telemetry.telemetryLevel": "off", "extensions.autoCheckUpdates": False, "update.mode": "none",
        "workbench.tips.enabled": False, "workbench.enableExperiments": False,
    }), encoding="utf-8")


def test_completion_accepted_in_code_server_is_queued_with_its_span(tmp_path: Path, redline_home: Path) -> None:
    code_server, vsix, chromium = prerequisites()
    no_serve = serve_unavailable()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    model = None
    if no_serve is None:
        from tests.trainer.conftest import build_tiny_model

        model = build_tiny_model(tmp_path / "tiny-fim-model")
    repo = workspace(tmp_path, model)
    env = {**os.environ, "REDLINE_HOME": str(redline_home), "PYTHONUNBUFFERED": "1"}
    user_data, extensions = tmp_path / "code-user", tmp_path / "code-extensions"
    user_settings(user_data)
    common = ["--user-data-dir", str(user_data), "--extensions-dir", str(extensions)]
    subprocess.run([str(code_server), *common, "--install-extension", str(vsix)], check=True, env=env,
                   capture_output=True, timeout=300)

    servers: dict[str, subprocess.Popen[str]] = {}  # what must stay up while the test waits
    try:
        if no_serve is None:
            servers["redline serve"] = subprocess.Popen(
                [sys.executable, "-m", "redline", "serve", "--port", "0"], cwd=repo, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, text=True)
            serve_json = load_config(repo).state_dir / "serve.json"
            wait_for("redline serve's serve.json", serve_json.exists, alive=servers,
                     progress=lambda: None)  # loading the model shows nothing: only a stall ends this wait
        port = free_port()
        code = servers["code-server"] = subprocess.Popen(
            [str(code_server), *common, "--auth", "none", "--bind-addr", f"127.0.0.1:{port}", "--disable-telemetry",
             "--disable-update-check", "--disable-workspace-trust", "--disable-getting-started-override", str(repo)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = Lines(code)
        wait_for("code-server's 'HTTP server listening'", lambda: output.find("HTTP server listening"),
                 alive=servers, progress=lambda: (len(output.lines), output.lines[-1:]))
        args = {"url": f"http://127.0.0.1:{port}", "folder": str(repo), "artifacts": str(ARTIFACTS),
                "chromium": chromium, "complete": no_serve is None, "comment": COMMENT}
        # drive.mjs logs a line per step to stderr (kept as drive.log) and prints its result as JSON on stdout
        log, out = ARTIFACTS / "drive.log", tmp_path / "drive.json"
        with log.open("w", encoding="utf-8") as err, out.open("w", encoding="utf-8") as res:
            drive = subprocess.Popen(["node", str(EXT / "test" / "e2e" / "drive.mjs"), json.dumps(args)], cwd=EXT,
                                     stdout=res, stderr=err, text=True)
            try:
                wait_for("drive.mjs to finish", lambda: drive.poll() is not None, alive=servers,
                         progress=lambda: log.read_text(encoding="utf-8").splitlines()[-1:])
            finally:
                stop(drive)
        shutil.copytree(user_data / "logs", ARTIFACTS / "code-server-logs", dirs_exist_ok=True)
        stdout, stderr = out.read_text(encoding="utf-8"), log.read_text(encoding="utf-8")
        result = json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}
        assert drive.returncode == 0, f"{result.get('error') or stderr[-3000:]}\nsteps: {result.get('steps')}"
    finally:
        for proc in reversed(servers.values()):
            stop(proc)

    assert "queued" in result["status"]
    store = open_store(load_config(repo, env={"REDLINE_HOME": str(redline_home)}))
    try:
        spans = {s.generation_id: s for s in store.spans_for_path("app.py")}
        gens = {gid: store.get_generation(gid) for gid in spans}
        marked = [g for g in gens.values() if g is not None and g.completion == "import math"]
        assert marked, f"the marked line is not in the queue: {gens}"
        # the lens clicks: the comment text came from the extension's prompt, the rest from the lens's arguments
        review = {(f.kind, f.message) for gid in spans for f in store.feedback_for(gid)}
        assert {("review", COMMENT), ("accept", "marked good")} <= review, review
        if no_serve is not None:
            skip_or_fail(f"`redline serve` is not available ({no_serve}): the completion part did not run")
        served = {g.prompt.prefix.rsplit("\n", 1)[-1]: g for g in gens.values()
                  if g is not None and g.origin != "lsp" and g.prompt.prefix is not None}
        assert sorted(served) == ["y = ", "z = "], f"tracked spans of served generations: {gens}"
        whole, partial = served["y = "], served["z = "]
        assert whole.prompt.suffix is not None, "the request was not fill-in-the-middle"
        saved = (repo / "app.py").read_text(encoding="utf-8")
        # Tab: what the editor inserted is what the server generated, tracked under that generation's id
        assert whole.completion in spans[whole.id].text  # the stored span covers whole lines
        assert "y = " + whole.completion in saved
        # Ctrl+Right ×3: a proper prefix of the completion was inserted and is the tracked span
        line = next(x for x in saved.splitlines() if x.startswith("z = "))
        taken = line[len("z = "):]
        assert taken and len(taken) < len(partial.completion) and partial.completion.startswith(taken)
        assert taken in spans[partial.id].text
    finally:
        store.close()
