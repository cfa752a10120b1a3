// Proves, by property-based testing, that malformed and hostile bodies, headers and ids thrown at
// every POST never cause a 5xx, always get problem+json when refused, and change no balance or
// transfer unless the API accepted them.
import fc from 'fast-check';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { WebProcess } from '../../src/app/web-process';
import { drained, expectInvariants } from '../support/invariants';
import { createTestEnv, type TestEnv } from '../support/test-env';
import { caller, createTestWeb, type Call } from '../support/web';

let env: TestEnv;
let web: WebProcess;
let call: Call;
let accountIds: string[];
let completedId: string;

beforeAll(async () => {
  env = await createTestEnv();
  web = await createTestWeb(env);
  call = caller(web, 'test-admin-key-0123456789');
  accountIds = [];
  for (const currency of ['EUR', 'USD']) {
    accountIds.push(
      (await call('POST', '/v1/accounts', { body: { holder: 'h', currency } })).json.id,
    );
  }
  await env.startWorker();
  const dep = await call('POST', '/v1/deposits', {
    idem: 'seed',
    body: { account_id: accountIds[0], amount: '100000', currency: 'EUR' },
  });
  await env.waitForFinal([dep.json.id]);
  const t = await call('POST', '/v1/transfers', {
    idem: 'seed-t',
    body: {
      from_account_id: accountIds[0],
      to_account_id: (
        await call('POST', '/v1/accounts', { body: { holder: 'x', currency: 'EUR' } })
      ).json.id,
      amount: '10',
      currency: 'EUR',
    },
  });
  completedId = t.json.id;
  await env.waitForFinal([completedId]);
});
afterAll(async () => {
  await web.stop();
  await env.cleanup();
});

/**
 * What a request could change synchronously. Balances move only through transfers, and earlier
 * accepted requests are still being applied, so balances are checked once at the end instead.
 */
async function snapshot(): Promise<string> {
  const r = await env.pool.query<{ t: string; a: string; k: string; i: string }>(
    `SELECT (SELECT count(*) FROM transfers)::text AS t, (SELECT count(*) FROM accounts)::text AS a,
            (SELECT count(*) FROM api_keys)::text AS k, (SELECT count(*) FROM interest_runs)::text AS i`,
  );
  return JSON.stringify(r.rows[0]);
}

const hostileString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    '"; DROP TABLE transfers; --',
    '../../etc/passwd',
    '%00',
    '\uD800',
    'NaN',
    'Infinity',
    '1e308',
    '-0',
    '0x1F',
    '٣',
  ),
);
const hostileValue: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    hostileString,
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.dictionary(hostileString, tie('value'), { maxKeys: 3 }),
  ),
})).value;

/** Percent-encodes the UTF-8 bytes, so even lone surrogates become a (broken) path segment. */
function pathSegment(s: string): string {
  return [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
}

const fieldNames = [
  'account_id',
  'from_account_id',
  'to_account_id',
  'amount',
  'currency',
  'description',
  'holder',
  'overdraft_limit',
  'status',
  'balance',
  'name',
  'scopes',
  'annual_rate_bps',
  'as_of',
  '__proto__',
  'constructor',
];
const body = fc.oneof(
  hostileValue,
  fc.dictionary(
    fc.constantFrom(...fieldNames),
    fc.oneof(hostileValue, fc.constantFrom('EUR', '1', '100', '0'), fc.constant('ACCOUNT')),
    { maxKeys: 6 },
  ),
);
const pathFor = fc.oneof(
  fc.constantFrom(
    '/v1/accounts',
    '/v1/deposits',
    '/v1/withdrawals',
    '/v1/transfers',
    '/v1/api-keys',
    '/v1/interest-runs',
  ),
  fc
    .oneof(hostileString, fc.constant('COMPLETED'))
    .map((id) => `/v1/transfers/${id === 'COMPLETED' ? id : pathSegment(id)}/reversals`),
  fc.constantFrom('/v1/transfers/%E0%A4%A/reversals', '/v1/transfers/%/reversals'),
);

it('never answers 5xx, refuses with problem+json, and changes nothing it refused', async () => {
  await fc.assert(
    fc.asyncProperty(
      pathFor,
      body,
      fc.option(fc.oneof(hostileString, fc.string({ minLength: 1, maxLength: 300 })), {
        nil: undefined,
      }),
      fc.option(
        fc.constantFrom(
          'text/plain',
          'application/x-www-form-urlencoded',
          'application/json; charset=utf-16',
          '',
        ),
        { nil: undefined },
      ),
      async (rawPath, rawBody, idem, contentType) => {
        const path = rawPath.replace('COMPLETED', completedId);
        // Bodies may name real accounts, so that some requests are valid and some get far.
        const text =
          JSON.stringify(rawBody ?? null)?.replaceAll('"ACCOUNT"', JSON.stringify(accountIds[0])) ??
          'null';
        const before = await snapshot();
        let res;
        try {
          res = await call('POST', path, {
            rawBody: text,
            idem: idem !== undefined && /^[\x20-\x7e]*$/.test(idem) ? idem : undefined,
            headers: contentType !== undefined ? { 'content-type': contentType } : {},
          });
        } catch (err) {
          // A header value the fetch API itself refuses never reaches the server.
          if (err instanceof TypeError) return;
          throw err;
        }
        expect(res.status, `${path} ${text}`).toBeLessThan(500);
        if (res.status >= 400) {
          expect(res.headers.get('content-type')).toContain('application/problem+json');
          expect(typeof res.json.code).toBe('string');
          expect(await snapshot()).toBe(before);
        }
      },
    ),
    { numRuns: 300 },
  );
  await drained(env.pool);
  await expectInvariants(env.pool);
});

it('hostile Authorization headers get 401 problem+json, never 5xx', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.string(),
        fc.string().map((s) => `Bearer ${s}`),
        fc.string().map((s) => `Basic ${Buffer.from(s).toString('base64')}`),
        fc.constantFrom('Bearer', 'Basic', 'Basic !!!', 'Bearer  ', 'bearer x y z', 'Digest abc'),
      ),
      async (authorization) => {
        let res;
        try {
          res = await call('GET', `/v1/accounts/${accountIds[0]}`, {
            key: null,
            headers: { authorization },
          });
        } catch (err) {
          if (err instanceof TypeError) return; // not a valid header value at all
          throw err;
        }
        expect(res.status).toBe(401);
        expect(res.headers.get('content-type')).toContain('application/problem+json');
      },
    ),
    { numRuns: 200 },
  );
});

it('hostile ids in GET paths never answer 5xx', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(hostileString, fc.constantFrom('%', '%E0%A4%A', '%zz')),
      fc.constantFrom('/v1/transfers/', '/v1/accounts/'),
      fc.constantFrom('', '/entries', '?wait=1'),
      async (id, prefix, suffix) => {
        const segment = id.startsWith('%') ? id : pathSegment(id);
        const path = `${prefix}${segment}${prefix.includes('accounts') ? suffix.replace('?wait=1', '') : suffix.replace('/entries', '')}`;
        const res = await call('GET', path);
        expect(res.status, path).toBeLessThan(500);
        if (res.status >= 400)
          expect(res.headers.get('content-type')).toContain('application/problem+json');
      },
    ),
    { numRuns: 200 },
  );
});
