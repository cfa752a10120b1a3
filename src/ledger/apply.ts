// The batch applier: reads what a batch of legs needs (little, with the owner's memory), plans
// it, and writes it all in one statement inside one READ COMMITTED transaction that first proves
// this process still owns the partition.
import type pg from 'pg';
import type {
  FailureCode,
  Leg,
  LegRef,
  SystemName,
  TransferStatus,
  TransferType,
} from '../domain/transfer';
import { assert } from '../shared/assert';
import {
  plan,
  systemKey,
  type AccountState,
  type Entry,
  type Plan,
  type SubBalanceState,
  type TransferState,
  type TransferWrite,
} from './plan';

/** The partition's epoch moved on: another process owns it now. Nothing was written. */
export class FencedError extends Error {
  override name = 'FencedError';
  /** The partitions whose epoch moved on; the batch's other partitions may be retried. */
  readonly partitions: number[];
  constructor(fenced: readonly Ownership[]) {
    super(
      fenced.map((o) => `partition ${o.partition}: epoch ${o.epoch} was fenced out`).join('; '),
    );
    this.partitions = fenced.map((o) => o.partition);
  }
}

export type Ownership = { partition: number; epoch: bigint; owner: string };

/**
 * The owner's memory: it is the only writer of its partition's balance rows, so it keeps their
 * state between batches instead of reading it again. The version guard on every write proves
 * nobody else wrote; a failed guard is a crash, never a retry. One memory lives within one epoch:
 * a new claim starts with an empty one.
 */
export type OwnerMemory = {
  /** Local customer accounts, as of the last commit. */
  accounts: Map<string, AccountState>;
  /** This partition's system sub-balances, keyed by `systemKey`. */
  subBalances: Map<string, SubBalanceState>;
  /** The last apply sequence used on this partition; undefined until first read. */
  applySeq: bigint | undefined;
};

export function emptyMemory(): OwnerMemory {
  return { accounts: new Map(), subBalances: new Map(), applySeq: undefined };
}

/** Where notifications of final transfers go; the intake's long-poll listens here. */
export const TRANSFER_FINAL_CHANNEL = 'ledgerline_transfer_final';
/** Accounts that have new ledger entries; the web's event streams listen. */
export const ACCOUNT_ENTRIES_CHANNEL = 'ledgerline_account_entries';
/** NOTIFY payloads must stay under 8,000 bytes (PostgreSQL's limit), separators included. */
const NOTIFY_PAYLOAD_BYTES_MAX = 7_900;

/**
 * How a transfer ended, as the batch that ended it knows: all a reader of the transfer's row would
 * learn that the intake did not already have (status, failure code, finish time, the balances
 * after). Carried in the final notification, so that a long-poll answers without reading the row.
 */
export type FinalState = {
  status: 'completed' | 'failed';
  failureCode: FailureCode | null;
  finishedAt: Date;
  fromBalanceAfter: bigint | null;
  toBalanceAfter: bigint | null;
};

/** One transfer in a final notification: its id, and its final state when the batch knew it. */
export type FinalNotice = { id: string; final?: FinalState };

const NONE = '-';
const AMOUNT = /^-?[0-9]{1,20}$/;

/** A notice as the payload carries it; `readFinalNotices` reads it back. */
export function encodeNotice({ id, final }: FinalNotice): string {
  if (!final) return id;
  const { status, failureCode, finishedAt, fromBalanceAfter, toBalanceAfter } = final;
  return [
    id,
    status,
    failureCode ?? NONE,
    finishedAt.toISOString(),
    fromBalanceAfter ?? NONE,
    toBalanceAfter ?? NONE,
  ].join(' ');
}

/**
 * The notices of a final notification's payload: comma-separated, each an id alone or an id and
 * its final state. What does not parse is read as the id alone (its reader reads the row), and
 * never throws: a payload from another version or another sender cannot stop the listener.
 */
