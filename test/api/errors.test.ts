// Proves every error path of the HTTP contract: each code with its status, always as
// problem+json, and that a rejected request leaves no trace.
import { randomUUID } from 'node:crypto';
import { compileErrors, validate } from '@readme/openapi-parser';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { WebProcess } from '../../src/app/web-process';
import { KeyStore } from '../../src/http/auth';
import { createTestEnv, type TestEnv } from '../support/test-env';
import { caller, createTestWeb, type Call } from '../support/web';

let env: TestEnv;
let web: WebProcess;
let call: Call;
let alice: string;
let bob: string;
const ADMIN = 'test-admin-key-0123456789';

beforeAll(async () => {
  env = await createTestEnv();
  web = await createTestWeb(env);
  call = caller(web, ADMIN);
  alice = (await call('POST', '/v1/accounts', { body: { holder: 'Alice', currency: 'EUR' } })).json
    .id;
  bob = (await call('POST', '/v1/accounts', { body: { holder: 'Bob', currency: 'EUR' } })).json.id;
});
afterAll(async () => {
  await web.stop();
  await env.cleanup();
});

async function transferCount(): Promise<number> {
  const r = await env.pool.query<{ n: string }>('SELECT count(*) AS n FROM transfers');
  return Number(r.rows[0]!.n);
}

function expectProblem(
  res: { status: number; headers: Headers; json: any },
  status: number,
  code: string,
) {
  expect({ status: res.status, code: res.json?.code }).toEqual({ status, code });
  expect(res.headers.get('content-type')).toContain('application/problem+json');
  expect(res.json.type).toBe(`/problems/${code}`);
  expect(res.json.status).toBe(status);
}

/** A deposit of 1 into Alice's account with `key`, refused with `status` and `code`. */
async function expectDepositRefused(key: string, status: number, code: string): Promise<void> {
  expectProblem(
    await call('POST', '/v1/deposits', {
      key,
      idem: randomUUID(),
      body: { account_id: alice, amount: '1', currency: 'EUR' },
    }),
    status,
    code,
  );
}

