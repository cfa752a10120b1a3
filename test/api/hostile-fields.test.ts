// Proves, field by field, that no string an HTTP client can send reaches a 5xx: every endpoint of
// the OpenAPI document, every body field, path and query parameter and header, with the whole
// Unicode range (control characters and lone surrogates included), very long values and
// repeated JSON keys. A refusal is problem+json and changes nothing; what is accepted is stored
// exactly as sent. The endpoints come from the document itself, so a new one cannot be missed.
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebProcess } from '../../src/app/web-process';
import { drained, expectInvariants } from '../support/invariants';
import { createTestEnv, type TestEnv } from '../support/test-env';
import { createTestWeb } from '../support/web';

const ADMIN = 'test-admin-key-0123456789';
let env: TestEnv;
let web: WebProcess;
let doc: OpenApiDoc;
let ids: { account: string; other: string; completed: string; apiKey: string };

type Param = { in: 'path' | 'query' | 'header'; name: string };
type Operation = { parameters?: Param[]; requestBody?: { content: Record<string, unknown> } };
type OpenApiDoc = { paths: Record<string, Record<string, Operation>> };

/** A request each operation accepts as it is; the property replaces one part of it. */
type Base = {
  path: Record<string, string>;
  query: Record<string, string>;
  body?: Record<string, unknown>;
};
const BASES: Record<string, () => Base> = {
  'POST /v1/accounts': () => ({
    path: {},
    query: {},
    body: { holder: 'h', currency: 'EUR', overdraft_limit: '0' },
  }),
  'GET /v1/accounts/{id}': () => ({ path: { id: ids.account }, query: {} }),
  'POST /v1/accounts/{id}/close': () => ({ path: { id: ids.account }, query: {} }),
  'GET /v1/accounts/{id}/events': () => ({
    path: { id: ids.account },
    query: { last_event_id: '1' },
  }),
  'GET /v1/accounts/{id}/entries': () => ({
    path: { id: ids.account },
    query: { limit: '2', cursor: '' },
  }),
  'POST /v1/deposits': () => ({
    path: {},
    query: {},
    body: { account_id: ids.account, amount: '1', currency: 'EUR' },
  }),
  'POST /v1/withdrawals': () => ({
    path: {},
    query: {},
    body: { account_id: ids.account, amount: '1', currency: 'EUR' },
  }),
  'POST /v1/transfers': () => ({
    path: {},
    query: {},
    body: {
      from_account_id: ids.account,
      to_account_id: ids.other,
      amount: '1',
      currency: 'EUR',
      description: 'd',
    },
  }),
  'POST /v1/transfers/{id}/reversals': () => ({
    path: { id: ids.completed },
    query: {},
    body: { amount: '1' },
  }),
  'POST /v1/transfers/{id}/cancel': () => ({ path: { id: ids.completed }, query: {} }),
  'GET /v1/transfers/{id}': () => ({ path: { id: ids.completed }, query: { wait: '0' } }),
  'POST /v1/api-keys': () => ({ path: {}, query: {}, body: { name: 'n', scopes: ['read'] } }),
  'DELETE /v1/api-keys/{id}': () => ({ path: { id: ids.apiKey }, query: {} }),
  'GET /v1/api-keys': () => ({ path: {}, query: { limit: '2' } }),
  'POST /v1/interest-runs': () => ({
    path: {},
    query: {},
    body: { annual_rate_bps: 0, as_of: '2020-01-01' },
  }),
  'GET /v1/reconciliation': () => ({ path: {}, query: {} }),
  'GET /v1/interest-runs/{id}': () => ({ path: { id: '2020-01-01' }, query: {} }),
  'GET /v1/audit-events': () => ({ path: {}, query: { limit: '2' } }),
};
/** Headers every request may carry, hostile or not, besides each operation's own. */
const COMMON_HEADERS = [
  'authorization',
  'content-type',
  'idempotency-key',
  'accept',
  'content-length',
  'x-request-id',
  'last-event-id',
  'user-agent',
];