export function readFinalNotices(payload: string): FinalNotice[] {
  return payload.split(',').map(readFinalNotice);
}

/** The transfer a notice names, read without reading the rest of it. */
export function noticeId(item: string): string {
  const space = item.indexOf(' ');
  return space < 0 ? item : item.slice(0, space);
}

/** One notice of a payload (see `readFinalNotices`). */
export function readFinalNotice(item: string): FinalNotice {
  const [id, status, failure, finished, from, to] = item.split(' ') as (string | undefined)[];
  const finishedAt = finished === undefined ? undefined : new Date(finished);
  if (
    (status !== 'completed' && status !== 'failed') ||
    failure === undefined ||
    finishedAt === undefined ||
    Number.isNaN(finishedAt.getTime()) ||
    from === undefined ||
    to === undefined ||
    !(from === NONE || AMOUNT.test(from)) ||
    !(to === NONE || AMOUNT.test(to))
  ) {
    return { id: id! };
  }
  const amount = (text: string) => (text === NONE ? null : BigInt(text));
  return {
    id: id!,
    final: {
      status,
      failureCode: failure === NONE ? null : (failure as FailureCode),
      finishedAt,
      fromBalanceAfter: amount(from),
      toBalanceAfter: amount(to),
    },
  };
}

type AccountColumns = {
  currency: string | null;
  kind: 'customer' | 'system' | null;
  status: 'open' | 'closed' | null;
  overdraft_limit: string | null;
  balance: string | null;
  version: string | null;
};
/** A transfer with both of its accounts, as one row: one round trip reads a batch. */
type TransferRow = {
  id: string;
  type: TransferType;
  from_account_id: string | null;
  to_account_id: string | null;
  amount: string;
  currency: string;
  status: TransferStatus;
  failure_code: FailureCode | null;
  src_partition: number;
  dst_partition: number;
  cancels_transfer_id: string | null;
  expires_ms: number | null;
  /** PostgreSQL's clock, like the leases': `expires_at` is judged by it, not by a worker's. */
  now_ms: number;
  f: AccountColumns | null;
  t: AccountColumns | null;
};
type SubBalanceRow = {
  id: string;
  system_name: SystemName;
  currency: string;
  balance: string;
  version: string;
};

function accountState(id: string, c: AccountColumns): AccountState {
  return {
    id,
    currency: c.currency!,
    kind: c.kind!,
    status: c.status!,
    overdraftLimit: BigInt(c.overdraft_limit!),
    balance: BigInt(c.balance!),
    version: BigInt(c.version!),
  };
}

/** One partition's share of a batch: its legs in order, applied under its epoch and memory. */
export type BatchPart = {
  own: Ownership;
  legs: readonly LegRef[];
  isLocal: (accountId: string) => boolean;
  memory: OwnerMemory;
};

type Planned = {
  part: BatchPart;
  plan: Plan;
  /** Local accounts first met in this batch: they join the part's memory once it commits. */
  fresh: Map<string, AccountState>;
};

function emptyPlan(memory: OwnerMemory): Plan {
  return {
    entries: [],
    accountWrites: [],
    subBalanceWrites: [],
    transferWrites: [],
    appliedLegs: [],
    forward: [],
    results: [],
    applySeqAfter: memory.applySeq ?? 0n,
  };
}

/** One partition's batch on its own (a process-level batch of one part). */
export async function applyBatch(
  client: pg.PoolClient,
  own: Ownership,
  legs: readonly LegRef[],
  isLocal: (accountId: string) => boolean,
  memory: OwnerMemory = emptyMemory(),
): Promise<Plan> {
  const [p] = await applyBatches(client, [{ own, legs, isLocal, memory }]);
  return p!;
}

/**
 * The legs waiting at every partition this process owns, applied together: one read, one plan
 * per partition (each with its own apply sequence, sub-balances and memory, as if alone), and
 * one transaction with one write statement that proves every partition's epoch. A fenced
 * partition rolls the whole transaction back (FencedError names it), so the caller retries the
 * others without it; nothing is ever written under a lost epoch. Plans come back in parts' order.
 */
