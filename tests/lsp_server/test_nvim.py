"""The real client: headless Neovim with the plugin from editors/nvim opens a file, marks a span, introduces an
error, saves, and the test reads the records from the queue; and it inserts a completion `redline serve` answered
with a plain `nvim_buf_set_text`, which the server links without any Redline call from the client.

Needs `nvim` (Debian 12: `apt-get install neovim`, which is 0.7); skipped with the reason when it is absent.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from redline.config import load_config
from redline.queue import open_store

pytestmark = pytest.mark.real_part

PLUGIN = Path(__file__).resolve().parents[2] / "editors" / "nvim"
#: `REDLINE_TEST_NVIM=/path/to/nvim` tests another Neovim than the one on PATH
NVIM = os.environ.get("REDLINE_TEST_NVIM") or shutil.which("nvim")

INIT = """
vim.opt.runtimepath:prepend({plugin})
vim.opt.swapfile = false
vim.g.redline_manual_setup = true
require("redline").setup({{ cmd = {cmd}, init_options = {{ settleSeconds = 0 }} }})
"""

STEPS = r"""
local result_path = {result}
local r = require("redline")
local function wait(what, cond)
  if not vim.wait(30000, cond, 20) then error("timed out waiting for " .. what) end
end
local function call(fn)
  r.last_result = nil
  fn()
  wait("a command result", function() return r.last_result ~= nil end)
  if r.last_result.err then error(vim.inspect(r.last_result.err)) end
  return r.last_result.result
end
local ok, err = pcall(function()
  wait("the server", function() local c = r.client(0); return c ~= nil and c.initialized end)
  -- lines 4-5 were pasted from an assistant: mark them
  local marked = call(function() vim.cmd("4,5RedlineMark") end)
  -- the human breaks the generated code, and saves
  vim.api.nvim_buf_set_lines(0, 4, 5, false, {{ "    return a +" }})
  vim.cmd("write")
  wait("the redline hint", function()
    for _, d in ipairs(vim.diagnostic.get(0)) do
      if d.source == "redline" then return true end
    end
    return false
  end)
  vim.api.nvim_win_set_cursor(0, {{ 4, 2 }})
  call(function() vim.cmd("RedlineComment never leave a dangling operator") end)
  call(function() vim.cmd("RedlineBad") end)
  vim.fn.writefile({{ vim.fn.json_encode({{ marked = marked, status = r.status }}) }}, result_path)
end)
if not ok then
  vim.fn.writefile({{ "ERROR " .. tostring(err) }}, result_path)
