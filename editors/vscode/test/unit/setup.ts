/** Mocha `require`: resolve `vscode` (and the language client, which needs a real VS Code) to stubs. */
import Module = require('module');

const mod = Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string };
const original = mod._resolveFilename;
mod._resolveFilename = function (request: string, ...rest: unknown[]): string {
  if (request === 'vscode') return require.resolve('./vscode-stub');
  if (request === 'vscode-languageclient/node') return require.resolve('./languageclient-stub');
  return original.call(this, request, ...rest);
};