export async function applyBatches(
  client: pg.PoolClient,
  parts: readonly BatchPart[],
  opts: { chainCredits?: boolean } = {},
): Promise<Plan[]> {
  // Reads happen before the transaction: every row they rely on is written only by a partition's
  // owner (this process, between batches) or was committed before its leg was enqueued. The
  // guards in the write re-check all of it, and the fence proves we still own each partition.
  const transferIds = [...new Set(parts.flatMap((part) => part.legs.map((l) => l.transferId)))];
  const read = (ids: readonly string[]) =>
    // Named, so each connection plans it once (likewise every statement of the hot path).
    client.query<TransferRow>({
      name: 'ledgerline_batch_read',
      text: `SELECT t.id, t.type, t.from_account_id, t.to_account_id, t.amount, t.currency, t.status,
              t.failure_code, t.src_partition, t.dst_partition, t.cancels_transfer_id,
              (extract(epoch FROM t.expires_at) * 1000)::float8 AS expires_ms,
              (extract(epoch FROM now()) * 1000)::float8 AS now_ms,
              CASE WHEN f.id IS NULL THEN NULL ELSE json_build_object('currency', f.currency,
                'kind', f.kind, 'status', f.status, 'overdraft_limit', f.overdraft_limit::text,
                'balance', f.balance::text, 'version', f.version::text) END AS f,
              CASE WHEN d.id IS NULL THEN NULL ELSE json_build_object('currency', d.currency,
                'kind', d.kind, 'status', d.status, 'overdraft_limit', d.overdraft_limit::text,
                'balance', d.balance::text, 'version', d.version::text) END AS t
         FROM transfers t
         LEFT JOIN accounts f ON f.id = t.from_account_id
         LEFT JOIN accounts d ON d.id = t.to_account_id
        WHERE t.id = ANY($1::uuid[])`,
      values: [ids],
    });
  const rows = (await read(transferIds)).rows;
  // A cancel acts on another transfer of its partition: its row joins the batch (a second read
  // only when the batch holds a cancel, so the hot path never pays for it).
  const known = new Set(transferIds);
  const targets = rows
    .map((r) => r.cancels_transfer_id)
    .filter((id): id is string => id !== null && !known.has(id));
  if (targets.length > 0) rows.push(...(await read([...new Set(targets)])).rows);

  const byId = new Map<string, TransferRow>();
  const transfers = new Map<string, TransferState>();
  for (const r of rows) {
    byId.set(r.id, r);
    transfers.set(r.id, {
      id: r.id,
      type: r.type,
      fromAccountId: r.from_account_id,
      toAccountId: r.to_account_id,
      amount: BigInt(r.amount),
      currency: r.currency,
      status: r.status,
      failureCode: r.failure_code,
      srcPartition: r.src_partition,
      dstPartition: r.dst_partition,
      cancelsTransferId: r.cancels_transfer_id,
      expiresAtMs: r.expires_ms,
    });
  }
  const nowMs = rows[0]?.now_ms ?? Date.now();

  /** One partition's plan for these legs, as if alone; its memory is not touched until commit. */
  const planPart = async (
    part: BatchPart,
    legs: readonly LegRef[],
    transfersNow: ReadonlyMap<string, TransferState>,
  ): Promise<Planned> => {
    const { own, memory, isLocal } = part;
    const fresh = new Map<string, AccountState>();
    const accounts = new Map<string, AccountState>();
    const currencies = new Set<string>();
    const see = (id: string | null, columns: AccountColumns | null) => {
      if (id === null || columns === null || accounts.has(id)) return;
      const remembered = memory.accounts.get(id);
      if (remembered) {
        accounts.set(id, remembered);
        return;
      }
      const state = accountState(id, columns);
      accounts.set(id, state);
      if (state.kind === 'customer' && isLocal(id)) fresh.set(id, state);
    };
    const seeTransfer = (r: TransferRow | undefined) => {
      if (!r) return;
      see(r.from_account_id, r.f);
      see(r.to_account_id, r.t);
      currencies.add(r.currency);
    };
    for (const leg of legs) {
      const r = byId.get(leg.transferId);
      seeTransfer(r);
      if (r?.cancels_transfer_id) seeTransfer(byId.get(r.cancels_transfer_id));
    }
    await rememberSubBalances(client, own.partition, currencies, memory);
    if (memory.applySeq === undefined) {
      const res = await client.query<{ apply_seq: string }>(
        'SELECT apply_seq FROM partitions WHERE id = $1',
        [own.partition],
      );
      assert(res.rows[0], `partition ${own.partition} has no row`);
      memory.applySeq = BigInt(res.rows[0].apply_seq);
    }
    const p = plan({
      partition: own.partition,
      applySeqBefore: memory.applySeq,
      legs,
      transfers: transfersNow,
      accounts,
      subBalances: memory.subBalances,
      isLocal,
      nowMs,
    });
    return { part, plan: p, fresh };
  };

  const planned: (Planned | undefined)[] = [];
  for (const part of parts) {
    planned.push(part.legs.length > 0 ? await planPart(part, part.legs, transfers) : undefined);
  }
  /** Credit legs applied in this batch, right behind their debits: (transfer id) → partition. */
  const chained = new Map<string, number>();
  if (opts.chainCredits) {
    // A credit bound for another partition of this process joins that partition's part of this
    // same batch instead of waiting for the next one: planned after the partition's own legs,
    // from the transfer as its debit left it. One wave only: what the credits send on (a refund)
    // goes to the next batch.
    const indexOf = new Map(parts.map((part, i) => [part.own.partition, i]));
    const extra = new Map<number, LegRef[]>();
    /** Per receiving part: its chained transfers as their debits left them. Only those: the
     *  part's own legs are planned from the rows as read, like every other part's. */
    const after = new Map<number, Map<string, TransferState>>();
    planned.forEach((entry, i) => {
      if (!entry) return;
      const writes = new Map(entry.plan.transferWrites.map((w) => [w.id, w]));
      for (const f of entry.plan.forward) {
        const j = indexOf.get(f.partition);
        if (f.leg !== 'credit' || j === undefined || j === i || chained.has(f.transferId)) {
          continue;
        }
        chained.set(f.transferId, f.partition);
        const legs = extra.get(j) ?? [];
        legs.push({ transferId: f.transferId, leg: 'credit' });
        extra.set(j, legs);
        const w = writes.get(f.transferId);
        if (w) {
          const overlay = after.get(j) ?? new Map(transfers);
          overlay.set(f.transferId, {
            ...transfers.get(f.transferId)!,
            status: w.status,
            failureCode: w.failureCode,
          });
          after.set(j, overlay);
        }
      }
    });
    for (const [j, legs] of extra) {
      const part = parts[j]!;
      planned[j] = await planPart(part, [...part.legs, ...legs], after.get(j) ?? transfers);
    }
    for (const entry of planned) {
      if (!entry) continue;
      entry.plan.forward = entry.plan.forward.filter(
        (f) => !(f.leg === 'credit' && chained.get(f.transferId) === f.partition),
      );
    }
  }
  const plans = planned.map((entry, i) => entry?.plan ?? emptyPlan(parts[i]!.memory));

  const writing = planned.filter(
    (entry): entry is Planned => entry !== undefined && entry.plan.appliedLegs.length > 0,
  );
  if (writing.length === 0) return plans;

  let finishedAt: Date;
  await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
  try {
    finishedAt = await write(client, writing, chained);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }

  // Committed: each memory moves to the state just written.
  for (const { part, plan: p, fresh } of writing) {
    const { memory } = part;
    for (const [id, state] of fresh) memory.accounts.set(id, { ...state });
    for (const w of p.accountWrites) {
      const remembered = memory.accounts.get(w.id);
      assert(remembered, `account ${w.id} was written but never read`);
      remembered.balance = w.balance;
      remembered.version = w.version;
      remembered.status = w.status;
    }
    for (const w of p.subBalanceWrites) {
      const remembered = memory.subBalances.get(w.key);
      assert(remembered, `sub-balance ${w.key} was written but never read`);
      remembered.balance = w.balance;
      remembered.version = w.version;
    }
    memory.applySeq = p.applySeqAfter;
  }
  await announce(
    client,
    writing.map((w) => w.plan),
    { transfers, finishedAt },
  );
  return plans;
}