end
vim.cmd("qall!")
"""

SOURCE = "import sys\n\n\ndef add(a, b):\n    return a + b\n\n\nprint(add(1, 2))\n"


def lua(value: object) -> str:
    if isinstance(value, list):
        return "{" + ", ".join(lua(v) for v in value) + "}"
    return json.dumps(str(value))


@pytest.mark.skipif(NVIM is None, reason="nvim is not installed (Debian: apt-get install neovim)")
def test_headless_neovim_marks_a_span_and_the_error_is_recorded(tmp_path: Path, repo: Path) -> None:
    path = repo / "app.py"
    path.write_text(SOURCE, encoding="utf-8")
    result = tmp_path / "result.json"
    server = [sys.executable, "-c", "from redline.cli import main; main(['lsp'])"]
    (tmp_path / "init.lua").write_text(INIT.format(plugin=lua(PLUGIN), cmd=lua(server)), encoding="utf-8")
    (tmp_path / "steps.lua").write_text(STEPS.format(result=lua(result)), encoding="utf-8")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "XDG_DATA_HOME": str(tmp_path / "xdg"),
           "XDG_STATE_HOME": str(tmp_path / "xdg")}
    done = subprocess.run([NVIM, "--headless", "-u", str(tmp_path / "init.lua"), str(path),
                           "-c", f"luafile {tmp_path / 'steps.lua'}"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=90, check=False)
    outcome = result.read_text(encoding="utf-8") if result.exists() else f"no result; stderr: {done.stderr}"
    assert not outcome.startswith(("ERROR", "no result")), outcome
    marked = json.loads(outcome)["marked"]

    store = open_store(load_config(repo))
    gen = store.get_generation(marked["generationId"])
    assert gen is not None and gen.prompt_format == "fim"
    assert gen.completion == "def add(a, b):\n    return a + b\n"
    assert gen.prompt.prefix == "import sys\n\n\n" and gen.prompt.suffix.startswith("\n\nprint(")
    feedback = {(f.kind, f.source): f for f in store.feedback_for(gen.id)}
    diagnostic = feedback[("diagnostic", "lsp.py_compile")]
    assert diagnostic.range is not None and diagnostic.range.start_line == 4 and diagnostic.path == "app.py"
    assert feedback[("review", "lsp.review")].message == "never leave a dangling operator"
    assert ("reject", "lsp.review") in feedback
    store.close()


LINK_STEPS = r"""
local result_path = {result}
local served = vim.fn.json_decode(vim.fn.readfile({served})[1])
local r = require("redline")
local ok, err = pcall(function()
  if not vim.wait(30000, function() local c = r.client(0); return c ~= nil and c.initialized end, 20) then
    error("timed out waiting for the server")
  end
  -- a completion plugin accepts the served completion: plain buffer text, no Redline call
  vim.api.nvim_buf_set_text(0, 4, 4, 4, 4, vim.split(served.text, "\n", true))
  local params = {{ textDocument = {{ uri = vim.uri_from_bufnr(0) }} }}
  for _ = 1, 200 do
    for _, answer in pairs(vim.lsp.buf_request_sync(0, "textDocument/codeLens", params, 5000) or {{}}) do
      for _, lens in ipairs(answer.result or {{}}) do
        if lens.command and lens.command.arguments[1].generationId == served.id then
          -- queue writes are ordered: once the status is answered, the span is in the queue (before quitting)
          vim.lsp.buf_request_sync(0, "workspace/executeCommand", {{ command = "redline.status" }}, 10000)
          vim.fn.writefile({{ vim.fn.json_encode({{ line = lens.range.start.line }}) }}, result_path)
          return
        end
      end
    end
    vim.wait(50)
  end
  error("the inserted completion was never linked")
end)
if not ok then
  vim.fn.writefile({{ "ERROR " .. tostring(err) }}, result_path)
end
vim.cmd("qall!")
"""


@pytest.mark.slow
@pytest.mark.skipif(NVIM is None, reason="nvim is not installed (Debian: apt-get install neovim)")
def test_headless_neovim_links_a_served_completion_it_inserted(tmp_path: Path, repo: Path,
                                                               served: tuple[str, str]) -> None:
    gid, text = served
    path = repo / "app.py"
    path.write_text("import sys\n\n\ndef main():\n    pass  # end\n", encoding="utf-8")
    result, answer = tmp_path / "result.json", tmp_path / "served.json"
    answer.write_text(json.dumps({"id": gid, "text": text}), encoding="utf-8")
    server = [sys.executable, "-c", "from redline.cli import main; main(['lsp'])"]
    (tmp_path / "init.lua").write_text(INIT.format(plugin=lua(PLUGIN), cmd=lua(server)), encoding="utf-8")
    (tmp_path / "steps.lua").write_text(LINK_STEPS.format(result=lua(result), served=lua(answer)), encoding="utf-8")
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "xdg"), "XDG_DATA_HOME": str(tmp_path / "xdg"),
           "XDG_STATE_HOME": str(tmp_path / "xdg")}
    done = subprocess.run([NVIM, "--headless", "-u", str(tmp_path / "init.lua"), str(path),
                           "-c", f"luafile {tmp_path / 'steps.lua'}"],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=120, check=False)
    outcome = result.read_text(encoding="utf-8") if result.exists() else f"no result; stderr: {done.stderr}"
    assert not outcome.startswith(("ERROR", "no result")), outcome
    assert json.loads(outcome) == {"line": 4}
    store = open_store(load_config(repo))
    (span,) = [s for s in store.spans_for_path("app.py") if s.generation_id == gid]
    assert span.range.start_line == 4
    store.close()
