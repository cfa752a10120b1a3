// Durable submission: commands become `accepted` transfer rows in one multi-row INSERT, commit,
// and only then go onto the queues. A submission is durable once it returns.
import { hash } from 'node:crypto';
import { newTransferId } from '../domain/ids';
import type pg from 'pg';
import {
  SUBMIT_BATCH_MAX,
  SUBMIT_FLUSHES_IN_FLIGHT_MAX,
  SUBMIT_WAITING_COMMANDS_MAX,
} from '../config/limits';
import { isProgrammerPgError, withClient } from '../db/db';
import { partitionOf } from '../partitions/routing';
import type { Dispatcher } from '../queue/queues';
import type { Admission } from './admission';
import { AnswerError } from '../shared/answer-error';
import { assert } from '../shared/assert';
import {
  TRANSFER_COLUMNS,
  toTransfer,
  type Transfer,
  type TransferRow,
} from './transfers.repository';
import type { TransferType } from '../domain/transfer';

export type Command = {
  /** The id to record it under when new (the caller may be waiting for it already); else random. */
  id?: string;
  type: TransferType;
  fromAccountId: string | null;
  toAccountId: string | null;
  amountMinor: bigint;
  currency: string;
  description?: string | null;
  reversesTransferId?: string | null;
  /** For a cancel: the transfer it cancels. */
  cancelsTransferId?: string | null;
  /** Not applied by then, the command fails `expired`. */
  expiresAt?: Date | null;
  /** Who owns the idempotency key: the API key's id, or a name for internal callers. */
  idempotencyScope: string;
  idempotencyKey?: string | null;
  /** What "the same request" means when it is not the fields above (a reversal's own body). */
  hashInput?: string;
};

export type SubmitResult =
  | { kind: 'accepted'; transfer: Transfer }
  | { kind: 'replayed'; transfer: Transfer }
  | { kind: 'idempotency_key_reused'; transfer: Transfer };

export type ReversalResult =
  SubmitResult | { kind: 'not_found' } | { kind: 'not_reversible'; detail: string };

type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>;
type PreparedRow = {
  id: string;
  command: Command;
  hash: string;
  srcPartition: number;
  dstPartition: number;
};

/** Who pays and who is paid, by type (also a CHECK constraint on transfers). */
function hasShape(c: Command): boolean {
  switch (c.type) {
    case 'deposit':
    case 'interest':
      return c.fromAccountId === null && c.toAccountId !== null;
    case 'withdrawal':
    case 'close':
      return c.fromAccountId !== null && c.toAccountId === null;
    case 'cancel':
      return c.fromAccountId !== null && c.toAccountId === null && !!c.cancelsTransferId;
    case 'transfer':
    case 'reversal':
      return (
        c.fromAccountId !== null && c.toAccountId !== null && c.fromAccountId !== c.toAccountId
      );
  }
}

/** The fields that make two requests "the same request" for an idempotency key. */
export function requestHash(c: Command): string {
  const canonical =
    c.hashInput ??
    JSON.stringify([
      c.type,
      c.fromAccountId,
      c.toAccountId,
      c.amountMinor.toString(),
      c.currency,
      c.description ?? null,
      c.reversesTransferId ?? null,
      // Fields added later join only when set, so a request made before they existed hashes as
      // it did then, and its retry across an upgrade is still the same request.
      ...(c.cancelsTransferId ? [{ cancels: c.cancelsTransferId }] : []),
      ...(c.expiresAt ? [{ expires_at: c.expiresAt.toISOString() }] : []),
    ]);
  return hash('sha256', canonical);
}

/** A command with the partitions its legs run on, worked out once when it is submitted. */
type Routed = { command: Command; srcPartition: number; dstPartition: number };

type Waiting = {
  commands: Routed[];
  resolve: (r: SubmitResult[]) => void;
  reject: (e: Error) => void;
};

/** The intake holds as many commands as it may: refused at once, nothing recorded. */
export class OverloadedError extends AnswerError {
  override name = 'OverloadedError';
}

/**
 * The shared INSERT itself was refused for a value (SQLSTATE class 22 or 23): nothing was
 * written. Keeps the SQLSTATE, so it stays a programmer error (500) for the request it belongs to.
 */
class InsertRefusedError extends Error {
  override name = 'InsertRefusedError';
  readonly code: string;
  constructor(readonly pgError: unknown) {
    super((pgError as Error).message);
    this.code = (pgError as { code: string }).code;
  }
}

export class Submitter {
  private waiting: Waiting[] = [];
  /** Commands in `waiting` plus those being recorded now: what this process holds. */
  private heldCommands = 0;
  private inFlight = 0;
  private scheduled = false;
  private readonly heldCommandsMax: number;

