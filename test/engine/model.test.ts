// Proves, by model-based property testing, that the engine applies random command sequences
// exactly as a plain sequential in-memory ledger would, fed the legs in the order the engine
// says it applied them; and that per-account entry sequences have no gaps and no repeats.
import fc from 'fast-check';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { partitionOf } from '../../src/partitions/routing';
import type { FailureCode } from '../../src/domain/transfer';
import { expectInvariants } from '../support/invariants';
import { createTestEnv, type TestEnv } from '../support/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await createTestEnv({ partitions: 4 });
  await env.startWorker();
});
afterAll(async () => {
  const fatal = [...env.fatal];
  await env.cleanup();
  expect(fatal).toEqual([]);
});

/** Slots 0-2: EUR accounts, slot 2 with a 300 overdraft; 3: a USD account; 4: an unknown id. */
const SLOTS = 5;
const cmd = fc.oneof(
  fc.record({
    type: fc.constant('deposit' as const),
    to: fc.nat(SLOTS - 1),
    amount: fc.integer({ min: 1, max: 500 }),
  }),
  fc.record({
    type: fc.constant('withdrawal' as const),
    from: fc.nat(SLOTS - 1),
    amount: fc.integer({ min: 1, max: 500 }),
  }),
  fc
    .record({
      type: fc.constant('transfer' as const),
      from: fc.nat(SLOTS - 1),
      to: fc.nat(SLOTS - 1),
      amount: fc.integer({ min: 1, max: 500 }),
    })
    .filter((c) => c.from !== c.to),
);

type ModelAccount = { currency: string; balance: bigint; overdraftLimit: bigint };

it('random deposits, withdrawals and transfers end exactly as the sequential model says', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(cmd, { minLength: 1, maxLength: 40 }),
      fc.integer({ min: 1, max: 6 }),
      async (cmds, chunks) => {
        const accounts = [
          await env.account(),
          await env.account(),
          // May go down to -300: the model applies the same floor.
          await env.account({ overdraftLimit: 300n }),
          await env.account({ currency: 'USD' }),
        ];
        const ids = [...accounts.map((a) => a.id), randomUUID()];
        const commands = cmds.map((c) => ({
          type: c.type,
          fromAccountId: 'from' in c ? ids[c.from]! : null,
          toAccountId: 'to' in c ? ids[c.to]! : null,
          amountMinor: BigInt(c.amount),
          currency: 'EUR',
        }));
        // Submit in concurrent chunks so that the engine sees real interleavings.
        const size = Math.ceil(commands.length / chunks);
        const parts = await Promise.all(
          Array.from({ length: chunks }, (_, i) =>
            env.submit(commands.slice(i * size, (i + 1) * size)),
          ),
        );
        const transferIds = parts.flat().map((t) => t.id);
        const final = await env.waitForFinal(transferIds);
        const byId = new Map(transferIds.map((id, i) => [id, commands[i]!]));

        // Replay each partition's legs in apply order into the model.
        const model = new Map<string, ModelAccount>(
          accounts.map((a) => [
            a.id,
            { currency: a.currency, balance: 0n, overdraftLimit: a.overdraftLimit },
          ]),
        );
        const legs = await env.pool.query<{
          partition: number;
          transfer_id: string;
          leg: string;
          outcome: string;
        }>(
          `SELECT partition, transfer_id, leg, outcome FROM applied_legs
          WHERE transfer_id = ANY($1::uuid[]) ORDER BY partition, apply_seq`,
          [transferIds],
        );
        const modelFinal = new Map<string, { status: string; failureCode: FailureCode | null }>();
        const samePartition = (a: string, b: string) =>
          partitionOf(a, env.config.partitions) === partitionOf(b, env.config.partitions);
        for (const l of causalOrder(legs.rows)) {
          const c = byId.get(l.transfer_id)!;
          const from = c.fromAccountId ? model.get(c.fromAccountId) : undefined;
          const to = c.toAccountId ? model.get(c.toAccountId) : undefined;
          let outcome = 'posted';
          if (l.leg === 'debit') {
            if ((c.fromAccountId && !from) || (c.toAccountId && !to)) outcome = 'account_not_found';
            else if ((from && from.currency !== 'EUR') || (to && to.currency !== 'EUR'))
              outcome = 'currency_mismatch';
            else if (from && from.balance - c.amountMinor < -from.overdraftLimit)
              outcome = 'insufficient_funds';
            if (outcome !== 'posted') {
              modelFinal.set(l.transfer_id, {
                status: 'failed',
                failureCode: outcome as FailureCode,
              });
            } else if (c.type === 'transfer' && !samePartition(c.fromAccountId!, c.toAccountId!)) {
              from!.balance -= c.amountMinor;
              modelFinal.set(l.transfer_id, { status: 'debited', failureCode: null });
            } else {
              if (from) from.balance -= c.amountMinor;
              if (to) to.balance += c.amountMinor;
              modelFinal.set(l.transfer_id, { status: 'completed', failureCode: null });
            }
          } else {
            expect(l.leg).toBe('credit');
            expect(modelFinal.get(l.transfer_id)?.status).toBe('debited');
            to!.balance += c.amountMinor;
            modelFinal.set(l.transfer_id, { status: 'completed', failureCode: null });
          }
          expect(`${l.transfer_id}:${l.leg}:${l.outcome}`).toBe(
            `${l.transfer_id}:${l.leg}:${outcome}`,
          );
        }
        for (const t of final) {
          expect({ id: t.id, status: t.status, failureCode: t.failureCode }).toEqual({
            id: t.id,
            ...modelFinal.get(t.id),
          });
        }

        const rows = await env.pool.query<{ id: string; balance: string; version: string }>(
          'SELECT id, balance, version FROM accounts WHERE id = ANY($1::uuid[])',
          [accounts.map((a) => a.id)],
        );
        for (const r of rows.rows) expect(BigInt(r.balance)).toBe(model.get(r.id)!.balance);
        // Per-account entry sequences: exactly 1..n.
        const seqs = await env.pool.query<{ account_id: string; seqs: string[] }>(
          `SELECT account_id, array_agg(account_version::text ORDER BY account_version) AS seqs
           FROM ledger_entries WHERE account_id = ANY($1::uuid[]) GROUP BY account_id`,
          [accounts.map((a) => a.id)],
        );
        for (const s of seqs.rows) {
          expect(s.seqs).toEqual(s.seqs.map((_, i) => String(i + 1)));
        }
        await expectInvariants(env.pool);
      },
    ),
    { numRuns: 40 },
  );
});

/**
 * Merges the partitions' apply sequences, each kept in order, so that a credit leg comes after
 * its transfer's debit leg. Every account lives on one partition, so any such merge replays the
 * same balances.
 */
function causalOrder<L extends { partition: number; transfer_id: string; leg: string }>(
  legs: L[],
): L[] {
  const streams = new Map<number, L[]>();
  for (const l of legs) streams.set(l.partition, [...(streams.get(l.partition) ?? []), l]);
  const debited = new Set<string>();
  const out: L[] = [];
  while (out.length < legs.length) {
    let progressed = false;
    for (const stream of streams.values()) {
      while (
        stream.length > 0 &&
        (stream[0]!.leg === 'debit' || debited.has(stream[0]!.transfer_id))
      ) {
        const l = stream.shift()!;
        if (l.leg === 'debit') debited.add(l.transfer_id);
        out.push(l);
        progressed = true;
      }
    }
    if (!progressed) throw new Error('a credit leg was applied before its debit leg');
  }
  return out;
}
