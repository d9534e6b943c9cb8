-- Loaded at startup: set Redline up with defaults unless init.lua already called require("redline").setup{}.
-- Set vim.g.redline_manual_setup = true to only ever set it up yourself.
if vim.g.loaded_redline or vim.fn.has("nvim-0.7") == 0 then
  return
end
vim.g.loaded_redline = true
if not vim.g.redline_manual_setup then
  require("redline").ensure_setup()
end