  constructor(
    private readonly deps: {
      pool: pg.Pool;
      dispatcher: Dispatcher;
      partitions: number;
      onEnqueueError?: (err: Error) => void;
      heldCommandsMax?: number;
      /** The partitions' backlog caps; without it, only the intake's own bound applies. */
      admission?: Admission;
    },
  ) {
    this.heldCommandsMax = deps.heldCommandsMax ?? SUBMIT_WAITING_COMMANDS_MAX;
  }

  /**
   * Records the commands and enqueues their first legs. Concurrent calls that arrive in the same
   * tick share one INSERT and one add per partition (group commit). With `admit`, a call
   * that would take the commands held past their bound, or name a partition whose backlog is at
   * its cap, throws OverloadedError at once, recording nothing.
   */
  async submit(
    commands: readonly Command[],
    opts: { admit?: boolean } = {},
  ): Promise<SubmitResult[]> {
    const routed = commands.map((c) => this.route(c));
    const { admission } = this.deps;
    if (opts.admit) {
      const refusal = this.refusalOfRouted(routed);
      if (refusal !== undefined) throw new OverloadedError(refusal);
    }
    this.heldCommands += commands.length;
    let results: SubmitResult[];
    try {
      results = await this.enqueueForRecording(routed);
    } finally {
      this.heldCommands -= commands.length;
    }
    results.forEach((r, i) => {
      if (r.kind === 'accepted') admission?.noteAccepted(routed[i]!.srcPartition);
    });
    return results;
  }

  /**
   * Why `submit(commands, { admit: true })` would refuse these commands now, or undefined if it
   * would take them: decided at once, from memory, so that a flash crowd past capacity is refused
   * before anything else is made for its requests.
   */
  refusal(commands: readonly Pick<Command, 'fromAccountId' | 'toAccountId'>[]): string | undefined {
    // No partition at its cap: nothing to route (the hot path pays two comparisons).
    if (!this.deps.admission?.anyFull) return this.intakeFullFor(commands.length);
    return this.refusalOfRouted(commands.map((c) => this.partitionsOf(c)));
  }

  private intakeFullFor(commands: number): string | undefined {
    return this.heldCommands + commands > this.heldCommandsMax ? 'the intake is full' : undefined;
  }

  private refusalOfRouted(routed: readonly Omit<Routed, 'command'>[]): string | undefined {
    const full = this.intakeFullFor(routed.length);
    if (full !== undefined) return full;
    const { admission } = this.deps;
    if (admission && !routed.every((r) => admission.admits([r.srcPartition, r.dstPartition]))) {
      return 'a partition this touches has a full backlog';
    }
    return undefined;
  }

  /** Who pays is routed to the source's partition, who is paid to the destination's. */
  private route(command: Command): Routed {
    return { command, ...this.partitionsOf(command) };
  }

  private partitionsOf(
    command: Pick<Command, 'fromAccountId' | 'toAccountId'>,
  ): Omit<Routed, 'command'> {
    const source = command.fromAccountId ?? command.toAccountId;
    const destination = command.toAccountId ?? command.fromAccountId;
    assert(source && destination, 'a command names at least one account');
    return {
      srcPartition: partitionOf(source, this.deps.partitions),
      dstPartition: partitionOf(destination, this.deps.partitions),
    };
  }

  private async enqueueForRecording(commands: readonly Routed[]): Promise<SubmitResult[]> {
    const chunks: Promise<SubmitResult[]>[] = [];
    for (let i = 0; i < commands.length; i += SUBMIT_BATCH_MAX) {
      const chunk = commands.slice(i, i + SUBMIT_BATCH_MAX);
      chunks.push(
        new Promise((resolve, reject) => {
          this.waiting.push({ commands: chunk, resolve, reject });
          this.kick();
        }),
      );
    }
    return (await Promise.all(chunks)).flat();
  }

  private kick(): void {
    if (this.scheduled || this.inFlight >= SUBMIT_FLUSHES_IN_FLIGHT_MAX) return;
    if (this.waiting.length === 0) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const taken: Waiting[] = [];
    let count = 0;
    while (this.waiting.length > 0) {
      const next = this.waiting[0]!;
      if (taken.length > 0 && count + next.commands.length > SUBMIT_BATCH_MAX) break;
      taken.push(this.waiting.shift()!);
      count += next.commands.length;
    }
    if (taken.length === 0) return;
    this.inFlight += 1;
    this.kick();
    try {
      const results = await this.record(taken.flatMap((w) => w.commands));
      let offset = 0;
      for (const w of taken) {
        w.resolve(results.slice(offset, offset + w.commands.length));
        offset += w.commands.length;
      }
    } catch (err) {
      if (taken.length > 1 && err instanceof InsertRefusedError) {
        // PostgreSQL refused a value the edge let through. The INSERT wrote nothing; each
        // request is recorded again on its own, so the one it refuses fails alone.
        await Promise.all(
          taken.map((w) =>
            this.record(w.commands).then(w.resolve, (e: unknown) => w.reject(e as Error)),
          ),
        );
      } else {
        for (const w of taken) w.reject(err as Error);
      }
    } finally {
      this.inFlight -= 1;
      this.kick();
    }
  }

