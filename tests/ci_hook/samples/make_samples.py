"""Regenerate the real-tool samples: `python tests/ci_hook/samples/make_samples.py` (needs ruff, mypy, pytest,
pytest-reportlog; semgrep optional). The project is copied to a temporary directory, the tools run there, and
that directory's absolute path is written as `@ROOT@` so the tests can place the samples in any checkout."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        shutil.copytree(HERE / "project", root)
        (root / ".git").mkdir()
        runs = {
            "ruff.sarif": [str(BIN / "ruff"), "check", "--select", "F,E,S307", "--output-format", "sarif", "pkg"],
            "ruff.json": [str(BIN / "ruff"), "check", "--select", "F,E,S307", "--output-format", "json", "pkg"],
            "mypy.jsonl": [sys.executable, "-m", "mypy", "--output", "json", "--no-incremental", "pkg"],
            "junit-xunit1.xml": [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:redline",
                                 "--junitxml=OUT", "-o", "junit_family=xunit1", "tests"],
            "junit-xunit2.xml": [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:redline",
                                 "--junitxml=OUT", "tests"],
            "reportlog.jsonl": [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:redline",
                                "--report-log=OUT", "tests"],
        }
        if shutil.which("semgrep", path=str(BIN)):
            runs["semgrep.sarif"] = [str(BIN / "semgrep"), "scan", "--metrics=off", "--disable-version-check",
                                     "--config", "semgrep-rules.yml", "--sarif", "--output=OUT", "pkg"]
        for name, cmd in runs.items():
            out = root / name
            cmd = [c.replace("OUT", str(out)) if "OUT" in c else c for c in cmd]
            done = subprocess.run(cmd, cwd=root, capture_output=True, text=True, check=False)
            text = out.read_text() if out.exists() else done.stdout
            if not text.strip():
                print(f"{name}: no output ({done.stderr.strip()[:200]})")
                continue
            (HERE / name).write_text(text.replace(str(root), "@ROOT@"))
            print(f"{name}: {len(text)} bytes")


if __name__ == "__main__":
    main()