describe('authentication and scopes', () => {
  it('no key and a wrong key get 401 unauthorized', async () => {
    expectProblem(await call('GET', `/v1/accounts/${alice}`, { key: null }), 401, 'unauthorized');
    expectProblem(
      await call('GET', `/v1/accounts/${alice}`, { key: 'not-a-key' }),
      401,
      'unauthorized',
    );
    expectProblem(await call('GET', '/admin/queues', { key: null }), 401, 'unauthorized');
  });

  it('a key made by the admin is shown once, stored hashed, and moves only what its scopes allow', async () => {
    const made = await call('POST', '/v1/api-keys', { body: { name: 'reader', scopes: ['read'] } });
    expect(made.status).toBe(201);
    const secret: string = made.json.secret;
    const stored = await env.pool.query('SELECT secret_hash FROM api_keys WHERE id = $1', [
      made.json.id,
    ]);
    expect(stored.rows[0].secret_hash).not.toContain(secret);
    expect(JSON.stringify(stored.rows)).not.toContain(secret);

    expect((await call('GET', `/v1/accounts/${alice}`, { key: secret })).status).toBe(200);
    const before = await transferCount();
    await expectDepositRefused(secret, 403, 'forbidden');
    expectProblem(
      await call('POST', '/v1/accounts', { key: secret, body: { holder: 'x', currency: 'EUR' } }),
      403,
      'forbidden',
    );
    expectProblem(await call('GET', '/v1/reconciliation', { key: secret }), 403, 'forbidden');
    expectProblem(await call('GET', '/admin/queues', { key: secret }), 403, 'forbidden');
    expect(await transferCount()).toBe(before);
  });

  it('an admin revokes a key: it stops working at once here, and revoking it again answers the same', async () => {
    const made = await call('POST', '/v1/api-keys', {
      body: { name: 'leaked', scopes: ['read', 'transfers:write'] },
    });
    const secret: string = made.json.secret;
    expect((await call('GET', `/v1/accounts/${alice}`, { key: secret })).status).toBe(200);
    const other = (await call('POST', '/v1/api-keys', { body: { name: 'r', scopes: ['read'] } }))
      .json.secret as string;
    expectProblem(
      await call('DELETE', `/v1/api-keys/${made.json.id}`, { key: other }),
      403,
      'forbidden',
    );
    expect((await call('GET', `/v1/accounts/${alice}`, { key: secret })).status).toBe(200);

    const revoked = await call('DELETE', `/v1/api-keys/${made.json.id}`);
    expect(revoked.status).toBe(200);
    expect(revoked.json).toEqual({
      id: made.json.id,
      name: 'leaked',
      scopes: ['read', 'transfers:write'],
      created_at: made.json.created_at,
      revoked_at: expect.any(String),
    });
    expect(JSON.stringify(revoked.json)).not.toContain(secret);
    // Known to this process a moment ago, refused now: it forgot the key, not in 5 s.
    expectProblem(await call('GET', `/v1/accounts/${alice}`, { key: secret }), 401, 'unauthorized');
    const before = await transferCount();
    await expectDepositRefused(secret, 401, 'unauthorized');
    expect(await transferCount()).toBe(before);

    const again = await call('DELETE', `/v1/api-keys/${made.json.id}`);
    expect({ status: again.status, json: again.json }).toEqual({ status: 200, json: revoked.json });
    expectProblem(await call('DELETE', `/v1/api-keys/${randomUUID()}`), 404, 'not_found');
    expectProblem(await call('DELETE', '/v1/api-keys/admin'), 404, 'not_found');
    await web.deps.audit.flush();
    const trail = await call('GET', '/v1/audit-events?limit=10');
    expect(
      trail.json.data.filter(
        (e: { action: string; target_id: string; status: number }) =>
          e.action === 'api_key.revoke' && e.target_id === made.json.id && e.status === 200,
      ),
    ).toHaveLength(2);
  });

  it('an admin lists the keys newest first, a page at a time, revoked ones marked, never a secret', async () => {
    const made: { id: string; secret: string }[] = [];
    for (const name of ['list-a', 'list-b', 'list-c']) {
      made.push((await call('POST', '/v1/api-keys', { body: { name, scopes: ['read'] } })).json);
    }
    await call('DELETE', `/v1/api-keys/${made[1]!.id}`);
    const listed: { id: string; name: string; revoked_at: string | null }[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 50; pages++) {
      const page = await call('GET', `/v1/api-keys?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      expect(page.json.data.length).toBeLessThanOrEqual(2);
      listed.push(...page.json.data);
      cursor = page.json.next_cursor;
      if (!cursor) break;
    }
    expect(cursor).toBeNull();
    const ids = listed.map((k) => k.id);
    expect(new Set(ids).size).toBe(ids.length);
    const total = await env.pool.query<{ n: string }>('SELECT count(*) AS n FROM api_keys');
    expect(ids).toHaveLength(Number(total.rows[0]!.n));
    // Newest first: the three just made lead, c before b before a.
    expect(listed.slice(0, 3).map((k) => [k.name, k.revoked_at === null])).toEqual([
      ['list-c', true],
      ['list-b', false],
      ['list-a', true],
    ]);
    for (const k of listed)
      expect(Object.keys(k).sort()).toEqual(['created_at', 'id', 'name', 'revoked_at', 'scopes']);
    expectProblem(await call('GET', '/v1/api-keys', { key: made[0]!.secret }), 403, 'forbidden');
    expectProblem(await call('GET', '/v1/api-keys?cursor=nope'), 400, 'validation_failed');
  });

  it('the requests of a key not yet known, arriving together, share one lookup of it', async () => {
    const made = await call('POST', '/v1/api-keys', { body: { name: 'crowd', scopes: ['read'] } });
    const secret: string = made.json.secret;
    const query = vi.spyOn(web.deps.pool, 'query');
    try {
      const answers = await Promise.all(
        Array.from({ length: 50 }, () => call('GET', `/v1/accounts/${alice}`, { key: secret })),
      );
      expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
      const lookups = query.mock.calls.filter(
        ([q]) => typeof q === 'string' && q.includes('FROM api_keys'),
      );
      expect(lookups).toHaveLength(1);
      // An unknown key's requests too, and each is refused.
      const unknown = await Promise.all(
        Array.from({ length: 20 }, () =>
          call('GET', `/v1/accounts/${alice}`, { key: 'llk_nobody_0123456789abcdef' }),
        ),
      );
      for (const u of unknown) expectProblem(u, 401, 'unauthorized');
      expect(
        query.mock.calls.filter(([q]) => typeof q === 'string' && q.includes('FROM api_keys')),
      ).toHaveLength(2);
    } finally {
      query.mockRestore();
    }
  });

  it('a lookup of a key that its revocation overtakes is neither cached nor shared after it', async () => {
    const made = await call('POST', '/v1/api-keys', { body: { name: 'racer', scopes: ['read'] } });
    const { id, secret } = made.json as { id: string; secret: string };
    // The real pool, with each answer held until the test lets it through: the lookup reads the
    // key while it is still valid, and its answer arrives after the revocation.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let read = false;
    const gated = {
      query: async (...args: Parameters<typeof env.pool.query>) => {
        const res = await (env.pool.query as (...a: unknown[]) => Promise<unknown>)(...args);
        read = true;
        await held;
        return res;
      },
    } as unknown as typeof env.pool;
    const keys = new KeyStore(gated, undefined);
    const before = keys.resolve(secret);
    await vi.waitFor(() => expect(read).toBe(true));
    await env.pool.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1', [id]);
    keys.forget(id);
    const after = keys.resolve(secret);
    release();
    // The request that came before the revocation may pass; none after it does.
    expect((await before)?.keyId).toBe(id);
    expect(await after).toBeNull();
    expect(await keys.resolve(secret)).toBeNull();
  });

  it('a browser may send the admin key as the password of HTTP Basic auth to open the dashboard', async () => {
    const basic = (password: string) =>
      `Basic ${Buffer.from(`admin:${password}`).toString('base64')}`;
    expect(
      (await call('GET', '/admin/queues', { key: null, headers: { authorization: basic(ADMIN) } }))
        .status,
    ).toBe(200);
    const wrong = await call('GET', '/admin/queues', {
      key: null,
      headers: { authorization: basic('nope') },
    });
    expectProblem(wrong, 401, 'unauthorized');
    expect(wrong.headers.get('www-authenticate')).toContain('Basic');
    // The API itself challenges for a bearer key, so a browser never pops up a login for JSON.
    const api = await call('GET', `/v1/accounts/${alice}`, { key: null });
    expect(api.headers.get('www-authenticate')).toMatch(/^Bearer/);
    // The dashboard's published static files need no key; its API and page do.
    expect((await call('GET', '/admin/queues', { key: null })).status).toBe(401);
    expect((await call('GET', '/admin/queues/api/queues', { key: null })).status).toBe(401);
  });

  it('only the admin creates keys, and unknown scopes are refused', async () => {
    expectProblem(
      await call('POST', '/v1/api-keys', { body: { name: 'x', scopes: ['everything'] } }),
      400,
      'validation_failed',
    );
    const writer = (
      await call('POST', '/v1/api-keys', { body: { name: 'w', scopes: ['transfers:write'] } })
    ).json.secret;
    expectProblem(
      await call('POST', '/v1/api-keys', { key: writer, body: { name: 'y', scopes: ['admin'] } }),
      403,
      'forbidden',
    );
  });
});

describe('validation: synchronous, and leaving no trace', () => {
  const bad: [string, unknown][] = [
    ['zero', '0'],
    ['negative', '-5'],
    ['fraction string', '1.50'],
    ['exponent string', '1e3'],
    ['leading plus', '+5'],
    ['leading zero', '05'],
    ['negative number', -5],
    ['fractional number', 1.5],
    ['unsafe integer', 2 ** 53],
    ['boolean', true],
    ['null', null],
  ];
  for (const [name, amount] of bad) {
    it(`an amount that is ${name} gets 400 validation_failed`, async () => {
      const before = await transferCount();
      const res = await call('POST', '/v1/deposits', {
        idem: randomUUID(),
        body: { account_id: alice, amount, currency: 'EUR' },
      });
      expectProblem(res, 400, 'validation_failed');
      expect(await transferCount()).toBe(before);
    });
  }

  it('JSON number literals with an exponent or a fraction are rejected, even when they equal an integer', async () => {
    for (const literal of ['1e3', '1000.0', '1E2']) {
      const res = await call('POST', '/v1/deposits', {
        idem: randomUUID(),
        rawBody: `{"account_id":"${alice}","amount":${literal},"currency":"EUR"}`,
      });
      expectProblem(res, 400, 'validation_failed');
    }
  });

  it('an amount above MAX_AMOUNT gets 422 validation_failed', async () => {
    const res = await call('POST', '/v1/deposits', {
      idem: randomUUID(),
      body: {
        account_id: alice,
        amount: (env.config.amountMinorMax + 1n).toString(),
        currency: 'EUR',
      },
    });
    expectProblem(res, 422, 'validation_failed');
  });

  it('unknown fields are rejected: a client can never set status or balance', async () => {
    const before = await transferCount();
    for (const extra of [{ status: 'completed' }, { balance: '100' }, { id: randomUUID() }]) {
      const res = await call('POST', '/v1/deposits', {
        idem: randomUUID(),
        body: { account_id: alice, amount: '10', currency: 'EUR', ...extra },
      });
      expectProblem(res, 400, 'validation_failed');
      expect(
        res.json.errors.some((e: { message: string }) => e.message.includes('unknown field')),
      ).toBe(true);
    }
    expectProblem(
      await call('POST', '/v1/accounts', { body: { holder: 'x', currency: 'EUR', balance: '99' } }),
      400,
      'validation_failed',
    );
    expect(await transferCount()).toBe(before);
  });

  it('malformed JSON, a bad currency, a bad id and a missing field get 400 validation_failed', async () => {
    expectProblem(
      await call('POST', '/v1/deposits', { idem: 'm', rawBody: '{"account_id":' }),
      400,
      'validation_failed',
    );
    expectProblem(
      await call('POST', '/v1/deposits', {
        idem: 'm',
        body: { account_id: alice, amount: '1', currency: 'eur' },
      }),
      400,
      'validation_failed',
    );
    expectProblem(
      await call('POST', '/v1/deposits', {
        idem: 'm',
        body: { account_id: 'nope', amount: '1', currency: 'EUR' },
      }),
      400,
      'validation_failed',
    );
    expectProblem(
      await call('POST', '/v1/transfers', {
        idem: 'm',
        body: { from_account_id: alice, amount: '1', currency: 'EUR' },
      }),
      400,
      'validation_failed',
    );
    expectProblem(
      await call('POST', '/v1/accounts', { body: { holder: '', currency: 'EUR' } }),
      400,
      'validation_failed',
    );
  });

  it('a JSON object that repeats a key gets 400 validation_failed, nested objects and escapes included', async () => {
    const before = await transferCount();
    for (const rawBody of [
      `{"account_id":"${alice}","amount":"1","amount":"900000","currency":"EUR"}`,
      `{"account_id":"${alice}","amount":"1","currency":"EUR","\\u0061mount":"2"}`,
      `{"account_id":"${alice}","amount":"1","currency":"EUR","x":{"y":1,"y":2}}`,
    ]) {
      const res = await call('POST', '/v1/deposits', { idem: randomUUID(), rawBody });
      expectProblem(res, 400, 'validation_failed');
      expect(res.json.detail).toContain('repeats a key');
    }
    // The same keys in different objects are not a repetition.
    const nested = await call('POST', '/v1/accounts', {
      rawBody: '{"holder":"h","currency":"EUR","x":{"holder":1}}',
    });
    expectProblem(nested, 400, 'validation_failed');
    expect(nested.json.errors[0].message).toContain('unknown field');
    expect(await transferCount()).toBe(before);
  });

  it('a currency that is not active in ISO 4217 gets 400, an active one is accepted', async () => {
    for (const currency of ['XXX', 'XTS', 'ABC', 'DEM', 'HRK']) {
      expectProblem(
        await call('POST', '/v1/accounts', { body: { holder: 'h', currency } }),
        400,
        'validation_failed',
      );
    }
    for (const currency of ['JPY', 'CHF', 'KWD', 'VES']) {
      const res = await call('POST', '/v1/accounts', { body: { holder: 'h', currency } });
      expect(res.status).toBe(201);
      expect(res.json.currency).toBe(currency);
    }
  });

  it('a transfer from an account to itself gets 422 validation_failed', async () => {
    const res = await call('POST', '/v1/transfers', {
      idem: randomUUID(),
      body: { from_account_id: alice, to_account_id: alice, amount: '1', currency: 'EUR' },
    });
    expectProblem(res, 422, 'validation_failed');
  });

  it('query limits: page size above 200, a forged cursor and wait above 30 s get 400', async () => {
    expectProblem(
      await call('GET', `/v1/accounts/${alice}/entries?limit=201`),
      400,
      'validation_failed',
    );
    expectProblem(
      await call('GET', `/v1/accounts/${alice}/entries?cursor=forged`),
      400,
      'validation_failed',
    );
    expectProblem(
      await call('GET', `/v1/accounts/${alice}/entries?sort=asc`),
      400,
      'validation_failed',
    );
    const t = await call('POST', '/v1/deposits', {
      idem: randomUUID(),
      body: { account_id: alice, amount: '1', currency: 'EUR' },
    });
    expectProblem(
      await call('GET', `/v1/transfers/${t.json.id}?wait=31`),
      400,
      'validation_failed',
    );
  });

  it('bodies over 16 KiB get 413 payload_too_large', async () => {
    const res = await call('POST', '/v1/transfers', {
      idem: randomUUID(),
      body: {
        from_account_id: alice,
        to_account_id: bob,
        amount: '1',
        currency: 'EUR',
        description: 'x'.repeat(17 * 1024),
      },
    });
    expectProblem(res, 413, 'payload_too_large');
  });
});

describe('idempotency', () => {
  it('a money movement without an Idempotency-Key gets 400 idempotency_key_missing', async () => {
    for (const path of ['/v1/deposits', '/v1/withdrawals']) {
      expectProblem(
        await call('POST', path, { body: { account_id: alice, amount: '1', currency: 'EUR' } }),
        400,
        'idempotency_key_missing',
      );
    }
    expectProblem(
      await call('POST', '/v1/transfers', {
        body: { from_account_id: alice, to_account_id: bob, amount: '1', currency: 'EUR' },
      }),
      400,
      'idempotency_key_missing',
    );
  });

  it('a key longer than 255 characters or with control characters gets 400 validation_failed', async () => {
    const body = { account_id: alice, amount: '1', currency: 'EUR' };
    expectProblem(
      await call('POST', '/v1/deposits', { idem: 'k'.repeat(256), body }),
      400,
      'validation_failed',
    );
    expectProblem(
      await call('POST', '/v1/deposits', { idem: 'a\tb', body }),
      400,
      'validation_failed',
    );
  });

  it('the same key and body return the same transfer; another body gets 422 idempotency_key_reused', async () => {
    const key = randomUUID();
    const body = { account_id: alice, amount: '700', currency: 'EUR' };
    const first = await call('POST', '/v1/deposits', { idem: key, body });
    expect(first.status).toBe(202);
    expect(first.headers.get('location')).toBe(`/v1/transfers/${first.json.id}`);
    expect(first.json).toMatchObject({
      type: 'deposit',
      status: 'pending',
      amount: '700',
      currency: 'EUR',
      to_account_id: alice,
    });
    const again = await call('POST', '/v1/deposits', { idem: key, body });
    expect(again.status).toBe(200);
    expect(again.json.id).toBe(first.json.id);
    expectProblem(
      await call('POST', '/v1/deposits', { idem: key, body: { ...body, amount: '701' } }),
      422,
      'idempotency_key_reused',
    );
    // Keys are scoped to the API key: another key may use the same string.
    const other = (
      await call('POST', '/v1/api-keys', { body: { name: 'o', scopes: ['transfers:write'] } })
    ).json.secret;
    const theirs = await call('POST', '/v1/deposits', { key: other, idem: key, body });
    expect(theirs.status).toBe(202);
    expect(theirs.json.id).not.toBe(first.json.id);
  });

  it('a GET right after the 202 finds the transfer, pending', async () => {
    const res = await call('POST', '/v1/withdrawals', {
      idem: randomUUID(),
      body: { account_id: alice, amount: '3', currency: 'EUR' },
    });
    const got = await call('GET', res.headers.get('location')!);
    expect(got.status).toBe(200);
    expect(got.json).toMatchObject({ id: res.json.id, status: 'pending', type: 'withdrawal' });
  });
});

describe('not found', () => {
  it('unknown transfers, accounts, reversal targets and routes get 404 not_found', async () => {
    expectProblem(await call('GET', `/v1/transfers/${randomUUID()}`), 404, 'not_found');
    expectProblem(await call('GET', '/v1/transfers/not-a-uuid'), 404, 'not_found');
    expectProblem(await call('GET', `/v1/accounts/${randomUUID()}`), 404, 'not_found');
    expectProblem(await call('GET', `/v1/accounts/${randomUUID()}/entries`), 404, 'not_found');
    expectProblem(
      await call('POST', `/v1/transfers/${randomUUID()}/reversals`, { idem: 'r', body: {} }),
      404,
      'not_found',
    );
    expectProblem(await call('GET', '/v1/nothing-here'), 404, 'not_found');
    // An interest run is known by its as_of; a NUL there once reached PostgreSQL and got 500.
    expectProblem(await call('GET', '/v1/interest-runs/1999-01-01'), 404, 'not_found');
    expectProblem(await call('GET', '/v1/interest-runs/a%00b'), 404, 'not_found');
  });

  it('a path asked with a method it does not answer gets 405 method_not_allowed with Allow', async () => {
    const cases: [string, string, string][] = [
      ['DELETE', '/v1/accounts', 'POST'],
      ['PUT', `/v1/accounts/${alice}`, 'GET, HEAD'],
      ['POST', `/v1/accounts/${alice}/entries`, 'GET, HEAD'],
      ['PATCH', `/v1/transfers/${randomUUID()}`, 'GET, HEAD'],
      ['GET', '/v1/deposits', 'POST'],
      ['DELETE', '/healthz', 'GET, HEAD'],
    ];
    for (const [method, path, allow] of cases) {
      const res = await call(method, path);
      expectProblem(res, 405, 'method_not_allowed');
      expect(res.headers.get('allow'), `${method} ${path}`).toBe(allow);
    }
    // An unknown path stays 404, whatever the method.
    expectProblem(await call('DELETE', '/v1/nothing-here'), 404, 'not_found');
  });

  it('a reversal of a transfer that has not completed gets 422 validation_failed', async () => {
    const t = await call('POST', '/v1/transfers', {
      idem: randomUUID(),
      body: { from_account_id: alice, to_account_id: bob, amount: '1', currency: 'EUR' },
    });
    expectProblem(
      await call('POST', `/v1/transfers/${t.json.id}/reversals`, { idem: randomUUID(), body: {} }),
      422,
      'validation_failed',
    );
  });
});

describe('overload and outages', () => {
  it('a key over its rate gets 429 rate_limited with Retry-After', async () => {
    const limited = await createTestWeb(env, { rateLimit: { perSecond: 1, burst: 2 } });
    try {
      const c = caller(limited, ADMIN);
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push(await c('GET', `/v1/accounts/${alice}`));
      expect(statuses.slice(0, 2).map((s) => s.status)).toEqual([200, 200]);
      expectProblem(statuses[3]!, 429, 'rate_limited');
      expect(Number(statuses[3]!.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    } finally {
      await limited.stop();
    }
  });

  it('with Redis unreachable, money movements get 503 unavailable at once, record nothing, and /readyz says so', async () => {
    const down = await createTestWeb(env, { redisUrl: 'redis://127.0.0.1:1' });
    try {
      const c = caller(down, ADMIN);
      const before = await transferCount();
      const started = Date.now();
      const res = await c('POST', '/v1/deposits', {
        idem: randomUUID(),
        body: { account_id: alice, amount: '1', currency: 'EUR' },
      });
      expectProblem(res, 503, 'unavailable');
      expect(Date.now() - started).toBeLessThan(1_000);
      expect(await transferCount()).toBe(before);
      const ready = await c('GET', '/readyz');
      expect(ready.status).toBe(503);
      expect(ready.json).toMatchObject({ ok: false, postgres: true, redis: false });
    } finally {
      await down.stop();
    }
  });
});

describe('the documents', () => {
  it('/openapi.json documents every endpoint of the contract, and /docs serves a page', async () => {
    const doc = (await call('GET', '/openapi.json', { key: null })).json;
    expect(doc.openapi).toBe('3.1.0');
    for (const path of [
      '/v1/accounts',
      '/v1/accounts/{id}',
      '/v1/accounts/{id}/entries',
      '/v1/deposits',
      '/v1/withdrawals',
      '/v1/transfers',
      '/v1/transfers/{id}',
      '/v1/transfers/{id}/reversals',
      '/v1/interest-runs',
      '/v1/reconciliation',
      '/v1/api-keys',
    ]) {
      expect(doc.paths, path).toHaveProperty([path]);
    }
    expect(doc.components.schemas.TransferRequest.additionalProperties).toBe(false);
    const validation = await validate(structuredClone(doc));
    expect(validation.valid ? [] : compileErrors(validation)).toEqual([]);
    const page = await call('GET', '/docs', { key: null });
    expect(page.status).toBe(200);
    expect(String(page.json)).toContain('openapi.json');
    // Served from the install, so the page works without any outside network.
    expect(String(page.json)).not.toContain('cdn.');
    for (const asset of ['swagger-ui.css', 'swagger-ui-bundle.js']) {
      expect(String(page.json)).toContain(`/docs/assets/swagger-ui-dist/${asset}`);
      const res = await call('GET', `/docs/assets/swagger-ui-dist/${asset}`, { key: null });
      expect(res.status).toBe(200);
      expect(String(res.json).length).toBeGreaterThan(1000);
    }
    expectProblem(
      await call('GET', '/docs/assets/swagger-ui-dist/package.json', { key: null }),
      404,
      'not_found',
    );
  });

  it('/healthz, /metrics and the queue dashboard answer', async () => {
    expect((await call('GET', '/healthz', { key: null })).json).toEqual({ ok: true });
    const metrics = await call('GET', '/metrics', { key: null });
    expect(String(metrics.json)).toContain('ledgerline_http_requests_total');
    expect(String(metrics.json)).toContain('ledgerline_queue_jobs');
    expect((await call('GET', '/admin/queues')).status).toBe(200);
  });
});