  private async record(commands: Routed[]): Promise<SubmitResult[]> {
    const rows = this.prepare(commands);
    const inserted = await insertRows(this.deps.pool, rows).catch((err: unknown) => {
      throw isProgrammerPgError(err) ? new InsertRefusedError(err) : err;
    });
    const results = await resolveResults(this.deps.pool, rows, inserted);
    await this.enqueueFirstLegs(rows, inserted);
    return results.map((r, i) => {
      assert(r, `transfer ${rows[i]!.id} was neither inserted nor found by its idempotency key`);
      return r;
    });
  }

  /**
   * A reversal sends a completed transfer's money back. Reversals of one transfer are
   * serialised by an advisory lock, so concurrent ones can never reverse more than it moved.
   */
  async submitReversal(input: {
    originalId: string;
    amountMinor: bigint | null;
    idempotencyScope: string;
    idempotencyKey: string;
  }): Promise<ReversalResult> {
    let result: ReversalResult = { kind: 'not_found' };
    let rows: PreparedRow[] = [];
    let inserted = new Map<string, Transfer>();
    await withClient(this.deps.pool, async (client) => {
      try {
        await client.query('BEGIN');
        await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [
          input.originalId,
        ]);
        const found = await client.query<TransferRow>(
          `SELECT ${TRANSFER_COLUMNS} FROM transfers WHERE id = $1`,
          [input.originalId],
        );
        const original = found.rows[0] ? toTransfer(found.rows[0]) : undefined;
        result = { kind: 'not_found' };
        if (original) {
          const hashInput = JSON.stringify([
            'reversal',
            original.id,
            input.amountMinor?.toString() ?? null,
          ]);
          const reversed = await client.query<{ sum: string }>(
            `SELECT coalesce(sum(amount), 0)::text AS sum FROM transfers
            WHERE reverses_transfer_id = $1 AND status <> 'failed'`,
            [original.id],
          );
          const remaining = original.amountMinor - BigInt(reversed.rows[0]!.sum);
          const amountMinor = input.amountMinor ?? remaining;
          const command: Command = {
            type: 'reversal',
            fromAccountId: original.toAccountId,
            toAccountId: original.fromAccountId,
            amountMinor,
            currency: original.currency,
            reversesTransferId: original.id,
            idempotencyScope: input.idempotencyScope,
            idempotencyKey: input.idempotencyKey,
            hashInput,
          };
          rows = this.prepare([this.route(command)]);
          // A replay is answered before the remainder is checked: it reverses nothing new.
          const replay = await resolveResults(client, rows, inserted);
          if (replay[0]) {
            result = replay[0];
          } else if (original.type !== 'transfer' || original.status !== 'completed') {
            result = { kind: 'not_reversible', detail: 'only completed transfers can be reversed' };
          } else if (amountMinor <= 0n || amountMinor > remaining) {
            result = {
              kind: 'not_reversible',
              detail: `the amount exceeds what is left to reverse (${remaining})`,
            };
          } else {
            inserted = await insertRows(client, rows);
            result = (await resolveResults(client, rows, inserted))[0]!;
          }
        }
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        throw err;
      }
    });
    await this.enqueueFirstLegs(rows, inserted);
    return result;
  }

  private prepare(commands: readonly Routed[]): PreparedRow[] {
    return commands.map((r) => ({
      ...r,
      id: r.command.id ?? newTransferId(),
      hash: requestHash(r.command),
    }));
  }

  private async enqueueFirstLegs(
    rows: readonly PreparedRow[],
    inserted: ReadonlyMap<string, Transfer>,
  ): Promise<void> {
    const legsOf = (rows: readonly PreparedRow[]) =>
      rows
        .filter((r) => inserted.has(r.id))
        .map((r) => ({ transferId: r.id, leg: 'debit' as const, partition: r.srcPartition }));
    // A cancel jumps its partition's queue (LIFO), so that it can reach the owner before the
    // debit it means to stop, however long the backlog.
    const legs = legsOf(rows.filter((r) => r.command.type !== 'cancel'));
    const urgent = legsOf(rows.filter((r) => r.command.type === 'cancel'));
    if (legs.length === 0 && urgent.length === 0) return;
    try {
      await Promise.all([
        this.deps.dispatcher.enqueue(legs),
        this.deps.dispatcher.enqueue(urgent, { lifo: true }),
      ]);
    } catch (err) {
      // The rows are committed: the sweep will put them on the queues. Latency, not loss.
      this.deps.onEnqueueError?.(err as Error);
    }
  }
}

