"""`redline lsp`: the command exists, checks --tcp, and importing the server never loads torch."""

from __future__ import annotations

import subprocess
import sys

from click.testing import CliRunner

from redline.cli.lsp import lsp


def test_bad_tcp_address_is_a_usage_error() -> None:
    result = CliRunner().invoke(lsp, ["--tcp", "localhost"])
    assert result.exit_code == 2 and "HOST:PORT" in result.output


def test_server_imports_without_torch() -> None:
    code = "import sys, redline.lsp_server.server, redline.cli.lsp; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
