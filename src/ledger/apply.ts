// The batch applier: reads what a batch of legs needs (little, with the owner's memory), plans
// it, and writes it all in one statement inside one READ COMMITTED transaction that first proves
// this process still owns the partition.
import type pg from 'pg';
import type {
  FailureCode,
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
  type Plan,
  type SubBalanceState,
  type TransferState,
} from './plan';

/** The partition's epoch moved on: another process owns it now. Nothing was written. */
export class FencedError extends Error {
  override name = 'FencedError';
  constructor(partition: number, epoch: bigint) {
    super(`partition ${partition}: epoch ${epoch} was fenced out`);
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
/** NOTIFY payloads must stay under 8,000 bytes; a uuid plus a comma is 37. */
const NOTIFY_IDS_MAX = 200;

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

export async function applyBatch(
  client: pg.PoolClient,
  own: Ownership,
  legs: readonly LegRef[],
  isLocal: (accountId: string) => boolean,
  memory: OwnerMemory = emptyMemory(),
): Promise<Plan> {
  // Reads happen before the transaction: every row they rely on is written only by this
  // partition's owner (us, between batches) or was committed before its leg was enqueued. The
  // guards in the write re-check all of it, and the fence proves we still own the partition.
  const transferIds = [...new Set(legs.map((l) => l.transferId))];
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
  const rows = await read(transferIds);
  // A cancel acts on another transfer of this partition: its row joins the batch (a second read
  // only when the batch holds a cancel, so the hot path never pays for it).
  const targets = rows.rows
    .map((r) => r.cancels_transfer_id)
    .filter((id): id is string => id !== null && !transferIds.includes(id));
  if (targets.length > 0) rows.rows.push(...(await read(targets)).rows);

  const transfers = new Map<string, TransferState>();
  /** Local accounts first met in this batch: they join the memory once it commits. */
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
  for (const r of rows.rows) {
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
    see(r.from_account_id, r.f);
    see(r.to_account_id, r.t);
    currencies.add(r.currency);
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
    transfers,
    accounts,
    subBalances: memory.subBalances,
    isLocal,
    nowMs: rows.rows[0]?.now_ms ?? Date.now(),
  });
  if (p.appliedLegs.length === 0) return p;

  await client.query('BEGIN ISOLATION LEVEL READ COMMITTED');
  try {
    await write(client, own, p, memory.applySeq);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }

  // Committed: the memory moves to the state just written.
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
  await announce(client, p);
  return p;
}

/**
 * Wakes the long-polls of the transfers this batch finished, and the event streams of the
 * accounts it posted to. Sent after the commit, on its own: a NOTIFY inside the batch would take
 * PostgreSQL's one notify lock across the commit's WAL flush and line up every partition's
 * commits behind it. Lost (a crash right after the commit), it costs a waiting client the rest of
 * its wait, never a transfer or an event (streams read the entries themselves).
 */
async function announce(client: pg.PoolClient, p: Plan): Promise<void> {
  const finished = p.transferWrites
    .filter((w) => w.status === 'completed' || w.status === 'failed')
    .map((w) => w.id);
  const posted = [...new Set(p.entries.map((e) => e.accountId))];
  const channels: string[] = [];
  const payloads: string[] = [];
  for (const [channel, ids] of [
    [TRANSFER_FINAL_CHANNEL, finished],
    [ACCOUNT_ENTRIES_CHANNEL, posted],
  ] as const) {
    for (let i = 0; i < ids.length; i += NOTIFY_IDS_MAX) {
      channels.push(channel);
      payloads.push(ids.slice(i, i + NOTIFY_IDS_MAX).join(','));
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

/** What the write statement reports; bigint counts arrive as strings. */
type WriteCounts = {
  fence: string;
  apply_seq: string | null;
  accounts: string;
  subs: string;
  transfers: string;
  legs: string;
  entries: string;
};

/**
 * Every write of the batch in one statement over arrays (unnest): a fixed parameter count at
 * any batch size, one round trip. Each write reads the fence, so the fence's row lock is taken
 * first and a fenced batch writes nothing at all.
 */
async function write(
  client: pg.PoolClient,
  own: Ownership,
  p: Plan,
  applySeqBefore: bigint,
): Promise<void> {
  const { partition } = own;
  const res = await client.query<WriteCounts>({
    name: 'ledgerline_batch_write',
    text: `WITH fence AS (
       UPDATE partitions SET heartbeat_at = now(), apply_seq = apply_seq + $4
        WHERE id = $1 AND epoch = $2 AND owner = $3
       RETURNING apply_seq),
     entries AS (
       INSERT INTO ledger_entries
              (transfer_id, account_id, partition, leg, amount, balance_after, account_version)
       SELECT t, a, $1, l, am, ba, v
         FROM unnest($5::uuid[], $6::uuid[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[])
              AS x(t, a, l, am, ba, v), fence
       RETURNING 1),
     accts AS (
       -- The version guard asserts the single-writer rule: if anyone else wrote the row since
       -- we read it, the count differs and the whole batch rolls back.
       UPDATE accounts a SET balance = x.b, version = x.v, status = x.st
         FROM unnest($11::uuid[], $12::bigint[], $13::bigint[], $14::bigint[], $28::text[])
              AS x(id, b, v, vb, st),
              fence
        WHERE a.id = x.id AND a.version = x.vb
       RETURNING 1),
     subs AS (
       UPDATE system_balances s SET balance = x.b, version = x.v
         FROM unnest($15::uuid[], $16::bigint[], $17::bigint[], $18::bigint[]) AS x(a, b, v, vb),
              fence
        WHERE s.account_id = x.a AND s.partition = $1 AND s.version = x.vb
       RETURNING 1),
     xfers AS (
       -- Guarded transitions: a row not in the state we planned from means a bug, not a race.
       UPDATE transfers t
          SET status = x.s,
              failure_code = x.f,
              debited_at = CASE WHEN x.s = 'debited' AND t.debited_at IS NULL
                                THEN now() ELSE t.debited_at END,
              finished_at = CASE WHEN x.s IN ('completed', 'failed') THEN now() ELSE NULL END
         FROM unnest($19::uuid[], $20::text[], $21::text[], $22::text[], $23::text[])
              AS x(id, sb, fb, s, f), fence
        WHERE t.id = x.id AND t.status = x.sb AND t.failure_code IS NOT DISTINCT FROM x.fb
       RETURNING 1),
     legs AS (
       INSERT INTO applied_legs (partition, apply_seq, transfer_id, leg, outcome, epoch)
       SELECT $1, s, t, l, o, $2
         FROM unnest($24::bigint[], $25::uuid[], $26::text[], $27::text[]) AS x(s, t, l, o), fence
       RETURNING 1)
     SELECT (SELECT count(*) FROM fence) AS fence,
            (SELECT apply_seq FROM fence) AS apply_seq,
            (SELECT count(*) FROM accts) AS accounts,
            (SELECT count(*) FROM subs) AS subs,
            (SELECT count(*) FROM xfers) AS transfers,
            (SELECT count(*) FROM legs) AS legs,
            (SELECT count(*) FROM entries) AS entries`,
    values: [
      partition,
      own.epoch.toString(),
      own.owner,
      (p.applySeqAfter - applySeqBefore).toString(),
      p.entries.map((e) => e.transferId),
      p.entries.map((e) => e.accountId),
      p.entries.map((e) => e.leg),
      p.entries.map((e) => e.amount.toString()),
      p.entries.map((e) => e.balanceAfter.toString()),
      p.entries.map((e) => e.accountVersion.toString()),
      p.accountWrites.map((w) => w.id),
      p.accountWrites.map((w) => w.balance.toString()),
      p.accountWrites.map((w) => w.version.toString()),
      p.accountWrites.map((w) => w.versionBefore.toString()),
      p.subBalanceWrites.map((w) => w.accountId),
      p.subBalanceWrites.map((w) => w.balance.toString()),
      p.subBalanceWrites.map((w) => w.version.toString()),
      p.subBalanceWrites.map((w) => w.versionBefore.toString()),
      p.transferWrites.map((w) => w.id),
      p.transferWrites.map((w) => w.statusBefore),
      p.transferWrites.map((w) => w.failureCodeBefore),
      p.transferWrites.map((w) => w.status),
      p.transferWrites.map((w) => w.failureCode),
      p.appliedLegs.map((a) => a.applySeq.toString()),
      p.appliedLegs.map((a) => a.transferId),
      p.appliedLegs.map((a) => a.leg),
      p.appliedLegs.map((a) => a.outcome),
      p.accountWrites.map((w) => w.status),
    ],
  });
  const counts = res.rows[0]!;
  if (counts.fence === '0') throw new FencedError(partition, own.epoch);
  assert(
    counts.apply_seq === p.applySeqAfter.toString(),
    `partition ${partition}: apply_seq moved under its single writer`,
  );
  assert(
    Number(counts.accounts) === p.accountWrites.length,
    `partition ${partition}: an account row changed under its single writer`,
  );
  assert(
    Number(counts.subs) === p.subBalanceWrites.length,
    `partition ${partition}: a sub-balance row changed under its single writer`,
  );
  assert(
    Number(counts.transfers) === p.transferWrites.length,
    `partition ${partition}: a transfer left the status its leg was planned from`,
  );
  assert(
    Number(counts.legs) === p.appliedLegs.length && Number(counts.entries) === p.entries.length,
    `partition ${partition}: not every leg or entry was written`,
  );
}
