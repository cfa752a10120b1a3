// Proves RFC 7240's `Prefer: wait=N` on money movements: one request that answers with the final
// transfer (200) when it is final in time, and 202 pending as usual when it is not.
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebProcess } from '../../src/app/web-process';
import { WAIT_SECONDS_MAX } from '../../src/config/limits';
import { partitionOf } from '../../src/partitions/routing';
import { preferredWaitSeconds } from '../../src/transfers/transfers.routes';
import { expectInvariants } from '../support/invariants';
import { createTestEnv, type TestEnv } from '../support/test-env';
import { caller, createTestWeb, openAccount, type Call } from '../support/web';

let env: TestEnv;
let web: WebProcess;
let call: Call;
beforeAll(async () => {
  env = await createTestEnv({ partitions: 4 });
  web = await createTestWeb(env);
  call = caller(web, 'test-admin-key-0123456789');
});
afterAll(async () => {
  await web.stop();
  await env.cleanup();
});

const open = () => openAccount(call);

describe('Prefer: wait', () => {
  it('with no worker to apply it, the wait runs out and the answer is 202 pending', async () => {
    const a = await open();
    const started = Date.now();
    const res = await call('POST', '/v1/deposits', {
      idem: 'pending-1',
      body: { account_id: a, amount: '5', currency: 'EUR' },
      headers: { prefer: 'wait=1' },
    });
    expect(res.status).toBe(202);
    expect(res.json.status).toBe('pending');
    expect(res.headers.get('preference-applied')).toBe('wait=1');
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  });

  it('answers 200 with the final transfer, completed or failed, in one request', async () => {
    await env.startWorker();
    const a = await open();
    let far = await open();
    while (partitionOf(far, 4) === partitionOf(a, 4)) far = await open();
    const move = (idem: string, path: string, body: object) =>
      call('POST', path, { idem, body, headers: { prefer: 'respond-async, wait=10' } });

    const dep = await move('d', '/v1/deposits', { account_id: a, amount: '100', currency: 'EUR' });
    expect(dep.status).toBe(200);
    expect(dep.headers.get('preference-applied')).toBe('wait=10');
    expect(dep.headers.get('location')).toBe(`/v1/transfers/${dep.json.id}`);
    expect(dep.json).toMatchObject({ status: 'completed', to_balance_after: '100' });

    // Across partitions: the answer waits for the credit on the other partition too.
    const across = {
      from_account_id: a,
      to_account_id: far,
      amount: '60',
      currency: 'EUR',
    };
    const t = await move('t', '/v1/transfers', across);
    expect(t.status).toBe(200);
    expect(t.json).toMatchObject({ status: 'completed', from_balance_after: '40' });

    const short = await move('s', '/v1/withdrawals', {
      account_id: a,
      amount: '41',
      currency: 'EUR',
    });
    expect(short.status).toBe(200);
    expect(short.json).toMatchObject({ status: 'failed', failure_code: 'insufficient_funds' });

    // A replay with the same key is the same transfer, final.
    const again = await move('t', '/v1/transfers', across);
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({ id: t.json.id, status: 'completed' });
    expect(again.headers.get('idempotent-replayed')).toBe('true');

    // Without the preference nothing changes: 202 pending at once.
    const plain = await call('POST', '/v1/deposits', {
      idem: 'plain',
      body: { account_id: a, amount: '1', currency: 'EUR' },
    });
    expect(plain.status).toBe(202);
    expect(plain.headers.get('preference-applied')).toBeNull();
    await env.waitForFinal([plain.json.id]);
    await expectInvariants(env.pool);
  });

  it('reads the preference as RFC 7240 writes it, bounded, and never fails on one it does not understand', () => {
    expect(preferredWaitSeconds(undefined)).toBe(0);
    expect(preferredWaitSeconds('wait=5')).toBe(5);
    expect(preferredWaitSeconds('WAIT = "7"')).toBe(7);
    expect(preferredWaitSeconds('respond-async, wait=12; x=y')).toBe(12);
    expect(preferredWaitSeconds('wait=100')).toBe(WAIT_SECONDS_MAX);
    expect(preferredWaitSeconds('wait=abc, return=minimal')).toBe(0);
    expect(preferredWaitSeconds('handling=strict')).toBe(0);
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (header) => {
        const s = preferredWaitSeconds(header);
        return Number.isInteger(s) && s >= 0 && s <= WAIT_SECONDS_MAX;
      }),
    );
  });
});
