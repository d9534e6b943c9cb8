/** Fill-in-the-middle request building and response parsing for the three endpoint shapes. */
import * as assert from 'assert';
import { FimSettings, baseUrl, buildRequest, fimContext, parseResponse, requestCompletion } from '../../src/fim';

const s: FimSettings = { endpoint: 'http://127.0.0.1:8080/', kind: 'openai', model: '', maxTokens: 32,
  prefixChars: 5, suffixChars: 3 };

describe('fim', () => {
  it('cuts the prefix and suffix windows around the cursor', () => {
    assert.deepStrictEqual(fimContext('0123456789abcdef', 10, 5, 3), { prefix: '56789', suffix: 'abc' });
    assert.deepStrictEqual(fimContext('abc', 1, 100, 100), { prefix: 'a', suffix: 'bc' });
  });

  it('accepts a base URL with or without a trailing slash or /v1', () => {
    for (const e of ['http://h:1', 'http://h:1/', 'http://h:1/v1', 'http://h:1/v1/ ']) assert.strictEqual(baseUrl(e), 'http://h:1');
  });

  it('builds an OpenAI completions request with suffix', () => {
    assert.deepStrictEqual(buildRequest(s, 'def f(', '):'), {
      url: 'http://127.0.0.1:8080/v1/completions',
      body: { prompt: 'def f(', suffix: '):', max_tokens: 32, temperature: 0, stream: false },
    });
    assert.strictEqual(buildRequest({ ...s, model: 'm' }, 'a', 'b').body.model, 'm');
  });

  it('builds llama.cpp /infill and Ollama /api/generate requests', () => {
    assert.deepStrictEqual(buildRequest({ ...s, kind: 'llamacpp' }, 'p', 'q'), {
      url: 'http://127.0.0.1:8080/infill',
      body: { input_prefix: 'p', input_suffix: 'q', n_predict: 32, temperature: 0, stream: false },
    });
    assert.deepStrictEqual(buildRequest({ ...s, kind: 'ollama', model: 'qwen' }, 'p', 'q'), {
      url: 'http://127.0.0.1:8080/api/generate',
      body: { model: 'qwen', prompt: 'p', suffix: 'q', stream: false, options: { num_predict: 32, temperature: 0 } },
    });
  });

  it('takes the generation id from X-Redline-Generation, else the body id', () => {
    const body = { id: 'body-id', model: 'tiny', choices: [{ text: 'x)' }] };
    assert.deepStrictEqual(parseResponse('openai', body, 'hdr-id'), { text: 'x)', generationId: 'hdr-id', model: 'tiny' });
    assert.deepStrictEqual(parseResponse('openai', body, null), { text: 'x)', generationId: 'body-id', model: 'tiny' });
    assert.deepStrictEqual(parseResponse('llamacpp', { content: 'y' }, 'h'), { text: 'y', generationId: 'h' });
    assert.deepStrictEqual(parseResponse('ollama', { response: 'z' }), { text: 'z' });
  });

  it('names the missing field of a bad answer', () => {
    assert.throws(() => parseResponse('openai', { choices: [] }), /choices\[0\]\.text/);
    assert.throws(() => parseResponse('llamacpp', [1]), /not a JSON object/);
  });

  it('posts JSON and reports an HTTP error with its status', async () => {
    const calls: Array<{ url: string; init: RequestInit }> = [];
    const ok = (async (url: string, init: RequestInit) => {
      calls.push({ url, init });
      return new Response(JSON.stringify({ id: 'cmpl-1', choices: [{ text: 'r)' }] }),
        { headers: { 'X-Redline-Generation': 'gen-1' } });
    }) as unknown as typeof fetch;
    const got = await requestCompletion(s, 'f(', ')', new AbortController().signal, ok);
    assert.deepStrictEqual(got, { text: 'r)', generationId: 'gen-1' });
    assert.strictEqual(calls[0].init.method, 'POST');
    assert.deepStrictEqual(JSON.parse(String(calls[0].init.body)).suffix, ')');
    const bad = (async () => new Response('{"error": "model not loaded"}', { status: 503 })) as unknown as typeof fetch;
    await assert.rejects(requestCompletion(s, 'a', 'b', new AbortController().signal, bad), /503: .*model not loaded/);
  });
});
