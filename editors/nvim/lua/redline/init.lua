-- Redline for Neovim: starts `redline lsp` for every buffer inside a repository, forwards what the other
-- language servers report, and lets you mark, comment on, accept or reject model-written code.
-- Works on Neovim 0.7 (vim.lsp.start_client + buf_attach_client), 0.8-0.10 (vim.lsp.start) and
-- 0.11+ (vim.lsp.config + vim.lsp.enable).

local M = {}

M.defaults = {
  -- the server command; `redline` must be on PATH (or give the venv's full path)
  cmd = { "redline", "lsp" },
  -- sent as initializationOptions (see docs/editors.md for every key)
  init_options = {},
  -- directory markers, nearest first: a repository, then a Python project
  root_markers = { { ".git", "redline.toml" }, { "pyproject.toml" } },
  -- forward other servers' diagnostics to Redline (they become feedback when they fall on model code)
  forward_diagnostics = true,
}

M.config = nil
M.status = nil -- the last redline/status payload
M.last_result = nil -- the last command result (or error), for scripts and tests

local NAME = "redline"
local has = function(feature) return vim.fn.has(feature) == 1 end

-- client methods are called with `:` from 0.11 on; `.` before
local function request(client, method, params, handler, bufnr)
  if has("nvim-0.11") then
    return client:request(method, params, handler, bufnr)
  end
  return client.request(method, params, handler, bufnr)
end

local function notify(client, method, params)
  if has("nvim-0.11") then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

local function find_root(bufnr)
  local name = vim.api.nvim_buf_get_name(bufnr)
  if name == "" or vim.bo[bufnr].buftype ~= "" then
    return nil
  end
  local start = vim.fn.fnamemodify(name, ":p:h")
  for _, markers in ipairs(M.config.root_markers) do
    local dir = start
    while true do
      for _, marker in ipairs(markers) do
        if (vim.uv or vim.loop).fs_stat(dir .. "/" .. marker) then
          return dir
        end
      end
      local parent = vim.fn.fnamemodify(dir, ":h")
      if parent == dir then
        break
      end
      dir = parent
    end
  end
  return nil
end

function M.client(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  if vim.lsp.get_clients then
    return vim.lsp.get_clients({ bufnr = bufnr, name = NAME })[1]
  end
  for _, client in pairs(vim.lsp.buf_get_clients(bufnr)) do
    if client.name == NAME then
      return client
    end
  end
  return nil
end

local function on_status(_, result)
  M.status = result
  vim.g.redline_status = result
end

local function client_config(root)
  return {
    name = NAME,
    cmd = M.config.cmd,
    root_dir = root,
    -- an empty Lua table would be sent as [] (an array): send {} instead
    init_options = next(M.config.init_options) and M.config.init_options or vim.empty_dict(),
    -- Redline anchors spans on every change: send them at once, not debounced
    flags = { debounce_text_changes = 0 },
    handlers = { ["redline/status"] = on_status },
  }
end

local started = {} -- root → client id (Neovim < 0.8)

local function attach(bufnr)
  local root = find_root(bufnr)
  if not root then
    return
  end
  if vim.lsp.start then
    vim.lsp.start(client_config(root), { bufnr = bufnr })
    return
  end
  local id = started[root]
  if not id or not vim.lsp.get_client_by_id(id) or vim.lsp.get_client_by_id(id).is_stopped() then
    id = vim.lsp.start_client(client_config(root))
    started[root] = id
  end
  if id then
    vim.lsp.buf_attach_client(bufnr, id)
  end
end

-- what the other clients published for this buffer, as LSP diagnostics
local function other_diagnostics(bufnr, client)
  local own = vim.lsp.diagnostic.get_namespace(client.id)
  local out = {}
  for _, d in ipairs(vim.diagnostic.get(bufnr)) do
    if d.namespace ~= own and d.source ~= NAME then
      local lsp = d.user_data and d.user_data.lsp
      if lsp and lsp.range then
        table.insert(out, lsp)
      else
        table.insert(out, {
          range = {
            start = { line = d.lnum, character = d.col },
            ["end"] = { line = d.end_lnum or d.lnum, character = d.end_col or d.col },
          },
          severity = d.severity,
          message = d.message,
          source = d.source,
          code = d.code,
        })
      end
    end
  end
  return out
end

function M.forward_diagnostics(bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local client = M.client(bufnr)
  if not client then
    return
  end
  notify(client, "redline/diagnostics", {
    uri = vim.uri_from_bufnr(bufnr),
    diagnostics = other_diagnostics(bufnr, client),
    source = "nvim",
  })
end

local function done(what)
  return function(err, result)
    M.last_result = { err = err, result = result }
    if err then
      vim.notify("Redline: " .. what .. " failed: " .. (err.message or vim.inspect(err)), vim.log.levels.WARN)
    end
  end
end

-- The buffer's redline client, or nil after telling the user there is none.
local function client_or_warn(bufnr)
  local client = M.client(bufnr)
  if not client then
    vim.notify("Redline: no redline server for this buffer", vim.log.levels.WARN)
  end
  return client
end

-- Mark lines [line1, line2] (1-based, inclusive) as model-written: code pasted from another assistant.
function M.mark(bufnr, line1, line2)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local client = client_or_warn(bufnr)
  if not client then
    return
  end
  local args = {
    uri = vim.uri_from_bufnr(bufnr),
    range = { start = { line = line1 - 1, character = 0 }, ["end"] = { line = line2, character = 0 } },
  }
  request(client, "workspace/executeCommand", { command = "redline.recordInsert", arguments = { args } },
    done("marking"), bufnr)
end

-- Run a review command (redline.comment / markGood / markBad) on the generated span under the cursor.
function M.review(command, text, bufnr)
  bufnr = bufnr or vim.api.nvim_get_current_buf()
  local client = client_or_warn(bufnr)
  if not client then
    return
  end
  local row, col = unpack(vim.api.nvim_win_get_cursor(0))
  local pos = { line = row - 1, character = col }
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(bufnr) },
    range = { start = pos, ["end"] = pos },
    context = { diagnostics = {} },
  }
  request(client, "textDocument/codeAction", params, function(err, actions)
    for _, action in ipairs((not err and actions) or {}) do
      local cmd = action.command
      if type(cmd) == "table" and cmd.command == command then
        local arg = vim.deepcopy(cmd.arguments[1])
        arg.text = text
        request(client, "workspace/executeCommand", { command = command, arguments = { arg } }, done(command), bufnr)
        return
      end
    end
    M.last_result = { err = { message = "no generated span under the cursor" } }
    vim.notify("Redline: no generated span under the cursor", vim.log.levels.INFO)
  end, bufnr)
end

function M.comment(text)
  if text and text ~= "" then
    return M.review("redline.comment", text)
  end
  vim.ui.input({ prompt = "Tell the model what was wrong: " }, function(input)
    if input and input ~= "" then
      M.review("redline.comment", input)
    end
  end)
end

-- `Redline: tell the model what was wrong…` picked from vim.lsp.buf.code_action(): ask for the text here,
-- since a language server cannot open a prompt
local function comment_command(command, ctx)
  vim.ui.input({ prompt = "Tell the model what was wrong: " }, function(input)
    if not input or input == "" then
      return
    end
    local client = vim.lsp.get_client_by_id(ctx.client_id)
    local arg = vim.deepcopy(command.arguments[1])
    arg.text = input
    request(client, "workspace/executeCommand", { command = "redline.comment", arguments = { arg } },
      done("comment"), ctx.bufnr)
  end)
end

local function create_commands()
  local cmd = vim.api.nvim_create_user_command
  cmd("RedlineMark", function(o) M.mark(0, o.line1, o.line2) end,
    { range = true, desc = "Mark the selected lines as model-written" })
  cmd("RedlineComment", function(o) M.comment(o.args) end,
    { nargs = "*", desc = "Tell the model what was wrong with the code under the cursor" })
  cmd("RedlineGood", function(o) M.review("redline.markGood", o.args ~= "" and o.args or nil) end,
    { nargs = "*", desc = "Mark the generated code under the cursor good" })
  cmd("RedlineBad", function(o) M.review("redline.markBad", o.args ~= "" and o.args or nil) end,
    { nargs = "*", desc = "Mark the generated code under the cursor bad" })
  cmd("RedlineStatus", function() print(vim.inspect(M.status)) end, { desc = "Show the last Redline status" })
end

function M.setup(opts)
  M.config = vim.tbl_deep_extend("force", {}, M.defaults, opts or {})
  vim.lsp.commands["redline.comment"] = comment_command
  create_commands()
  local group = vim.api.nvim_create_augroup("redline", { clear = true })
  if vim.lsp.config and vim.lsp.enable then
    local cfg = client_config(nil)
    cfg.root_dir = function(bufnr, on_dir)
      local root = find_root(bufnr)
      if root then
        on_dir(root)
      end
    end
    vim.lsp.config(NAME, cfg)
    vim.lsp.enable(NAME)
  else
    vim.api.nvim_create_autocmd({ "BufReadPost", "BufNewFile" }, { group = group, callback = function(a)
      attach(a.buf)
    end })
    -- buffers already open when setup runs
    for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
      if vim.api.nvim_buf_is_loaded(bufnr) then
        attach(bufnr)
      end
    end
  end
  if M.config.forward_diagnostics then
    pcall(vim.api.nvim_create_autocmd, "DiagnosticChanged", { group = group, callback = function(a)
      M.forward_diagnostics(a.buf)
    end })
  end
end

-- called from plugin/redline.lua: default setup unless the user already called setup()
function M.ensure_setup()
  if not M.config then
    M.setup({})
  end
end

return M
