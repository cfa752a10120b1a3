// Proves the whole product over real HTTP with the real worker process: the classic races, an
// idempotency replay race, reversals, pagination, interest, long-poll and a clean reconciliation.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebProcess } from '../../src/app/web-process';
import { partitionOf } from '../../src/partitions/routing';
import { drained, expectInvariants } from '../support/invariants';
import { processEnv, spawnScript, type Child } from '../support/processes';
import { createTestEnv, type TestEnv } from '../support/test-env';
import { caller, createTestWeb, type Call } from '../support/web';

let env: TestEnv;
let web: WebProcess;
let worker: Child;
let http: Call;

beforeAll(async () => {
  env = await createTestEnv({ partitions: 8 });
  worker = spawnScript('workers/worker.ts', processEnv(env.config));
  web = await createTestWeb(env);
  const port = await web.listen(0);
  http = caller(`http://127.0.0.1:${port}`, env.config.adminApiKey!);
  // Ready once the worker process has claimed every partition.
  for (let i = 0; ; i++) {
    const r = await env.pool
      .query<{ n: string }>(`SELECT count(*) AS n FROM partitions WHERE owner IS NOT NULL`)
      .catch(() => ({ rows: [{ n: '0' }] }));
    if (Number(r.rows[0]!.n) === env.config.partitions) break;
    if (i > 300) throw new Error(`worker did not start:\n${worker.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
});

afterAll(async () => {
  await web?.stop();
  worker?.proc.kill('SIGKILL');
  await env?.cleanup();
});

async function account(currency = 'EUR'): Promise<string> {
  const res = await http('POST', '/v1/accounts', {
    body: { holder: `h-${randomUUID().slice(0, 6)}`, currency },
  });
  expect(res.status).toBe(201);
  return res.json.id;
}

async function move(path: string, body: object, idem: string = randomUUID()) {
  return http('POST', path, { idem, body });
}

async function waitFinal(id: string) {
  for (;;) {
    const res = await http('GET', `/v1/transfers/${id}?wait=10`);
    if (res.json.status !== 'pending') return res.json;
  }
}

async function balance(id: string): Promise<string> {
  return (await http('GET', `/v1/accounts/${id}`)).json.balance;
}

async function fund(id: string, amount: string) {
  const dep = await move('/v1/deposits', { account_id: id, amount, currency: 'EUR' });
  expect(dep.status).toBe(202);
  expect((await waitFinal(dep.json.id)).status).toBe('completed');
}

describe('over HTTP with the real worker process', () => {
  it('the double-spend race: two 4,000.00 transfers from 5,000.00, one completes, one fails insufficient_funds', async () => {
    const [alice, bob, charlie] = [await account(), await account(), await account()];
    await fund(alice, '500000');
    const sent = await Promise.all(
      [bob, charlie].map((to) =>
        move('/v1/transfers', {
          from_account_id: alice,
          to_account_id: to,
          amount: '400000',
          currency: 'EUR',
        }),
      ),
    );
    expect(sent.map((s) => s.status)).toEqual([202, 202]);
    const final = await Promise.all(sent.map((s) => waitFinal(s.json.id)));
    expect(final.map((t) => t.status).sort()).toEqual(['completed', 'failed']);
    expect(final.find((t) => t.status === 'failed').failure_code).toBe('insufficient_funds');
    expect(await balance(alice)).toBe('100000');
    expect(BigInt(await balance(bob)) + BigInt(await balance(charlie))).toBe(400_000n);
  });

  it('1,000 concurrent withdrawals of 1.00 from 500.00: exactly 500 complete, balance exactly 0', async () => {
    const wallet = await account();
    await fund(wallet, '50000');
    const sent = await Promise.all(
      Array.from({ length: 1000 }, () =>
        move('/v1/withdrawals', { account_id: wallet, amount: '100', currency: 'EUR' }),
      ),
    );
    expect(sent.every((s) => s.status === 202)).toBe(true);
    const final = await Promise.all(sent.map((s) => waitFinal(s.json.id)));
    expect(final.filter((t) => t.status === 'completed')).toHaveLength(500);
    expect(final.filter((t) => t.failure_code === 'insufficient_funds')).toHaveLength(500);
    expect(await balance(wallet)).toBe('0');
  });

  it('300 payers in other partitions pay one merchant at once: all complete, the merchant is exact', async () => {
    const merchant = await account();
    const n = env.config.partitions;
    const payers: string[] = [];
    while (payers.length < 300) {
      const p = await account();
      if (partitionOf(p, n) !== partitionOf(merchant, n)) payers.push(p);
    }
    await Promise.all(payers.map((p) => fund(p, '1000')));
    const sent = await Promise.all(
      payers.map((p) =>
        move('/v1/transfers', {
          from_account_id: p,
          to_account_id: merchant,
          amount: '250',
          currency: 'EUR',
        }),
      ),
    );
    const final = await Promise.all(sent.map((s) => waitFinal(s.json.id)));
    expect(final.every((t) => t.status === 'completed')).toBe(true);
    expect(await balance(merchant)).toBe(String(300 * 250));
  });

  it('20 requests racing with one Idempotency-Key make one transfer, and all of them see its id', async () => {
    const a = await account();
    const key = randomUUID();
    const body = { account_id: a, amount: '123', currency: 'EUR' };
    const sent = await Promise.all(
      Array.from({ length: 20 }, () => move('/v1/deposits', body, key)),
    );
    expect(sent.every((s) => s.status === 202 || s.status === 200)).toBe(true);
    expect(sent.filter((s) => s.status === 202)).toHaveLength(1);
    expect(new Set(sent.map((s) => s.json.id)).size).toBe(1);
    await waitFinal(sent[0]!.json.id);
    expect(await balance(a)).toBe('123');
    const rows = await env.pool.query(
      `SELECT count(*)::int AS n FROM transfers WHERE idempotency_key = $1`,
      [key],
    );
    expect(rows.rows[0].n).toBe(1);
  });

  it('a reversal sends the money back, is idempotent, and never reverses more than was moved', async () => {
    const [a, b] = [await account(), await account()];
    await fund(a, '1000');
    const t = await move('/v1/transfers', {
      from_account_id: a,
      to_account_id: b,
      amount: '600',
      currency: 'EUR',
    });
    await waitFinal(t.json.id);

    const key = randomUUID();
    const partial = await http('POST', `/v1/transfers/${t.json.id}/reversals`, {
      idem: key,
      body: { amount: '200' },
    });
    expect(partial.status).toBe(202);
    expect(partial.json).toMatchObject({
      type: 'reversal',
      from_account_id: b,
      to_account_id: a,
      amount: '200',
      reverses_transfer_id: t.json.id,
    });
    const replay = await http('POST', `/v1/transfers/${t.json.id}/reversals`, {
      idem: key,
      body: { amount: '200' },
    });
    expect(replay.status).toBe(200);
    expect(replay.json.id).toBe(partial.json.id);
    expect((await waitFinal(partial.json.id)).status).toBe('completed');

    const tooMuch = await http('POST', `/v1/transfers/${t.json.id}/reversals`, {
      idem: randomUUID(),
      body: { amount: '401' },
    });
    expect(tooMuch.status).toBe(422);
    const rest = await http('POST', `/v1/transfers/${t.json.id}/reversals`, {
      idem: randomUUID(),
      body: {},
    });
    expect(rest.json.amount).toBe('400');
    expect((await waitFinal(rest.json.id)).status).toBe('completed');
    expect(await balance(a)).toBe('1000');
    expect(await balance(b)).toBe('0');
    const nothingLeft = await http('POST', `/v1/transfers/${t.json.id}/reversals`, {
      idem: randomUUID(),
      body: {},
    });
    expect(nothingLeft.status).toBe(422);
    expect(nothingLeft.json.code).toBe('validation_failed');
  });

  it('a reversal fails insufficient_funds when the destination has spent the money', async () => {
    const [a, b] = [await account(), await account()];
    await fund(a, '500');
    const t = await move('/v1/transfers', {
      from_account_id: a,
      to_account_id: b,
      amount: '500',
      currency: 'EUR',
    });
    await waitFinal(t.json.id);
    const w = await move('/v1/withdrawals', { account_id: b, amount: '450', currency: 'EUR' });
    await waitFinal(w.json.id);
    const r = await http('POST', `/v1/transfers/${t.json.id}/reversals`, {
      idem: randomUUID(),
      body: {},
    });
    const final = await waitFinal(r.json.id);
    expect(final).toMatchObject({ status: 'failed', failure_code: 'insufficient_funds' });
  });

  it('ledger history pages newest first across pages, with no entry skipped or repeated', async () => {
    const a = await account();
    const ids = [];
    for (let i = 1; i <= 7; i++) {
      const d = await move('/v1/deposits', { account_id: a, amount: String(i), currency: 'EUR' });
      await waitFinal(d.json.id);
      ids.push(d.json.id);
    }
    const seen: any[] = [];
    let cursor: string | null = null;
    do {
      const page: any = await http(
        'GET',
        `/v1/accounts/${a}/entries?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(page.status).toBe(200);
      seen.push(...page.json.data);
      cursor = page.json.next_cursor;
    } while (cursor);
    expect(seen.map((e) => e.transfer_id)).toEqual([...ids].reverse());
    expect(seen.map((e) => e.amount)).toEqual(['7', '6', '5', '4', '3', '2', '1']);
    expect(seen[0]).toMatchObject({ type: 'deposit', balance_after: '28' });
  });

  it('an unknown destination fails account_not_found; a currency mismatch fails currency_mismatch', async () => {
    const [a, usd] = [await account(), await account('USD')];
    await fund(a, '100');
    const ghost = await move('/v1/transfers', {
      from_account_id: a,
      to_account_id: randomUUID(),
      amount: '1',
      currency: 'EUR',
    });
    expect(await waitFinal(ghost.json.id)).toMatchObject({
      status: 'failed',
      failure_code: 'account_not_found',
    });
    const fx = await move('/v1/transfers', {
      from_account_id: a,
      to_account_id: usd,
      amount: '1',
      currency: 'EUR',
    });
    expect(await waitFinal(fx.json.id)).toMatchObject({
      status: 'failed',
      failure_code: 'currency_mismatch',
    });
  });

  it('a long-poll is woken by the worker and returns the final transfer', async () => {
    const a = await account();
    const d = await move('/v1/deposits', { account_id: a, amount: '5', currency: 'EUR' });
    const started = Date.now();
    const got = await http('GET', `/v1/transfers/${d.json.id}?wait=20`);
    expect(got.json.status).toBe('completed');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('an interest run pays each open account once per as_of, in the background, with progress', async () => {
    const a = await account();
    await fund(a, '3650000');
    const b = await account();
    await fund(b, '100');
    const post = () =>
      http('POST', '/v1/interest-runs', { body: { annual_rate_bps: 500, as_of: '2026-11-21' } });
    // Concurrent posts of the same run: one run, nobody paid twice.
    const [run, twin] = await Promise.all([post(), post()]);
    expect([run.status, twin.status]).toEqual([202, 202]);
    expect(run.headers.get('location')).toBe('/v1/interest-runs/2026-11-21');
    expect(run.json).toMatchObject({ id: '2026-11-21', annual_rate_bps: 500 });
    let status = run.json;
    for (let i = 0; status.status !== 'completed' || status.accounts_paid < 1; i++) {
      if (i > 200) throw new Error(`interest run not done: ${JSON.stringify(status)}`);
      await new Promise((r) => setTimeout(r, 100));
      await drained(env.pool);
      status = (await http('GET', '/v1/interest-runs/2026-11-21')).json;
    }
    const again = await post();
    expect(again.status).toBe(202);
    expect(again.json.status).toBe('completed');
    const otherRate = await http('POST', '/v1/interest-runs', {
      body: { annual_rate_bps: 600, as_of: '2026-11-21' },
    });
    expect(otherRate.status).toBe(422);
    expect((await http('GET', '/v1/interest-runs/1999-01-01')).status).toBe(404);
    await drained(env.pool);
    // 3,650,000 × 5% / 365 = 500; 100 × 5% / 365 rounds down to 0: nothing owed, nothing sent.
    expect(await balance(a)).toBe('3650500');
    expect(await balance(b)).toBe('100');
    const final = (await http('GET', '/v1/interest-runs/2026-11-21')).json;
    const paid = await env.pool.query<{ n: string; s: string }>(
      `SELECT count(*)::text AS n, coalesce(sum(amount), 0)::text AS s FROM transfers
        WHERE type = 'interest' AND idempotency_key LIKE '2026-11-21:%' AND status = 'completed'`,
    );
    expect(final).toMatchObject({
      status: 'completed',
      accounts_paid: Number(paid.rows[0]!.n),
      amount_total: paid.rows[0]!.s,
    });
    const perAccount = await env.pool.query(
      `SELECT to_account_id FROM transfers WHERE type = 'interest' AND idempotency_key LIKE '2026-11-21:%'
        GROUP BY 1 HAVING count(*) > 1`,
    );
    expect(perAccount.rows).toEqual([]);
  });

  it('after everything, the reconciliation report is clean and the invariants hold', async () => {
    await drained(env.pool);
    const report = await http('GET', '/v1/reconciliation');
    expect(report.status).toBe(200);
    expect(report.json).toMatchObject({
      ok: true,
      mismatches: [],
      total: '0',
      in_flight: { count: 0, amount: '0' },
    });
    expect(report.json.accounts_checked).toBeGreaterThan(300);
    await expectInvariants(env.pool);
  });

  it('the worker process stops cleanly on SIGTERM and releases its partitions', async () => {
    worker.proc.kill('SIGTERM');
    expect(await worker.exited).toBe(0);
    const held = await env.pool.query(
      `SELECT count(*)::int AS n FROM partitions WHERE owner IS NOT NULL`,
    );
    expect(held.rows[0].n).toBe(0);
  });
});
