// Proves that the money-movement lane (plain deposits, withdrawals and transfers served over HTTP
// without Hono) answers every request exactly as the Hono routes do, hands everything unusual on
// to them with its body, and counts in the same metrics, audit trail and rate limit.
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { WebProcess } from '../../src/app/web-process';
import { expectInvariants } from '../support/invariants';
import { createTestEnv, type TestEnv } from '../support/test-env';
import { caller, createTestWeb, type Call } from '../support/web';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv({ partitions: 4 });
});
afterAll(async () => {
  await env?.cleanup();
});

type Answer = Awaited<ReturnType<Call>>;

/** `first` half the time, else one of `others`. */
function usually<T>(first: T, ...others: T[]) {
  return fc.oneof(
    { arbitrary: fc.constant(first), weight: 1 },
    { arbitrary: fc.constantFrom(...others), weight: 1 },
  );
}

/** Headers that differ per connection or per request whoever answers. */
const TRANSPORT = new Set(['date', 'connection', 'keep-alive', 'content-length']);

/** An answer with what must differ between two recordings (ids, times) taken out. */
function comparable(a: Answer, sentRequestId: boolean) {
  const headers: Record<string, string> = {};
  a.headers.forEach((value, name) => {
    if (TRANSPORT.has(name)) return;
    if (name === 'location' || (name === 'x-request-id' && !sentRequestId)) {
      headers[name] = '(varies)';
      return;
    }
    headers[name] = value;
  });
  const json =
    typeof a.json === 'object' && a.json !== null
      ? { ...a.json, ...('created_at' in a.json ? { id: '(varies)', created_at: '(varies)' } : {}) }
      : a.json;
  return { status: a.status, headers, json };
}