/**
 * Wakes the long-polls of the transfers this batch finished (with how they ended, where the batch
 * knows: `finalNotices`), and the event streams of the accounts it posted to. Sent after the
 * commit, on its own: a NOTIFY inside the batch would take PostgreSQL's one notify lock across the
 * commit's WAL flush and line up every partition's commits behind it. Lost (a crash right after
 * the commit), it costs a waiting client the rest of its wait, never a transfer or an event
 * (streams read the entries themselves).
 */
async function announce(
  client: pg.PoolClient,
  plans: readonly Plan[],
  batch: { transfers: ReadonlyMap<string, TransferState>; finishedAt: Date },
): Promise<void> {
  const finished = finalNotices(plans, batch).map(encodeNotice);
  const posted = [...new Set(plans.flatMap((p) => p.entries.map((e) => e.accountId)))];
  const channels: string[] = [];
  const payloads: string[] = [];
  for (const [channel, items] of [
    [TRANSFER_FINAL_CHANNEL, finished],
    [ACCOUNT_ENTRIES_CHANNEL, posted],
  ] as const) {
    let payload = '';
    for (const item of items) {
      if (payload !== '' && payload.length + 1 + item.length > NOTIFY_PAYLOAD_BYTES_MAX) {
        channels.push(channel);
        payloads.push(payload);
        payload = '';
      }
      payload = payload === '' ? item : `${payload},${item}`;
    }
    if (payload !== '') {
      channels.push(channel);
      payloads.push(payload);
    }
  }
  if (payloads.length === 0) return;
  await client.query({
    name: 'ledgerline_announce',
    text: 'SELECT count(pg_notify(ch, ids)::text) FROM unnest($1::text[], $2::text[]) AS x(ch, ids)',
    values: [channels, payloads],
  });
}