/**
 * One statement, fixed parameter count. ON CONFLICT DO NOTHING on the idempotency key also
 * covers racing requests with one key: the loser waits for the winner's commit, then sees it.
 * No foreign keys, so no lock is taken on any account row.
 */
async function insertRows(
  q: Queryable,
  rows: readonly PreparedRow[],
): Promise<Map<string, Transfer>> {
  for (const { command: c } of rows) {
    // Callers validate first; a command reaching here malformed is a bug in the caller.
    assert(hasShape(c), `a ${c.type} names the wrong accounts`);
    assert(
      c.type === 'close' || c.type === 'cancel' ? c.amountMinor === 0n : c.amountMinor > 0n,
      'amounts are positive (a close or a cancel moves none)',
    );
  }
  const inserted = await q.query<TransferRow>({
    name: 'ledgerline_intake_insert',
    text: `INSERT INTO transfers (id, type, from_account_id, to_account_id, amount, currency,
            description, reverses_transfer_id, request_hash, idempotency_scope, idempotency_key,
            src_partition, dst_partition, cancels_transfer_id, expires_at)
     SELECT * FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::uuid[], $5::bigint[],
            $6::text[], $7::text[], $8::uuid[], $9::text[], $10::text[], $11::text[],
            $12::int[], $13::int[], $14::uuid[], $15::timestamptz[])
     ON CONFLICT (idempotency_scope, idempotency_key) DO NOTHING
     RETURNING ${TRANSFER_COLUMNS}`,
    values: [
      rows.map((r) => r.id),
      rows.map((r) => r.command.type),
      rows.map((r) => r.command.fromAccountId),
      rows.map((r) => r.command.toAccountId),
      rows.map((r) => r.command.amountMinor.toString()),
      rows.map((r) => r.command.currency),
      rows.map((r) => r.command.description ?? null),
      rows.map((r) => r.command.reversesTransferId ?? null),
      rows.map((r) => r.hash),
      rows.map((r) => r.command.idempotencyScope),
      rows.map((r) => r.command.idempotencyKey ?? null),
      rows.map((r) => r.srcPartition),
      rows.map((r) => r.dstPartition),
      rows.map((r) => r.command.cancelsTransferId ?? null),
      rows.map((r) => r.command.expiresAt?.toISOString() ?? null),
    ],
  });
  return new Map(inserted.rows.map((r) => [r.id, toTransfer(r)]));
}

/**
 * The outcome of each prepared row: inserted now, or the transfer that already holds its
 * idempotency key (a replay when the request matches, a reuse error when it does not).
 * Rows neither inserted nor found by key come back as undefined.
 */
async function resolveResults(
  q: Queryable,
  rows: readonly PreparedRow[],
  inserted: ReadonlyMap<string, Transfer>,
): Promise<(SubmitResult | undefined)[]> {
  const losers = rows.filter((r) => !inserted.has(r.id) && r.command.idempotencyKey);
  const existing = new Map<string, { transfer: Transfer; hash: string }>();
  if (losers.length > 0) {
    const res = await q.query<TransferRow & { request_hash: string; k: string }>(
      `SELECT ${TRANSFER_COLUMNS}, request_hash, idempotency_scope || E'\\n' || idempotency_key AS k
         FROM transfers
        WHERE (idempotency_scope, idempotency_key) IN
              (SELECT * FROM unnest($1::text[], $2::text[]))`,
      [losers.map((r) => r.command.idempotencyScope), losers.map((r) => r.command.idempotencyKey)],
    );
    for (const r of res.rows) existing.set(r.k, { transfer: toTransfer(r), hash: r.request_hash });
  }
  return rows.map((r): SubmitResult | undefined => {
    const mine = inserted.get(r.id);
    if (mine) return { kind: 'accepted', transfer: mine };
    const found = existing.get(`${r.command.idempotencyScope}\n${r.command.idempotencyKey}`);
    if (!found) return undefined;
    return found.hash === r.hash
      ? { kind: 'replayed', transfer: found.transfer }
      : { kind: 'idempotency_key_reused', transfer: found.transfer };
  });
}