describe('the money-movement lane', () => {
  let web: WebProcess;
  let overHttp: Call;
  let inProcess: Call;
  let reader: string;
  let accounts: string[];
  let port: number;

  beforeAll(async () => {
    web = await createTestWeb(env);
    port = await web.listen(0);
    overHttp = caller(`http://127.0.0.1:${port}`, env.config.adminApiKey!);
    inProcess = caller(web, env.config.adminApiKey!);
    const made = await inProcess('POST', '/v1/api-keys', {
      body: { name: 'reader', scopes: ['read'] },
    });
    reader = made.json.secret;
    accounts = (await Promise.all([env.account(), env.account()])).map((a) => a.id);
    // Both keys known to the process, as they are after a key's first request.
    await overHttp('GET', '/v1/transfers');
    await overHttp('GET', '/v1/transfers', { key: reader });
  });
  afterAll(async () => {
    await web?.stop();
  });

  it('answers what Hono answers, for any mix of good and bad bodies and headers', async () => {
    const [a, b] = accounts as [string, string];
    const bodies = {
      '/v1/deposits': [
        { account_id: a, amount: '100', currency: 'EUR' },
        { account_id: a, amount: 100, currency: 'EUR' },
        { account_id: a, amount: '100', currency: 'EUR', expires_at: '2099-01-01T00:00:00Z' },
      ],
      '/v1/withdrawals': [{ account_id: a, amount: '7', currency: 'EUR' }],
      '/v1/transfers': [
        { from_account_id: a, to_account_id: b, amount: '25', currency: 'EUR' },
        { from_account_id: a, to_account_id: b, amount: '25', currency: 'EUR', description: 'x' },
      ],
    } as const;
    const flaws: Record<string, (body: Record<string, unknown>) => string> = {
      none: (body) => JSON.stringify(body),
      exponent: (body) => JSON.stringify(body).replace(/"amount":"?(\d+)"?/, '"amount":1e3'),
      fraction: (body) => JSON.stringify(body).replace(/"amount":"?(\d+)"?/, '"amount":"1.5"'),
      repeatedKey: (body) => JSON.stringify(body).replace(/^\{/, '{"currency":"USD",'),
      unknownField: (body) => JSON.stringify({ ...body, extra: 1 }),
      missingCurrency: (body) => JSON.stringify({ ...body, currency: undefined }),
      notJson: (body) => JSON.stringify(body).slice(0, -1),
      sameAccounts: (body) => JSON.stringify({ ...body, to_account_id: body.from_account_id }),
      aboveMax: (body) => JSON.stringify({ ...body, amount: '999999999999999999' }),
      inactiveCurrency: (body) => JSON.stringify({ ...body, currency: 'XTS' }),
      nul: (body) => JSON.stringify({ ...body, description: 'a\u0000b' }),
      array: () => '[]',
    };
    const servedBefore = web.lane.served;
    let servedExpected = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...(Object.keys(bodies) as (keyof typeof bodies)[])),
        fc.nat(),
        // About one request in ten is plain (what the lane answers itself), the rest flawed.
        usually('none', ...Object.keys(flaws).filter((f) => f !== 'none')),
        usually('admin', 'reader', 'unknown', 'none'),
        usually('fresh', 'missing', 'tooLong', 'unprintable'),
        fc.constantFrom('application/json', 'application/json; charset=utf-8', 'text/plain'),
        fc.constantFrom(undefined, 'wait=0', 'wait=abc', 'respond-async'),
        fc.constantFrom(undefined, 'client-request-1', 'bad id with spaces'),
        async (path, pick, flaw, key, idem, contentType, prefer, requestId) => {
          const choices = bodies[path];
          const text = flaws[flaw]!({ ...choices[pick % choices.length] });
          const keyOf = { admin: undefined, reader, unknown: 'llk_nobody', none: null }[key];
          const headers = (): Record<string, string> => ({
            'content-type': contentType,
            ...(idem === 'fresh' ? { 'idempotency-key': randomUUID() } : {}),
            ...(idem === 'tooLong' ? { 'idempotency-key': 'k'.repeat(256) } : {}),
            ...(idem === 'unprintable' ? { 'idempotency-key': 'k\u00e9y' } : {}),
            ...(prefer ? { prefer } : {}),
            ...(requestId ? { 'x-request-id': requestId } : {}),
          });
          const served = web.lane.served;
          const lane = await overHttp('POST', path, {
            rawBody: text,
            key: keyOf,
            headers: headers(),
          });
          const hono = await inProcess('POST', path, {
            rawBody: text,
            key: keyOf,
            headers: headers(),
          });
          const sent = requestId === 'client-request-1';
          expect(comparable(lane, sent)).toEqual(comparable(hono, sent));
          const plain = lane.status === 202;
          expect(web.lane.served - served).toBe(plain ? 1 : 0);
          if (plain) servedExpected += 1;
        },
      ),
      { numRuns: 150 },
    );
    expect(web.lane.served - servedBefore).toBe(servedExpected);
    expect(servedExpected).toBeGreaterThan(0);
  });

  it('replays a key it has seen and refuses a key reused with another body, as Hono does', async () => {
    const [a, b] = accounts as [string, string];
    const body = { from_account_id: a, to_account_id: b, amount: '3', currency: 'EUR' };
    const pair = async (call: Call) => {
      const idem = randomUUID();
      const first = await call('POST', '/v1/transfers', { body, idem });
      const again = await call('POST', '/v1/transfers', { body, idem });
      const other = await call('POST', '/v1/transfers', { body: { ...body, amount: '4' }, idem });
      expect(first.status).toBe(202);
      expect(again.json.id).toBe(first.json.id);
      return [again, other].map((r) => comparable(r, false));
    };
    const served = web.lane.served;
    expect(await pair(overHttp)).toEqual(await pair(inProcess));
    expect(web.lane.served - served).toBe(3);
    const [replay, reused] = await pair(overHttp);
    expect(replay!.status).toBe(200);
    expect(replay!.headers['idempotent-replayed']).toBe('true');
    expect(reused!.status).toBe(422);
    expect(reused!.json.code).toBe('idempotency_key_reused');
  });

  it('refuses an Idempotency-Key sent on two lines, lane and routes alike, recording nothing', async () => {
    const [a, b] = accounts as [string, string];
    /** fetch() joins repeated headers into one line; node:http sends an array as lines. */
    const post = (path: string, keys: string | string[], body: object) =>
      new Promise<{ status: number; json: any }>((resolve, reject) => {
        const text = JSON.stringify(body);
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path,
            headers: {
              authorization: `Bearer ${env.config.adminApiKey!}`,
              'content-type': 'application/json',
              'content-length': Buffer.byteLength(text),
              'idempotency-key': keys,
            },
          },
          (res) => {
            let raw = '';
            res.setEncoding('utf8');
            res.on('data', (chunk: string) => (raw += chunk));
            res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(raw) }));
          },
        );
        req.on('error', reject);
        req.end(text);
      });
    const recorded = async (...keys: string[]) =>
      (
        await env.pool.query(
          'SELECT count(*)::int AS n FROM transfers WHERE idempotency_key = ANY($1)',
          [keys],
        )
      ).rows[0].n as number;

    const moved = await post('/v1/transfers', randomUUID(), {
      from_account_id: a,
      to_account_id: b,
      amount: '2',
      currency: 'EUR',
    });
    expect(moved.status).toBe(202);
    const served = web.lane.served;
    const [k1, k2] = [randomUUID(), randomUUID()];
    const twice = [
      post('/v1/deposits', [k1, k2], { account_id: a, amount: '1', currency: 'EUR' }),
      post('/v1/withdrawals', [k1, k2], { account_id: a, amount: '1', currency: 'EUR' }),
      post('/v1/transfers', [k1, k2], {
        from_account_id: a,
        to_account_id: b,
        amount: '1',
        currency: 'EUR',
      }),
      // Served by the routes only: the lane never sees a reversal.
      post(`/v1/transfers/${moved.json.id}/reversals`, [k1, k2], {}),
    ];
    for (const answer of await Promise.all(twice)) {
      expect(answer.status).toBe(400);
      expect(answer.json).toMatchObject({
        code: 'validation_failed',
        detail: 'send one Idempotency-Key header, not several',
        errors: [{ path: 'Idempotency-Key', message: 'repeated' }],
      });
    }
    expect(web.lane.served).toBe(served);
    expect(await recorded(k1, k2, `${k1}, ${k2}`)).toBe(0);
    // One line whose value holds a comma is one key, as before.
    const joined = `${k1}, ${k2}`;
    const once = await post('/v1/deposits', joined, {
      account_id: a,
      amount: '1',
      currency: 'EUR',
    });
    expect(once.status).toBe(202);
    expect(await recorded(joined)).toBe(1);
  });

  it('counts what it serves in the metrics and the audit trail as the routes do', async () => {
    const [a] = accounts as [string];
    const requestId = `lane-${randomUUID()}`;
    const served = web.lane.served;
    const res = await overHttp('POST', '/v1/deposits', {
      body: { account_id: a, amount: '5', currency: 'EUR' },
      idem: randomUUID(),
      headers: { 'x-request-id': requestId },
    });
    expect(res.status).toBe(202);
    expect(res.headers.get('x-request-id')).toBe(requestId);
    expect(web.lane.served - served).toBe(1);
    await web.deps.audit.flush();
    const trail = await env.pool.query(
      'SELECT action, target_id, status, api_key_id FROM audit_events WHERE request_id = $1',
      [requestId],
    );
    expect(trail.rows).toEqual([
      { action: 'deposit.create', target_id: res.json.id, status: 202, api_key_id: 'admin' },
    ]);
    const metrics = (await overHttp('GET', '/metrics')).json as string;
    expect(metrics).toMatch(
      /ledgerline_http_requests_total\{method="POST",route="\/v1\/deposits",status="202"\} [1-9]/,
    );
    expect(metrics).toMatch(
      /ledgerline_submissions_total\{type="deposit",result="accepted"\} [1-9]/,
    );
  });
});

