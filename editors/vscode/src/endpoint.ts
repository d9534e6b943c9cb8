/**
 * Where completions come from: `redline.endpoint` when set, else the `redline serve` running for this repository,
 * found through the `serve.json` it writes into the repo's state directory ({pid, host, port}) and removes on exit.
 */

import { execFile } from 'child_process';
import { readFile } from 'fs/promises';
import * as path from 'path';

export interface ServeInfo { pid: number; host: string; port: number }

/** `http://host:port` for a serve.json payload (a wildcard bind is reached on loopback). */
export function serveUrl(info: ServeInfo): string {
  let host = info.host === '0.0.0.0' || info.host === '' ? '127.0.0.1' : info.host === '::' ? '::1' : info.host;
  if (host.includes(':') && !host.startsWith('[')) host = `[${host}]`;
  return `http://${host}:${info.port}`;
}

export function parseServeFile(text: string): ServeInfo | undefined {
  try {
    const d = JSON.parse(text) as Record<string, unknown>;
    const pid = Number(d.pid), port = Number(d.port);
    if (!Number.isInteger(pid) || !Number.isInteger(port) || typeof d.host !== 'string') return undefined;
    return { pid, host: d.host, port };
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The repository's state directory, as the installed redline computes it (REDLINE_HOME, state_dir, …). */
export function stateDir(python: string, root: string): Promise<string> {
  const code = 'import sys; from redline.config import load_config; print(load_config(sys.argv[1]).state_dir)';
  return new Promise((resolve, reject) => {
    execFile(python, ['-c', code, root], { timeout: 30_000 }, (err, out) =>
      err ? reject(err) : resolve(String(out).trim()));
  });
}

/** The URL of the live `redline serve` for the state directory, or undefined when none runs. */
export async function discoverServe(state: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(state, 'serve.json'), 'utf8');
  } catch {
    return undefined;
  }
  const info = parseServeFile(text);
  return info && alive(info.pid) ? serveUrl(info) : undefined;
}
