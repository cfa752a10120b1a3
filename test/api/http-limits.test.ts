// Proves that a client has a bounded time to send its request (headers, then all of it), that what
// Node's parser refuses is answered as problem+json like every other error, that a request cut
// off records nothing, and that the bound does not cut a long-poll whose request has arrived.
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebProcess } from '../../src/app/web-process';
import { HTTP_HEADERS_BYTES_MAX } from '../../src/config/limits';
import { createTestEnv, type TestEnv } from '../support/test-env';
import { createTestWeb } from '../support/web';

let env: TestEnv;
let web: WebProcess;
let port: number;
let account: string;
const HEADERS_MS = 500;
const REQUEST_MS = 1_000;

beforeAll(async () => {
  env = await createTestEnv({ partitions: 2 });
  web = await createTestWeb(env, {}, { receive: { headersMs: HEADERS_MS, requestMs: REQUEST_MS } });
  port = await web.listen(0);
  account = (await env.account()).id;
});
afterAll(async () => {
  await web?.stop();
  await env?.cleanup();
});

/** Sends `text` on a fresh connection, then nothing; resolves with all it hears until closed. */
function sendAndStall(text: string): Promise<{ raw: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const startedMs = performance.now();
    const socket = connect(port, '127.0.0.1', () => socket.write(text));
    let raw = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (raw += chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve({ raw, ms: performance.now() - startedMs }));
  });
}

/** The status and problem+json body of a raw HTTP/1.1 answer. */
function parsed(raw: string) {
  const [head, body] = raw.split('\r\n\r\n') as [string, string];
  const lines = head.split('\r\n');
  const headers = Object.fromEntries(
    lines
      .slice(1)
      .map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 2)]),
  );
  return { status: Number(lines[0]!.split(' ')[1]), headers, json: JSON.parse(body) };
}

function depositHead(key: string, contentLength: number): string {
  return (
    `POST /v1/deposits HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${env.config.adminApiKey}\r\n` +
    `Idempotency-Key: ${key}\r\nContent-Type: application/json\r\n` +
    `Content-Length: ${contentLength}\r\n\r\n`
  );
}

async function recorded(key: string): Promise<number> {
  const res = await env.pool.query(
    'SELECT count(*)::int AS n FROM transfers WHERE idempotency_key = $1',
    [key],
  );
  return res.rows[0].n;
}

describe('how long a client may take to send a request', () => {
  it('answers a body that stops arriving with 408 problem+json, and records nothing', async () => {
    const key = randomUUID();
    const body = JSON.stringify({ account_id: account, amount: '100', currency: 'EUR' });
    const { raw, ms } = await sendAndStall(depositHead(key, body.length) + body.slice(0, 20));
    const answer = parsed(raw);
    expect(answer.status).toBe(408);
    expect(answer.headers['content-type']).toBe('application/problem+json');
    expect(answer.headers.connection).toBe('close');
    expect(answer.json).toMatchObject({
      status: 408,
      code: 'request_timeout',
      instance: '/v1/deposits',
      detail: `send the headers within ${HEADERS_MS} ms and the whole request within ${REQUEST_MS} ms`,
    });
    // Cut at the bound or soon after (Node looks every HEADERS_MS here; a busy CI adds more), far
    // before Node's own 300 s.
    expect(ms).toBeGreaterThanOrEqual(REQUEST_MS - 50);
    expect(ms).toBeLessThan(REQUEST_MS + 4_000);
    expect(await recorded(key)).toBe(0);
  });

  it('answers headers that stop arriving with 408 problem+json', async () => {
    const { raw, ms } = await sendAndStall('POST /v1/deposits HTTP/1.1\r\nHost: x\r\n');
    const answer = parsed(raw);
    expect(answer.status).toBe(408);
    expect(answer.json).toMatchObject({ code: 'request_timeout' });
    expect(ms).toBeLessThan(REQUEST_MS + 4_000);
  });

  it('answers headers past HTTP_HEADERS_BYTES_MAX with 431, and bytes that are not HTTP with 400', async () => {
    const withHeaderBytes = (bytes: number) =>
      sendAndStall(
        `GET /v1/transfers HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: ${'a'.repeat(bytes)}\r\n\r\n`,
      );
    // Just under the bound: read, and refused for what it lacks (a key), not for its size.
    const under = await withHeaderBytes(HTTP_HEADERS_BYTES_MAX - 1_024);
    expect(parsed(under.raw)).toMatchObject({ status: 401, json: { code: 'unauthorized' } });
    const huge = await withHeaderBytes(HTTP_HEADERS_BYTES_MAX + 1_024);
    expect(parsed(huge.raw)).toMatchObject({
      status: 431,
      json: { status: 431, code: 'headers_too_large' },
    });
    const garbage = await sendAndStall('HELLO THERE\r\n\r\n');
    expect(parsed(garbage.raw)).toMatchObject({
      status: 400,
      json: { status: 400, code: 'malformed_request' },
    });
  });

  it('answers an HTTP/1.1 request without a Host header with 400 problem+json, and records nothing', async () => {
    const key = randomUUID();
    const body = JSON.stringify({ account_id: account, amount: '100', currency: 'EUR' });
    const head = depositHead(key, body.length).replace('Host: x\r\n', 'Connection: close\r\n');
    const { raw } = await sendAndStall(head + body);
    const answer = parsed(raw);
    expect(answer.status).toBe(400);
    expect(answer.headers['content-type']).toBe('application/problem+json');
    expect(answer.json).toMatchObject({
      status: 400,
      code: 'malformed_request',
      instance: '/v1/deposits',
      detail: 'an HTTP/1.1 request needs a Host header',
    });
    expect(await recorded(key)).toBe(0);
    // HTTP/1.0 has no Host header to require: such a request is read as any other.
    const old = await sendAndStall('GET /v1/transfers HTTP/1.0\r\n\r\n');
    expect(parsed(old.raw)).toMatchObject({ status: 401, json: { code: 'unauthorized' } });
  });

  it('does not cut a long-poll: the bound is on receiving the request, not on answering it', async () => {
    // No worker runs here, so the deposit stays pending and the request waits its full 2 s.
    const key = randomUUID();
    const startedMs = performance.now();
    const res = await fetch(`http://127.0.0.1:${port}/v1/deposits`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${env.config.adminApiKey}`,
        'idempotency-key': key,
        'content-type': 'application/json',
        prefer: 'wait=2',
      },
      body: JSON.stringify({ account_id: account, amount: '100', currency: 'EUR' }),
    });
    expect(res.status).toBe(202);
    expect(((await res.json()) as { status: string }).status).toBe('pending');
    expect(performance.now() - startedMs).toBeGreaterThan(2 * REQUEST_MS - 100);
    expect(await recorded(key)).toBe(1);
  });
});