/**
 * The transfers this batch ended, each with its final state when every entry it posted is in
 * this batch, which is so when its debit leg was applied here (a credit never comes before its
 * debit). The balances after are found as the API's read finds them: the debit leg's entry on
 * the source account, and the entry on the destination account. Otherwise the id alone.
 */
function finalNotices(
  plans: readonly Plan[],
  batch: { transfers: ReadonlyMap<string, TransferState>; finishedAt: Date },
): FinalNotice[] {
  const debited = new Set<string>();
  const entries = new Map<string, Entry[]>();
  for (const p of plans) {
    for (const a of p.appliedLegs) if (a.leg === 'debit') debited.add(a.transferId);
    for (const e of p.entries) {
      const list = entries.get(e.transferId);
      if (list) list.push(e);
      else entries.set(e.transferId, [e]);
    }
  }
  const notices: FinalNotice[] = [];
  for (const p of plans) {
    for (const w of p.transferWrites) {
      if (w.status !== 'completed' && w.status !== 'failed') continue;
      const t = batch.transfers.get(w.id);
      if (!t || !debited.has(w.id)) {
        notices.push({ id: w.id });
        continue;
      }
      const posted = entries.get(w.id) ?? [];
      const after = (account: string | null, legs: readonly Leg[]) =>
        w.status !== 'completed' || account === null
          ? null
          : (posted.find((e) => e.accountId === account && legs.includes(e.leg))?.balanceAfter ??
            null);
      notices.push({
        id: w.id,
        final: {
          status: w.status,
          failureCode: w.failureCode,
          finishedAt: batch.finishedAt,
          fromBalanceAfter: after(t.fromAccountId, ['debit']),
          toBalanceAfter: after(t.toAccountId, ['debit', 'credit']),
        },
      });
    }
  }
  return notices;
}

