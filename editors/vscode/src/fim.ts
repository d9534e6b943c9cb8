/**
 * Fill-in-the-middle requests to a completion server, in the three shapes editor plugins use, and the generation
 * id Redline returns with each answer (`X-Redline-Generation`, else the response's `id`). Plain data, no `vscode`.
 */

export type EndpointKind = 'openai' | 'llamacpp' | 'ollama';

export interface FimSettings {
  endpoint: string;
  kind: EndpointKind;
  model: string;
  maxTokens: number;
  prefixChars: number;
  suffixChars: number;
}

export interface FimRequest { url: string; body: Record<string, unknown> }

export interface Completion { text: string; generationId?: string; model?: string }

/** The text before and after the cursor offset, cut to the configured windows. */
export function fimContext(text: string, offset: number, prefixChars: number, suffixChars: number):
{ prefix: string; suffix: string } {
  return {
    prefix: text.slice(Math.max(0, offset - prefixChars), offset),
    suffix: text.slice(offset, offset + suffixChars),
  };
}

/** `http://host:port`, `http://host:port/` and `http://host:port/v1` all name the same server. */
export function baseUrl(endpoint: string): string {
  return endpoint.trim().replace(/\/+$/, '').replace(/\/v1$/, '');
}

export function buildRequest(s: FimSettings, prefix: string, suffix: string): FimRequest {
  const base = baseUrl(s.endpoint);
  const model = s.model ? { model: s.model } : {};
  switch (s.kind) {
    case 'llamacpp':
      return { url: `${base}/infill`,
        body: { input_prefix: prefix, input_suffix: suffix, n_predict: s.maxTokens, temperature: 0, stream: false } };
    case 'ollama':
      return { url: `${base}/api/generate`,
        body: { ...model, prompt: prefix, suffix, stream: false, options: { num_predict: s.maxTokens, temperature: 0 } } };
    default:
      return { url: `${base}/v1/completions`,
        body: { ...model, prompt: prefix, suffix, max_tokens: s.maxTokens, temperature: 0, stream: false } };
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The completion text and generation id from a response body; throws naming the missing field. */
export function parseResponse(kind: EndpointKind, body: unknown, header?: string | null): Completion {
  if (!isObject(body)) throw new Error('the completion server answered with something that is not a JSON object');
  let text: unknown;
  if (kind === 'llamacpp') text = body.content;
  else if (kind === 'ollama') text = body.response;
  else text = Array.isArray(body.choices) && isObject(body.choices[0]) ? body.choices[0].text : undefined;
  if (typeof text !== 'string') {
    const field = kind === 'llamacpp' ? 'content' : kind === 'ollama' ? 'response' : 'choices[0].text';
    throw new Error(`the completion server's answer has no ${field}`);
  }
  const id = header || (typeof body.id === 'string' ? body.id : undefined);
  const model = typeof body.model === 'string' ? body.model : undefined;
  return { text, ...(id ? { generationId: id } : {}), ...(model ? { model } : {}) };
}

/** POST the request; `signal` aborts it when the user types on. */
export async function requestCompletion(s: FimSettings, prefix: string, suffix: string, signal: AbortSignal,
  fetchFn: typeof fetch = fetch): Promise<Completion> {
  const req = buildRequest(s, prefix, suffix);
  const res = await fetchFn(req.url, {
    method: 'POST', signal, headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(req.body),
  });
  if (!res.ok) {
    const detail = (await res.text()).slice(0, 200);
    throw new Error(`${req.url} answered ${res.status}: ${detail}`);
  }
  return parseResponse(s.kind, await res.json(), res.headers.get('x-redline-generation'));
}
