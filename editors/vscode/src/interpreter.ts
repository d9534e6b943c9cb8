/**
 * The Python interpreter that runs `redline lsp`: `redline.interpreter` when set, else the one selected in the
 * Python extension (optional: without it, `python3` on PATH), and a check that `redline` is installed there.
 */

import { execFile } from 'child_process';
import * as vscode from 'vscode';
import { PythonExtension } from '@vscode/python-extension';

export interface Interpreter { path: string; source: string }

export async function pythonExtension(): Promise<PythonExtension | undefined> {
  if (!vscode.extensions.getExtension('ms-python.python')) return undefined;
  try {
    return await PythonExtension.api();
  } catch {
    return undefined;
  }
}

export async function resolveInterpreter(python: PythonExtension | undefined, resource?: vscode.Uri):
Promise<Interpreter> {
  const configured = vscode.workspace.getConfiguration('redline', resource).get<string>('interpreter', '').trim();
  if (configured) return { path: configured, source: 'the redline.interpreter setting' };
  if (python) {
    const active = python.environments.getActiveEnvironmentPath(resource);
    const env = await python.environments.resolveEnvironment(active);
    const exe = env?.executable.uri?.fsPath;
    if (exe) return { path: exe, source: 'the Python extension' };
  }
  return { path: 'python3', source: 'PATH (no interpreter selected)' };
}

/** Undefined when `python -m redline` can run the language server, else the reason (one line). */
export function checkRedline(python: string, cwd?: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(python, ['-c', 'import redline.lsp_server.server'], { cwd, timeout: 30_000 }, (err, _out, stderr) => {
      if (!err) return resolve(undefined);
      const lines = String(stderr).trim().split('\n');
      resolve(lines[lines.length - 1] || err.message);
    });
  });
}

/** Run `python -m redline ARGS` in `cwd`; resolves stdout, rejects with the last line of stderr. */
export function runRedline(python: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(python, ['-m', 'redline', ...args], { cwd, timeout: 120_000 }, (err, out, stderr) => {
      if (!err) return resolve(String(out).trim());
      const lines = String(stderr).trim().split('\n');
      reject(new Error(lines[lines.length - 1] || err.message));
    });
  });
}