/**
 * Loads, once per epoch and currency, this partition's system sub-balances, creating the rows at
 * zero if this partition never used them: afterwards every write to them is a guarded UPDATE.
 */
async function rememberSubBalances(
  client: pg.PoolClient,
  partition: number,
  currencies: ReadonlySet<string>,
  memory: OwnerMemory,
): Promise<void> {
  const missing = [...currencies].filter(
    (c) => !memory.subBalances.has(systemKey('settlement', c)),
  );
  if (missing.length === 0) return;
  await client.query(
    `INSERT INTO system_balances (account_id, partition)
     SELECT id, $2 FROM accounts WHERE kind = 'system' AND currency = ANY($1::text[])
     ON CONFLICT DO NOTHING`,
    [missing, partition],
  );
  const res = await client.query<SubBalanceRow>(
    `SELECT a.id, a.system_name, a.currency, s.balance, s.version
       FROM accounts a JOIN system_balances s ON s.account_id = a.id AND s.partition = $2
      WHERE a.kind = 'system' AND a.currency = ANY($1::text[])`,
    [missing, partition],
  );
  for (const r of res.rows) {
    memory.subBalances.set(systemKey(r.system_name, r.currency), {
      accountId: r.id,
      balance: BigInt(r.balance),
      version: BigInt(r.version),
    });
  }
}

/**
 * The batch's transfer writes, one per transfer: a transfer whose credit was chained behind its
 * debit was planned by two partitions (accepted → debited, then debited → completed or a failed
 * credit) and is written once, from its first state to its last. Any other transfer planned by
 * two partitions of one batch is a bug.
 */
function mergeTransferWrites(
  writing: readonly { part: BatchPart; plan: Plan }[],
  chained: ReadonlyMap<string, number>,
): { w: TransferWrite; partition: number; debited: boolean }[] {
  const merged = new Map<string, { w: TransferWrite; partition: number; debited: boolean }>();
  for (const { part, plan: p } of writing) {
    for (const w of p.transferWrites) {
      const other = merged.get(w.id);
      if (!other) {
        merged.set(w.id, { w, partition: part.own.partition, debited: w.status === 'debited' });
        continue;
      }
      // Parts are in partition order, so the credit's part may come first.
      const byCredit = chained.get(w.id) === part.own.partition;
      const [debit, credit] = byCredit ? [other.w, w] : [w, other.w];
      assert(
        chained.has(w.id) &&
          debit.status === 'debited' &&
          credit.statusBefore === 'debited' &&
          debit.failureCode === credit.failureCodeBefore,
        `transfer ${w.id} planned by two partitions in one batch`,
      );
      merged.set(w.id, {
        w: {
          ...credit,
          statusBefore: debit.statusBefore,
          failureCodeBefore: debit.failureCodeBefore,
        },
        partition: part.own.partition,
        debited: true,
      });
    }
  }
  return [...merged.values()];
}

/** What the write statement reports; bigint counts arrive as strings. */
type WriteCounts = {
  /** The transaction's `now()`: the `finished_at` the statement wrote. */
  at: Date;
  fenced_ids: number[] | null;
  apply_seqs: string[] | null;
  accounts: string;
  subs: string;
  transfers: string;
  legs: string;
  entries: string;
};

/**
 * Every write of the batch, all its partitions, in one statement over arrays (unnest): a fixed
 * parameter count at any batch size, one round trip. Returns the transaction's `now()`. Every row
 * carries its partition and is written only through that partition's fence row, so the fence's
 * row locks are taken first and a fenced partition writes nothing (and the caller rolls the rest
 * back).
 */