beforeAll(async () => {
  env = await createTestEnv();
  web = await createTestWeb(env);
  doc = (await (await web.app.request('/openapi.json')).json()) as OpenApiDoc;
  const post = async (path: string, body: unknown, idem?: string) => {
    const res = await web.app.request(path, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${ADMIN}`,
        'content-type': 'application/json',
        ...(idem ? { 'idempotency-key': idem } : {}),
      },
      body: JSON.stringify(body),
    });
    return (await res.json()) as { id: string };
  };
  const account = (await post('/v1/accounts', { holder: 'a', currency: 'EUR' })).id;
  const other = (await post('/v1/accounts', { holder: 'b', currency: 'EUR' })).id;
  await env.startWorker();
  const dep = await post(
    '/v1/deposits',
    { account_id: account, amount: '1000000', currency: 'EUR' },
    'seed',
  );
  const t = await post(
    '/v1/transfers',
    { from_account_id: account, to_account_id: other, amount: '1000', currency: 'EUR' },
    'seed-t',
  );
  await env.waitForFinal([dep.id, t.id]);
  const apiKey = (await post('/v1/api-keys', { name: 'revocable', scopes: ['read'] })).id;
  ids = { account, other, completed: t.id, apiKey };
});
afterAll(async () => {
  await web.stop();
  await env.cleanup();
});

function operations(): { key: string; method: string; path: string; op: Operation }[] {
  return Object.entries(doc.paths).flatMap(([path, ops]) =>
    Object.entries(ops).map(([method, op]) => ({
      key: `${method.toUpperCase()} ${path}`,
      method: method.toUpperCase(),
      path,
      op,
    })),
  );
}

/** Any code point, lone surrogate halves included (a JavaScript string can hold them). */
const codePoint = fc
  .integer({ min: 0, max: 0x10ffff })
  .map((cp) => (cp >= 0xd800 && cp <= 0xdfff ? String.fromCharCode(cp) : String.fromCodePoint(cp)));
const hostile = fc.oneof(
  fc.string({ unit: codePoint, maxLength: 40 }),
  fc.string({ unit: fc.integer({ min: 0, max: 0x1f }).map((c) => String.fromCharCode(c)) }),
  fc
    .tuple(
      fc.string({ unit: codePoint, minLength: 1, maxLength: 4 }),
      fc.integer({ min: 50, max: 6000 }),
    )
    .map(([s, n]) => s.repeat(n)),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    '\uD800',
    '\uDFFF',
    '\uFEFF',
    '\u202E',
    'a\u0000b',
    '%00',
    '%',
    '../../etc/passwd',
    "'; DROP TABLE transfers; --",
    '9'.repeat(40),
    '-1',
    '1e3',
    '٣',
    'EUR\u0000',
    'eur',
    'null',
  ),
);

/** Percent-encodes UTF-8 (a lone surrogate becomes U+FFFD's bytes), or sends raw broken escapes. */
const urlEncoded = (s: string) =>
  [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
const rawEscapes = fc.constantFrom('%ED%A0%80', '%FF%FE', '%', '%zz', '%E0%A4%A');

/**
 * A header carries bytes, not text: the hostile string's UTF-8 bytes, each one a header byte,
 * without NUL, CR and LF, which HTTP/1.1 cannot carry at all (Node's parser refuses them).
 */
const UNCARRIABLE = new Set(['\u0000', '\r', '\n']);
const headerBytes = (s: string) =>
  [...Buffer.from(s, 'utf8').toString('latin1')].filter((c) => !UNCARRIABLE.has(c)).join('');

/**
 * What a request could change at once. Balances move later, as accepted transfers are applied,
 * so they are checked by the invariants at the end instead.
 */
async function snapshot(): Promise<string> {
  const r = await env.pool.query(
    `SELECT (SELECT count(*) FROM transfers)::text AS t, (SELECT count(*) FROM accounts)::text AS a,
            (SELECT count(*) FROM api_keys)::text AS k, (SELECT count(*) FROM interest_runs)::text AS i`,
  );
  return JSON.stringify(r.rows[0]);
}

type Slot = { kind: 'body' | 'path' | 'query' | 'header' | 'repeat'; name: string };

function slotsOf(op: Operation, base: Base): Slot[] {
  const slots: Slot[] = [];
  for (const name of Object.keys(base.body ?? {})) {
    slots.push({ kind: 'body', name }, { kind: 'repeat', name });
  }
  for (const p of op.parameters ?? []) slots.push({ kind: p.in, name: p.name });
  for (const name of COMMON_HEADERS) slots.push({ kind: 'header', name });
  return slots;
}

describe('every string field and header of every endpoint', () => {
  it('every operation of the OpenAPI document has a base request here', () => {
    expect(
      operations()
        .map((o) => o.key)
        .sort(),
    ).toEqual(Object.keys(BASES).sort());
  });

  it('never answers 5xx; refuses with problem+json and changes nothing; stores what it accepts as sent', async () => {
    const ops = operations();
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: 1_000_000 }),
        fc.integer({ min: 0, max: 1_000_000 }),
        hostile,
        fc.option(rawEscapes, { freq: 8 }),
        async (opPick, slotPick, value, rawEscape) => {
          const { method, path, op, key } = ops[opPick % ops.length]!;
          const base = BASES[key]!();
          const slot = slotsOf(op, base)[slotPick % slotsOf(op, base).length]!;
          const headers: Record<string, string> = {
            authorization: `Bearer ${ADMIN}`,
            'idempotency-key': randomUUID(),
          };
          let text: string | undefined;
          const body = base.body ? { ...base.body } : undefined;
          if (slot.kind === 'body') body![slot.name] = value;
          if (slot.kind === 'path') base.path[slot.name] = rawEscape ?? urlEncoded(value);
          if (slot.kind === 'query') base.query[slot.name] = rawEscape ?? urlEncoded(value);
          if (body) {
            headers['content-type'] = 'application/json';
            text = JSON.stringify(body);
            if (slot.kind === 'repeat') {
              // The same key again, last: JSON.parse alone would keep this value.
              text = `${text.slice(0, -1)},${JSON.stringify(slot.name)}:${JSON.stringify(value)}}`;
            }
          }
          if (slot.kind === 'header') headers[slot.name] = headerBytes(value);
          const url =
            path.replace(/\{(\w+)\}/g, (_, name: string) => base.path[name]!) +
            (Object.keys(base.query).length > 0
              ? `?${Object.entries(base.query)
                  .map(([k, v]) => `${k}=${v}`)
                  .join('&')}`
              : '');

          const before = await snapshot();
          const res = await web.app.request(url, { method, headers, body: text });
          const where = `${method} ${url} ${slot.kind}:${slot.name}=${JSON.stringify(value).slice(0, 80)}`;
          expect(res.status, where).toBeLessThan(500);
          if (res.headers.get('content-type')?.includes('text/event-stream')) {
            // An event stream that was accepted never ends by itself: hang up.
            await res.body?.cancel();
            return;
          }
          if (slot.kind === 'repeat') expect([400, 413], where).toContain(res.status);
          const answer = (await res.json()) as Record<string, unknown>;
          if (res.status >= 400) {
            expect(res.headers.get('content-type'), where).toContain('application/problem+json');
            expect(typeof answer.code, where).toBe('string');
            // 409 account_not_empty is the owner's decision on a recorded close command (kept,
            // failed, like a transfer that failed), not a refusal at the edge.
            if (answer.code !== 'account_not_empty') expect(await snapshot(), where).toBe(before);
          } else if (slot.kind === 'body' && typeof answer[slot.name] === 'string') {
            // Accepted text comes back exactly as sent: nothing mangled on the way to PostgreSQL.
            expect(answer[slot.name], where).toBe(value);
          }
        },
      ),
      { numRuns: 3000 },
    );
    await drained(env.pool);
    await expectInvariants(env.pool);
  });

  it('a path asked with any method it does not document gets 405 with the documented ones', async () => {
    for (const [path, ops] of Object.entries(doc.paths)) {
      const documented = Object.keys(ops).map((m) => m.toUpperCase());
      const allow = documented.includes('GET')
        ? ['GET', 'HEAD', ...documented.filter((m) => m !== 'GET')]
        : documented;
      for (const method of ['GET', 'POST', 'PUT', 'PATCH', 'DELETE']) {
        if (documented.includes(method)) continue;
        const url = path.replace(/\{\w+\}/g, ids.completed);
        const res = await web.app.request(url, {
          method,
          headers: { authorization: `Bearer ${ADMIN}` },
        });
        expect(res.status, `${method} ${url}`).toBe(405);
        expect(res.headers.get('allow')!.split(', ').sort()).toEqual(allow.sort());
        expect(((await res.json()) as { code: string }).code).toBe('method_not_allowed');
      }
    }
  });
});
