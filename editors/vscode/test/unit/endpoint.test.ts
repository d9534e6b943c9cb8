/** Finding the running `redline serve` through its serve.json. */
import * as assert from 'assert';
import { mkdtempSync, writeFileSync } from 'fs';
import { tmpdir } from 'os';
import * as path from 'path';
import { discoverServe, parseServeFile, serveUrl } from '../../src/endpoint';

describe('endpoint discovery', () => {
  it('turns serve.json into a loopback URL', () => {
    assert.strictEqual(serveUrl({ pid: 1, host: '127.0.0.1', port: 8080 }), 'http://127.0.0.1:8080');
    assert.strictEqual(serveUrl({ pid: 1, host: '0.0.0.0', port: 1 }), 'http://127.0.0.1:1');
    assert.strictEqual(serveUrl({ pid: 1, host: '::', port: 2 }), 'http://[::1]:2');
    assert.strictEqual(parseServeFile('{"pid": "x", "host": "h", "port": 1}'), undefined);
    assert.strictEqual(parseServeFile('not json'), undefined);
  });

  it('finds a live server and ignores a stale file or none', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'redline-serve-'));
    assert.strictEqual(await discoverServe(dir), undefined);
    writeFileSync(path.join(dir, 'serve.json'), JSON.stringify({ pid: process.pid, host: '127.0.0.1', port: 9 }));
    assert.strictEqual(await discoverServe(dir), 'http://127.0.0.1:9');
    writeFileSync(path.join(dir, 'serve.json'), JSON.stringify({ pid: 2 ** 30, host: '127.0.0.1', port: 9 }));
    assert.strictEqual(await discoverServe(dir), undefined);
  });
});