async function write(
  client: pg.PoolClient,
  writing: readonly { part: BatchPart; plan: Plan }[],
  chained: ReadonlyMap<string, number>,
): Promise<Date> {
  const owners = new Set(writing.map((w) => w.part.own.owner));
  assert(owners.size === 1, "one batch is one process's");
  const owner = writing[0]!.part.own.owner;
  // Each row's partition and epoch, beside the row's own columns.
  const each = <T>(pick: (p: Plan) => readonly T[]) =>
    writing.flatMap(({ part, plan: p }) => pick(p).map(() => part.own));
  const entries = writing.flatMap((w) => w.plan.entries);
  const accountWrites = writing.flatMap((w) => w.plan.accountWrites);
  const subWrites = writing.flatMap((w) => w.plan.subBalanceWrites);
  const transferWrites = mergeTransferWrites(writing, chained);
  const appliedLegs = writing.flatMap((w) => w.plan.appliedLegs);
  const res = await client.query<WriteCounts>({
    name: 'ledgerline_batch_write',
    text: `WITH fence AS (
       UPDATE partitions p SET heartbeat_at = now(), apply_seq = p.apply_seq + x.d
         FROM unnest($1::int[], $2::bigint[], $4::bigint[]) AS x(id, e, d)
        WHERE p.id = x.id AND p.epoch = x.e AND p.owner = $3
       RETURNING p.id, p.apply_seq),
     entries AS (
       INSERT INTO ledger_entries
              (transfer_id, account_id, partition, leg, amount, balance_after, account_version)
       SELECT x.t, x.a, x.p, x.l, x.am, x.ba, x.v
         FROM unnest($5::uuid[], $6::uuid[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[],
                     $29::int[]) AS x(t, a, l, am, ba, v, p)
         JOIN fence f ON f.id = x.p
       RETURNING 1),
     accts AS (
       -- The version guard asserts the single-writer rule: if anyone else wrote the row since
       -- we read it, the count differs and the whole batch rolls back.
       UPDATE accounts a SET balance = x.b, version = x.v, status = x.st
         FROM unnest($11::uuid[], $12::bigint[], $13::bigint[], $14::bigint[], $28::text[],
                     $30::int[]) AS x(id, b, v, vb, st, p)
         JOIN fence f ON f.id = x.p
        WHERE a.id = x.id AND a.version = x.vb
       RETURNING 1),
     subs AS (
       UPDATE system_balances s SET balance = x.b, version = x.v
         FROM unnest($15::uuid[], $16::bigint[], $17::bigint[], $18::bigint[], $31::int[])
              AS x(a, b, v, vb, p)
         JOIN fence f ON f.id = x.p
        WHERE s.account_id = x.a AND s.partition = x.p AND s.version = x.vb
       RETURNING 1),
     xfers AS (
       -- Guarded transitions: a row not in the state we planned from means a bug, not a race.
       UPDATE transfers t
          SET status = x.s,
              failure_code = x.f,
              debited_at = CASE WHEN x.d AND t.debited_at IS NULL
                                THEN now() ELSE t.debited_at END,
              finished_at = CASE WHEN x.s IN ('completed', 'failed') THEN now() ELSE NULL END
         FROM unnest($19::uuid[], $20::text[], $21::text[], $22::text[], $23::text[], $32::int[],
                     $35::boolean[]) AS x(id, sb, fb, s, f, p, d)
         JOIN fence fe ON fe.id = x.p
        WHERE t.id = x.id AND t.status = x.sb AND t.failure_code IS NOT DISTINCT FROM x.fb
       RETURNING 1),
     legs AS (
       INSERT INTO applied_legs (partition, apply_seq, transfer_id, leg, outcome, epoch)
       SELECT x.p, x.s, x.t, x.l, x.o, x.e
         FROM unnest($24::bigint[], $25::uuid[], $26::text[], $27::text[], $33::int[],
                     $34::bigint[]) AS x(s, t, l, o, p, e)
         JOIN fence f ON f.id = x.p
       RETURNING 1)
     SELECT now() AS at,
            (SELECT array_agg(id) FROM fence) AS fenced_ids,
            (SELECT array_agg(apply_seq::text) FROM fence) AS apply_seqs,
            (SELECT count(*) FROM accts) AS accounts,
            (SELECT count(*) FROM subs) AS subs,
            (SELECT count(*) FROM xfers) AS transfers,
            (SELECT count(*) FROM legs) AS legs,
            (SELECT count(*) FROM entries) AS entries`,
    values: [
      writing.map((w) => w.part.own.partition),
      writing.map((w) => w.part.own.epoch.toString()),
      owner,
      writing.map((w) => (w.plan.applySeqAfter - w.part.memory.applySeq!).toString()),
      entries.map((e) => e.transferId),
      entries.map((e) => e.accountId),
      entries.map((e) => e.leg),
      entries.map((e) => e.amount.toString()),
      entries.map((e) => e.balanceAfter.toString()),
      entries.map((e) => e.accountVersion.toString()),
      accountWrites.map((w) => w.id),
      accountWrites.map((w) => w.balance.toString()),
      accountWrites.map((w) => w.version.toString()),
      accountWrites.map((w) => w.versionBefore.toString()),
      subWrites.map((w) => w.accountId),
      subWrites.map((w) => w.balance.toString()),
      subWrites.map((w) => w.version.toString()),
      subWrites.map((w) => w.versionBefore.toString()),
      transferWrites.map(({ w }) => w.id),
      transferWrites.map(({ w }) => w.statusBefore),
      transferWrites.map(({ w }) => w.failureCodeBefore),
      transferWrites.map(({ w }) => w.status),
      transferWrites.map(({ w }) => w.failureCode),
      appliedLegs.map((a) => a.applySeq.toString()),
      appliedLegs.map((a) => a.transferId),
      appliedLegs.map((a) => a.leg),
      appliedLegs.map((a) => a.outcome),
      accountWrites.map((w) => w.status),
      each((p) => p.entries).map((o) => o.partition),
      each((p) => p.accountWrites).map((o) => o.partition),
      each((p) => p.subBalanceWrites).map((o) => o.partition),
      transferWrites.map((t) => t.partition),
      each((p) => p.appliedLegs).map((o) => o.partition),
      each((p) => p.appliedLegs).map((o) => o.epoch.toString()),
      transferWrites.map((t) => t.debited),
    ],
  });
  const counts = res.rows[0]!;
  const fenceIds = counts.fenced_ids ?? [];
  const fenced = writing.filter((w) => !fenceIds.includes(w.part.own.partition));
  if (fenced.length > 0) throw new FencedError(fenced.map((w) => w.part.own));
  const names = writing.map((w) => w.part.own.partition).join(', ');
  writing.forEach((w) => {
    const seq = counts.apply_seqs![fenceIds.indexOf(w.part.own.partition)];
    assert(
      seq === w.plan.applySeqAfter.toString(),
      `partition ${w.part.own.partition}: apply_seq moved under its single writer`,
    );
  });
  assert(
    Number(counts.accounts) === accountWrites.length,
    `partitions ${names}: an account row changed under its single writer`,
  );
  assert(
    Number(counts.subs) === subWrites.length,
    `partitions ${names}: a sub-balance row changed under its single writer`,
  );
  assert(
    Number(counts.transfers) === transferWrites.length,
    `partitions ${names}: a transfer left the status its leg was planned from`,
  );
  assert(
    Number(counts.legs) === appliedLegs.length && Number(counts.entries) === entries.length,
    `partitions ${names}: not every leg or entry was written`,
  );
  return counts.at;
}