describe('the money-movement lane under its limits', () => {
  let web: WebProcess | undefined;
  afterEach(async () => {
    await web?.stop();
    web = undefined;
  });

  it('shares the key rate limit with the routes: past the burst, 429 with Retry-After', async () => {
    web = await createTestWeb(env, { rateLimit: { perSecond: 1, burst: 5 } });
    const http = caller(`http://127.0.0.1:${await web.listen(0)}`, env.config.adminApiKey!);
    const a = await env.account();
    const send = () =>
      http('POST', '/v1/deposits', {
        body: { account_id: a.id, amount: '1', currency: 'EUR' },
        idem: randomUUID(),
      });
    const answers = [];
    for (let i = 0; i < 8; i++) answers.push(await send());
    // The first request's key lookup goes through Hono; each takes one token either way.
    expect(answers.map((r) => r.status)).toEqual([202, 202, 202, 202, 202, 429, 429, 429]);
    expect(answers[5]!.headers.get('retry-after')).toMatch(/^[1-9][0-9]*$/);
    expect(answers[5]!.json.code).toBe('rate_limited');
    expect(web.lane.served).toBe(4);
  });

  it('past the intake bound: 503 overloaded with Retry-After, answered by the lane, nothing recorded', async () => {
    web = await createTestWeb(env, {}, { backlogLegsMax: 0 });
    const http = caller(`http://127.0.0.1:${await web.listen(0)}`, env.config.adminApiKey!);
    await http('GET', '/v1/transfers');
    const a = await env.account();
    const before = await env.pool.query('SELECT count(*)::int AS n FROM transfers');
    const served = web.lane.served;
    const res = await http('POST', '/v1/deposits', {
      body: { account_id: a.id, amount: '1', currency: 'EUR' },
      idem: randomUUID(),
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect(res.headers.get('retry-after')).toMatch(/^[1-9][0-9]*$/);
    expect(res.json.code).toBe('overloaded');
    expect(web.lane.served - served).toBe(1);
    const after = await env.pool.query('SELECT count(*)::int AS n FROM transfers');
    expect(after.rows[0].n).toBe(before.rows[0].n);
    const metrics = (await http('GET', '/metrics')).json as string;
    expect(metrics).toMatch(/ledgerline_admission_refusals_total\{code="overloaded"\} 1/);
  });
});

describe('Prefer: wait through the money-movement lane', () => {
  let web: WebProcess;
  let http: Call;
  let port: number;
  beforeAll(async () => {
    web = await createTestWeb(env);
    port = await web.listen(0);
    http = caller(`http://127.0.0.1:${port}`, env.config.adminApiKey!);
    await http('GET', '/v1/transfers');
  });
  afterAll(async () => {
    await web?.stop();
  });

  it('with nothing applying it, waits out the preference and answers 202 pending', async () => {
    const a = await env.account();
    const served = web.lane.served;
    const started = Date.now();
    const res = await http('POST', '/v1/deposits', {
      body: { account_id: a.id, amount: '5', currency: 'EUR' },
      idem: randomUUID(),
      headers: { prefer: 'wait=1' },
    });
    expect(res.status).toBe(202);
    expect(res.json.status).toBe('pending');
    expect(res.headers.get('preference-applied')).toBe('wait=1');
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(web.lane.served - served).toBe(1);
  });

  /** A deposit that asks to wait 20 s for its outcome, sent with `signal`. */
  const waitingDeposit = (accountId: string, signal: AbortSignal): RequestInit => ({
    method: 'POST',
    signal,
    headers: {
      authorization: `Bearer ${env.config.adminApiKey!}`,
      'content-type': 'application/json',
      'idempotency-key': randomUUID(),
      prefer: 'wait=20',
    },
    body: JSON.stringify({ account_id: accountId, amount: '5', currency: 'EUR' }),
  });

  it('stops waiting for a client that hung up', async () => {
    const a = await env.account();
    const hangUp = new AbortController();
    const sent = fetch(
      `http://127.0.0.1:${port}/v1/deposits`,
      waitingDeposit(a.id, hangUp.signal),
    ).catch(() => 'hung up');
    // Up to 10 s to be recorded and start waiting: the whole suite runs beside it.
    for (let i = 0; i < 500 && web.deps.waiter.waiting === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(web.deps.waiter.waiting).toBe(1);
    hangUp.abort();
    expect(await sent).toBe('hung up');
    for (let i = 0; i < 100 && web.deps.waiter.waiting > 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(web.deps.waiter.waiting).toBe(0);
  });

  it('in process, a request whose signal was aborted already records and does not wait', async () => {
    // The routes' path without Node's response (app.request(), as a test or an embedder calls
    // it): the client is gone before the wait begins, so the answer is the 202 at once.
    const a = await env.account();
    const gone = new AbortController();
    gone.abort();
    const startedMs = performance.now();
    const res = await web.app.request('/v1/deposits', waitingDeposit(a.id, gone.signal));
    expect(res.status).toBe(202);
    expect(performance.now() - startedMs).toBeLessThan(5_000);
    expect(web.deps.waiter.waiting).toBe(0);
  });

  it('answers 200 with the final transfer once a worker applies it', async () => {
    await env.startWorker();
    const [a, b] = await Promise.all([env.account(), env.account()]);
    const move = (path: string, body: object) =>
      http('POST', path, { body, idem: randomUUID(), headers: { prefer: 'wait=10' } });
    const served = web.lane.served;
    const dep = await move('/v1/deposits', { account_id: a.id, amount: '100', currency: 'EUR' });
    expect(dep.status).toBe(200);
    expect(dep.json).toMatchObject({ status: 'completed', to_balance_after: '100' });
    const t = await move('/v1/transfers', {
      from_account_id: a.id,
      to_account_id: b.id,
      amount: '60',
      currency: 'EUR',
    });
    expect(t.status).toBe(200);
    expect(t.headers.get('preference-applied')).toBe('wait=10');
    expect(t.json).toMatchObject({ status: 'completed', from_balance_after: '40' });
    const short = await move('/v1/withdrawals', {
      account_id: a.id,
      amount: '41',
      currency: 'EUR',
    });
    expect(short.status).toBe(200);
    expect(short.json).toMatchObject({ status: 'failed', failure_code: 'insufficient_funds' });
    expect(web.lane.served - served).toBe(3);
    await expectInvariants(env.pool);
  });
});
