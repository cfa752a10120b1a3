// Proves the batch planner's money rules on random batches: every leg balances, no customer goes
// below its floor, a leg seen twice posts once, and the outcome order is the documented one.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  plan,
  systemKey,
  type AccountState,
  type SubBalanceState,
  type TransferState,
} from '../../src/ledger/plan';
import type { LegRef } from '../../src/domain/transfer';
import { BALANCE_MINOR_LIMIT } from '../../src/config/limits';

const P = 0;
const acct = (id: string, o: Partial<AccountState> = {}): AccountState => ({
  id,
  currency: 'EUR',
  kind: 'customer',
  status: 'open',
  overdraftLimit: 0n,
  balance: 0n,
  version: 0n,
  ...o,
});
const subs = new Map<string, SubBalanceState>(
  (['settlement', 'in_transit', 'interest'] as const).map((n) => [
    systemKey(n, 'EUR'),
    { accountId: `sys-${n}`, balance: 0n, version: 0n },
  ]),
);
const transfer = (
  o: Partial<TransferState> & Pick<TransferState, 'id' | 'type'>,
): TransferState => ({
  fromAccountId: null,
  toAccountId: null,
  amount: 100n,
  currency: 'EUR',
  status: 'accepted',
  failureCode: null,
  srcPartition: P,
  dstPartition: P,
  ...o,
});

