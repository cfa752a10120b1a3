// Proves the audit trail: each kind of state change leaves one row with the key that asked (its
// id, never its secret), the action, the target, the request id and the status, refusals too; an
// admin pages through it newest first; anyone else gets 403; and no row can be changed.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { WebProcess } from '../../src/app/web-process';
import { createTestEnv, type TestEnv } from '../support/test-env';
import { caller, createTestWeb, type Call } from '../support/web';

const ADMIN = 'test-admin-key-0123456789';
let env: TestEnv;
let web: WebProcess;
let admin: Call;

beforeAll(async () => {
  env = await createTestEnv({ partitions: 4 });
  web = await createTestWeb(env);
  admin = caller(web, ADMIN);
  await env.startWorker();
});
afterAll(async () => {
  await web.stop();
  await env.cleanup();
});

async function settle(call: Call, id: string) {
  for (;;) {
    const t = await call('GET', `/v1/transfers/${id}?wait=5`);
    if (t.json.status !== 'pending') return t.json;
  }
}

it('records each kind of change with the right key, and pages newest first for an admin only', async () => {
  const key = await admin('POST', '/v1/api-keys', {
    body: { name: 'teller', scopes: ['accounts:write', 'transfers:write', 'read'] },
  });
  expect(key.status).toBe(201);
  const teller = caller(web, key.json.secret);
  const a = (await teller('POST', '/v1/accounts', { body: { holder: 'a', currency: 'EUR' } })).json
    .id;
  const b = (await teller('POST', '/v1/accounts', { body: { holder: 'b', currency: 'EUR' } })).json
    .id;
  const dep = await teller('POST', '/v1/deposits', {
    idem: 'd1',
    body: { account_id: a, amount: '1000', currency: 'EUR' },
    headers: { 'x-request-id': 'req-deposit-1' },
  });
  expect(dep.headers.get('x-request-id')).toBe('req-deposit-1');
  // A refusal carries the request id too (the header is set before the answer is made).
  const missing = await teller('GET', '/v1/transfers/not-a-uuid', {
    headers: { 'x-request-id': 'req-refused-1' },
  });
  expect(missing.status).toBe(404);
  expect(missing.headers.get('x-request-id')).toBe('req-refused-1');
  await settle(teller, dep.json.id);
  const t = await teller('POST', '/v1/transfers', {
    idem: 't1',
    body: { from_account_id: a, to_account_id: b, amount: '300', currency: 'EUR' },
  });
  await settle(teller, t.json.id);
  const w = await teller('POST', '/v1/withdrawals', {
    idem: 'w1',
    body: { account_id: b, amount: '100', currency: 'EUR' },
  });
  const rev = await teller('POST', `/v1/transfers/${t.json.id}/reversals`, {
    idem: 'r1',
    body: {},
  });
  const run = await admin('POST', '/v1/interest-runs', {
    body: { annual_rate_bps: 100, as_of: '2026-01-01' },
  });
  // A refusal is recorded too, with its status.
  const refused = await teller('POST', '/v1/transfers', {
    idem: 't2',
    body: { from_account_id: a, to_account_id: a, amount: '1', currency: 'EUR' },
  });
  expect(refused.status).toBe(422);
  // Reads are not recorded; a key without the admin scope cannot read the trail.
  await teller('GET', `/v1/accounts/${a}`);
  expect((await teller('GET', '/v1/audit-events')).status).toBe(403);

  // Written in the background: what the web holds now, written now.
  await web.deps.audit.flush();
  // Paged two at a time, newest first, every row once.
  const rows: any[] = [];
  let cursor: string | null = null;
  do {
    const page = await admin('GET', `/v1/audit-events?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
    expect(page.status).toBe(200);
    expect(page.json.data.length).toBeLessThanOrEqual(2);
    rows.push(...page.json.data);
    cursor = page.json.next_cursor;
  } while (cursor);
  const ids = rows.map((r) => BigInt(r.id));
  expect(ids).toEqual([...ids].sort((x, y) => (x > y ? -1 : x < y ? 1 : 0)));
  expect(new Set(ids).size).toBe(ids.length);

  const seen = rows.reverse().map((r) => [r.action, r.api_key_id, r.target_id, r.status]);
  expect(seen).toEqual([
    ['api_key.create', 'admin', key.json.id, 201],
    ['account.create', key.json.id, a, 201],
    ['account.create', key.json.id, b, 201],
    ['deposit.create', key.json.id, dep.json.id, 202],
    ['transfer.create', key.json.id, t.json.id, 202],
    ['withdrawal.create', key.json.id, w.json.id, 202],
    ['reversal.create', key.json.id, rev.json.id, 202],
    ['interest_run.create', 'admin', run.json.as_of, run.status],
    ['transfer.create', key.json.id, null, 422],
  ]);
  expect(rows.find((r) => r.action === 'deposit.create').request_id).toBe('req-deposit-1');
  expect(rows.every((r) => typeof r.request_id === 'string' && r.request_id.length > 0)).toBe(true);

  // No row holds a secret, in any column.
  const all = await env.pool.query(`SELECT row_to_json(e)::text AS j FROM audit_events e`);
  for (const { j } of all.rows) {
    expect(j).not.toContain(ADMIN);
    expect(j).not.toContain(key.json.secret);
  }
});

it('rows wait in the buffer while PostgreSQL refuses them, and are written, in order, later', async () => {
  const { AuditLog } = await import('../../src/audit/audit.repository');
  const log = new AuditLog(env.pool, { flushIntervalMs: 10, bufferEventsMax: 3 });
  await env.pool.query(`ALTER TABLE audit_events RENAME TO audit_events_away`);
  try {
    for (const n of [1, 2, 3, 4]) {
      log.record({
        apiKeyId: 'k',
        action: `test.${n}`,
        targetId: null,
        requestId: `r${n}`,
        status: 200,
      });
    }
    await log.flush();
    expect(log.dropped).toBe(1);
  } finally {
    await env.pool.query(`ALTER TABLE audit_events_away RENAME TO audit_events`);
  }
  await log.flush();
  const rows = await env.pool.query(
    `SELECT action FROM audit_events WHERE action LIKE 'test.%' ORDER BY id`,
  );
  expect(rows.rows.map((r) => r.action)).toEqual(['test.2', 'test.3', 'test.4']);
});

it('the trail is append-only in the database itself', async () => {
  await expect(env.pool.query(`UPDATE audit_events SET status = 200`)).rejects.toThrow(
    /append-only/,
  );
  await expect(env.pool.query(`DELETE FROM audit_events`)).rejects.toThrow(/append-only/);
  await expect(env.pool.query(`TRUNCATE audit_events`)).rejects.toThrow(/append-only/);
});