describe('the planner', () => {
  it('checks in precedence order: not found, closed, currency, funds', () => {
    const accounts = new Map([
      ['poor', acct('poor', { balance: 10n })],
      ['closed', acct('closed', { status: 'closed' })],
      ['usd', acct('usd', { currency: 'USD' })],
      ['rich', acct('rich', { balance: 1_000n })],
    ]);
    const transfers = new Map([
      ['t1', transfer({ id: 't1', type: 'transfer', fromAccountId: 'poor', toAccountId: 'ghost' })],
      [
        't2',
        transfer({ id: 't2', type: 'transfer', fromAccountId: 'poor', toAccountId: 'closed' }),
      ],
      ['t3', transfer({ id: 't3', type: 'transfer', fromAccountId: 'poor', toAccountId: 'usd' })],
      ['t4', transfer({ id: 't4', type: 'transfer', fromAccountId: 'poor', toAccountId: 'rich' })],
      ['t5', transfer({ id: 't5', type: 'transfer', fromAccountId: 'rich', toAccountId: 'poor' })],
    ]);
    const p = plan({
      partition: P,
      applySeqBefore: 0n,
      transfers,
      accounts,
      subBalances: subs,
      isLocal: () => true,
      legs: ['t1', 't2', 't3', 't4', 't5'].map((transferId) => ({
        transferId,
        leg: 'debit' as const,
      })),
    });
    expect(p.appliedLegs.map((l) => l.outcome)).toEqual([
      'account_not_found',
      'account_closed',
      'currency_mismatch',
      'insufficient_funds',
      'posted',
    ]);
    expect(p.appliedLegs.map((l) => l.applySeq)).toEqual([1n, 2n, 3n, 4n, 5n]);
  });

  it('on random batches, balances every leg, respects every floor and posts a repeated leg once', () => {
    const accountIds = ['a', 'b', 'c'];
    const legArb = fc.record({
      type: fc.constantFrom<'deposit' | 'withdrawal' | 'transfer'>(
        'deposit',
        'withdrawal',
        'transfer',
      ),
      from: fc.constantFrom(...accountIds),
      to: fc.constantFrom(...accountIds),
      amount: fc.bigInt({ min: 1n, max: 1_000n }),
      repeats: fc.integer({ min: 1, max: 3 }),
    });
    fc.assert(
      fc.property(
        fc.array(legArb, { minLength: 1, maxLength: 30 }),
        fc.array(fc.bigInt({ min: 0n, max: 500n }), { minLength: 3, maxLength: 3 }),
        fc.array(fc.bigInt({ min: 0n, max: 200n }), { minLength: 3, maxLength: 3 }),
        (cmds, balances, overdrafts) => {
          const accounts = new Map(
            accountIds.map((id, i) => [
              id,
              acct(id, { balance: balances[i]!, overdraftLimit: overdrafts[i]! }),
            ]),
          );
          const transfers = new Map<string, TransferState>();
          const legs: LegRef[] = [];
          cmds.forEach((c, i) => {
            const id = `t${i}`;
            const sameAccount = c.type === 'transfer' && c.from === c.to;
            transfers.set(
              id,
              transfer({
                id,
                type: c.type,
                amount: c.amount,
                fromAccountId: c.type === 'deposit' ? null : c.from,
                toAccountId: c.type === 'withdrawal' ? null : sameAccount ? 'ghost' : c.to,
              }),
            );
            for (let r = 0; r < c.repeats; r++) legs.push({ transferId: id, leg: 'debit' });
          });
          const p = plan({
            partition: P,
            applySeqBefore: 7n,
            legs,
            transfers,
            accounts,
            subBalances: subs,
            isLocal: () => true,
          });

          expect(p.results).toHaveLength(legs.length);
          expect(p.appliedLegs).toHaveLength(cmds.length);
          expect(p.results.filter((r) => r === 'duplicate')).toHaveLength(
            legs.length - cmds.length,
          );
          expect(p.applySeqAfter).toBe(7n + BigInt(cmds.length));
          for (const l of p.appliedLegs) {
            const sum = p.entries
              .filter((e) => e.transferId === l.transferId)
              .reduce((s, e) => s + e.amount, 0n);
            expect(sum).toBe(0n);
          }
          for (const w of p.accountWrites) {
            const a = accounts.get(w.id)!;
            expect(w.balance).toBeGreaterThanOrEqual(-a.overdraftLimit);
            const posted = p.entries.filter((e) => e.accountId === w.id);
            expect(w.balance - a.balance).toBe(posted.reduce((s, e) => s + e.amount, 0n));
            expect(posted.map((e) => e.accountVersion)).toEqual(
              posted.map((_, i) => a.version + BigInt(i + 1)),
            );
          }
        },
      ),
    );
  });

  it('a debit or credit that would take any balance past ±2^61 fails balance_overflow, posting nothing', () => {
    const L = BALANCE_MINOR_LIMIT;
    fc.assert(
      fc.property(
        fc.constantFrom<'deposit' | 'withdrawal' | 'transfer' | 'credit'>(
          'deposit',
          'withdrawal',
          'transfer',
          'credit',
        ),
        fc.bigInt({ min: -L, max: L }),
        fc.bigInt({ min: -L, max: L }),
        fc.bigInt({ min: -L, max: L }),
        fc.bigInt({ min: 1n, max: 10n ** 18n }),
        (kind, balance, otherBalance, subBalance, amount) => {
          const accounts = new Map([
            ['a', acct('a', { balance, overdraftLimit: L })],
            ['b', acct('b', { balance: otherBalance, overdraftLimit: L })],
          ]);
          const subBalances = new Map(
            [...subs].map(([k, v]) => [k, { ...v, balance: subBalance }]),
          );
          const t = transfer({
            id: 't',
            type: kind === 'credit' ? 'transfer' : kind,
            amount,
            fromAccountId: kind === 'deposit' ? null : 'b',
            toAccountId: kind === 'withdrawal' ? null : 'a',
            status: kind === 'credit' ? 'debited' : 'accepted',
            srcPartition: kind === 'credit' ? P + 1 : P,
          });
          const p = plan({
            partition: P,
            applySeqBefore: 0n,
            legs: [{ transferId: 't', leg: kind === 'credit' ? 'credit' : 'debit' }],
            transfers: new Map([['t', t]]),
            accounts,
            subBalances,
            isLocal: () => true,
          });
          // What each kind posts, as (balance before, amount) pairs.
          const postings: [bigint, bigint][] = {
            deposit: [[subBalance, -amount] as const, [balance, amount] as const],
            withdrawal: [[otherBalance, -amount] as const, [subBalance, amount] as const],
            transfer: [[otherBalance, -amount] as const, [balance, amount] as const],
            credit: [[subBalance, -amount] as const, [balance, amount] as const],
          }[kind].map(([b, x]) => [b, x]);
          const floorFails = kind !== 'deposit' && kind !== 'credit' && otherBalance - amount < -L;
          const over = postings.some(([b, x]) => b + x > L || b + x < -L);
          const outcome = p.appliedLegs[0]!.outcome;
          if (floorFails) expect(outcome).toBe('insufficient_funds');
          else if (over) {
            expect(outcome).toBe('balance_overflow');
            expect(p.entries).toEqual([]);
            // A failed credit sends the money back; a failed debit moved none.
            expect(p.forward.map((f) => f.leg)).toEqual(kind === 'credit' ? ['refund'] : []);
          } else {
            expect(outcome).toBe('posted');
            for (const e of p.entries) {
              expect(e.balanceAfter <= L && e.balanceAfter >= -L).toBe(true);
            }
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('a refund always posts, even past the limit, within bigint', () => {
    const accounts = new Map([
      ['a', acct('a', { balance: BALANCE_MINOR_LIMIT, overdraftLimit: 0n })],
    ]);
    const t = transfer({
      id: 't',
      type: 'transfer',
      amount: 10n ** 18n,
      fromAccountId: 'a',
      toAccountId: 'b',
      status: 'debited',
      failureCode: 'balance_overflow',
      dstPartition: P + 1,
    });
    const p = plan({
      partition: P,
      applySeqBefore: 0n,
      legs: [{ transferId: 't', leg: 'refund' }],
      transfers: new Map([['t', t]]),
      accounts,
      subBalances: subs,
      isLocal: (id) => id === 'a',
    });
    expect(p.appliedLegs[0]!.outcome).toBe('posted');
    expect(p.accountWrites[0]!.balance).toBe(BALANCE_MINOR_LIMIT + 10n ** 18n);
    expect(p.transferWrites[0]).toMatchObject({
      status: 'failed',
      failureCode: 'balance_overflow',
    });
  });

  it('a cancel in the same batch as the debit it stops comes first; results keep the input order', () => {
    const accounts = new Map([
      ['a', acct('a', { balance: 1_000n })],
      ['b', acct('b')],
    ]);
    const target = transfer({ id: 't', type: 'transfer', fromAccountId: 'a', toAccountId: 'b' });
    const cancel = transfer({
      id: 'c',
      type: 'cancel',
      fromAccountId: 'a',
      amount: 0n,
      cancelsTransferId: 't',
    });
    const expired = transfer({
      id: 'x',
      type: 'deposit',
      toAccountId: 'a',
      expiresAtMs: 1_000,
    });
    const p = plan({
      partition: P,
      applySeqBefore: 0n,
      legs: [
        { transferId: 't', leg: 'debit' },
        { transferId: 'x', leg: 'debit' },
        { transferId: 'c', leg: 'debit' },
      ],
      transfers: new Map([
        ['t', target],
        ['c', cancel],
        ['x', expired],
      ]),
      accounts,
      subBalances: subs,
      isLocal: () => true,
      nowMs: 2_000,
    });
    expect(p.results).toEqual(['duplicate', 'applied', 'applied']);
    expect(p.entries).toEqual([]);
    expect(
      Object.fromEntries(p.transferWrites.map((w) => [w.id, [w.status, w.failureCode]])),
    ).toEqual({ t: ['failed', 'cancelled'], c: ['completed', null], x: ['failed', 'expired'] });
    expect(p.appliedLegs.map((l) => [l.transferId, l.applySeq])).toEqual([
      ['c', 1n],
      ['x', 2n],
    ]);
  });
});
