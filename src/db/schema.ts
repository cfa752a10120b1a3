// The PostgreSQL schema. Migrations in drizzle/ are generated from this file, never edited by hand.
import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  char,
  check,
  index,
  integer,
  pgTable,
  primaryKey,
  text,
  timestamp,
  unique,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';
import { FAILURE_CODES, LEGS, TRANSFER_STATUSES, TRANSFER_TYPES } from '../domain/transfer';

const money = (name: string) => bigint(name, { mode: 'bigint' });
/** `'a', 'b', …` for a CHECK … IN (…): the domain's lists are the one source of each enum. */
const inList = (values: readonly string[]) => sql.raw(values.map((v) => `'${v}'`).join(', '));
/** Balances and sequence counters start at zero. */
const zeroBigint = (name: string) =>
  bigint(name, { mode: 'bigint' })
    .notNull()
    .default(sql`0`);
const tstz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/**
 * Customer accounts and the system accounts (`settlement`, `in_transit`, `interest`, one each per
 * currency). A customer balance row is written only by its partition's owner; a system account's
 * money lives in `system_balances`, one row per partition, and its `balance` here stays 0.
 */
export const accounts = pgTable(
  'accounts',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    holder: text('holder').notNull(),
    currency: char('currency', { length: 3 }).notNull(),
    kind: text('kind', { enum: ['customer', 'system'] })
      .notNull()
      .default('customer'),
    systemName: text('system_name', { enum: ['settlement', 'in_transit', 'interest'] }),
    status: text('status', { enum: ['open', 'closed'] })
      .notNull()
      .default('open'),
    overdraftLimit: zeroBigint('overdraft_limit'),
    balance: zeroBigint('balance'),
    /** The per-account entry sequence: the `account_version` of the newest ledger entry. */
    version: zeroBigint('version'),
    createdAt: tstz('created_at').notNull().defaultNow(),
    /**
     * A customer account's partition (a hash of its id, worked out where it is created), so an
     * owner can find its own accounts; null for system accounts, which live on every partition.
     */
    partition: integer('partition'),
  },
  (t) => [
    // Invariant 3: no balance below its overdraft limit, enforced as the last line of defence.
    check('accounts_balance_floor', sql`${t.balance} >= -${t.overdraftLimit}`),
    check('accounts_overdraft_nonnegative', sql`${t.overdraftLimit} >= 0`),
    check('accounts_currency_iso', sql`${t.currency} ~ '^[A-Z]{3}$'`),
    check('accounts_kind', sql`${t.kind} IN ('customer', 'system')`),
    check('accounts_status', sql`${t.status} IN ('open', 'closed')`),
    check('accounts_system_named', sql`(${t.kind} = 'system') = (${t.systemName} IS NOT NULL)`),
    uniqueIndex('accounts_system_per_currency')
      .on(t.systemName, t.currency)
      .where(sql`${t.systemName} IS NOT NULL`),
    check('accounts_partition_nonnegative', sql`${t.partition} >= 0`),
    // An owner pages its accounts by id. Columns the owner updates (balance, status) stay out of
    // every index, so a balance update remains a heap-only (HOT) update.
    index('accounts_partition_id')
      .on(t.partition, t.id)
      .where(sql`${t.kind} = 'customer'`),
  ],
);

/** A system account's balance on one partition: only that partition's owner writes the row. */
export const systemBalances = pgTable(
  'system_balances',
  {
    accountId: uuid('account_id')
      .notNull()
      .references(() => accounts.id),
    partition: integer('partition').notNull(),
    balance: zeroBigint('balance'),
    version: zeroBigint('version'),
  },
  (t) => [primaryKey({ columns: [t.accountId, t.partition] })],
);

/**
 * Transfers are the record of every accepted command and the outbox the sweep re-drives.
 * No foreign keys to accounts: a key-share lock per intake insert on a hot account row would
 * serialise the intake; the worker validates the accounts instead.
 */
export const transfers = pgTable(
  'transfers',
  {
    id: uuid('id').primaryKey(),
    type: text('type', {
      enum: TRANSFER_TYPES,
    }).notNull(),
    fromAccountId: uuid('from_account_id'),
    toAccountId: uuid('to_account_id'),
    amount: money('amount').notNull(),
    currency: char('currency', { length: 3 }).notNull(),
    status: text('status', { enum: TRANSFER_STATUSES }).notNull().default('accepted'),
    failureCode: text('failure_code', { enum: FAILURE_CODES }),
    description: text('description'),
    requestHash: text('request_hash').notNull(),
    idempotencyScope: text('idempotency_scope').notNull(),
    idempotencyKey: text('idempotency_key'),
    reversesTransferId: uuid('reverses_transfer_id'),
    /** For a cancel: the transfer it cancels. */
    cancelsTransferId: uuid('cancels_transfer_id'),
    /** A command not applied by then fails `expired`. */
    expiresAt: tstz('expires_at'),
    /** Where the debit (and refund) leg runs, and where the credit leg runs. */
    srcPartition: integer('src_partition').notNull(),
    dstPartition: integer('dst_partition').notNull(),
    acceptedAt: tstz('accepted_at').notNull().defaultNow(),
    debitedAt: tstz('debited_at'),
    finishedAt: tstz('finished_at'),
  },
  (t) => [
    // A close moves no money: its amount is 0; every movement's is positive.
    check(
      'transfers_amount_positive',
      sql`CASE WHEN ${t.type} IN ('close', 'cancel') THEN ${t.amount} = 0 ELSE ${t.amount} > 0 END`,
    ),
    check('transfers_type', sql`${t.type} IN (${inList(TRANSFER_TYPES)})`),
    // The shape each leg relies on: who pays and who is paid, by type; never oneself.
    check(
      'transfers_shape',
      sql`CASE ${t.type}
            WHEN 'deposit' THEN ${t.fromAccountId} IS NULL AND ${t.toAccountId} IS NOT NULL
            WHEN 'interest' THEN ${t.fromAccountId} IS NULL AND ${t.toAccountId} IS NOT NULL
            WHEN 'withdrawal' THEN ${t.fromAccountId} IS NOT NULL AND ${t.toAccountId} IS NULL
            WHEN 'close' THEN ${t.fromAccountId} IS NOT NULL AND ${t.toAccountId} IS NULL
            WHEN 'cancel' THEN ${t.fromAccountId} IS NOT NULL AND ${t.toAccountId} IS NULL
                 AND ${t.cancelsTransferId} IS NOT NULL
            ELSE ${t.fromAccountId} IS NOT NULL AND ${t.toAccountId} IS NOT NULL
                 AND ${t.fromAccountId} <> ${t.toAccountId}
          END`,
    ),
    check('transfers_status', sql`${t.status} IN (${inList(TRANSFER_STATUSES)})`),
    check('transfers_failure_code', sql`${t.failureCode} IN (${inList(FAILURE_CODES)})`),
    check(
      'transfers_failed_has_code',
      sql`(${t.status} <> 'failed') OR (${t.failureCode} IS NOT NULL)`,
    ),
    check(
      'transfers_completed_no_code',
      sql`(${t.status} <> 'completed') OR (${t.failureCode} IS NULL)`,
    ),
    unique('transfers_idempotency').on(t.idempotencyScope, t.idempotencyKey),
    // The sweep's three questions, each answered by a small partial index.
    index('transfers_sweep_accepted')
      .on(t.srcPartition, t.acceptedAt)
      .where(sql`${t.status} = 'accepted'`),
    index('transfers_sweep_credit')
      .on(t.dstPartition, t.debitedAt)
      .where(sql`${t.status} = 'debited' AND ${t.failureCode} IS NULL`),
    index('transfers_sweep_refund')
      .on(t.srcPartition, t.debitedAt)
      .where(sql`${t.status} = 'debited' AND ${t.failureCode} IS NOT NULL`),
    index('transfers_reverses')
      .on(t.reversesTransferId)
      .where(sql`${t.reversesTransferId} IS NOT NULL`),
  ],
);

/**
 * Every leg that changed a transfer, in the order its partition applied it. The unique
 * (transfer_id, leg) is what makes a redelivered leg impossible to apply twice.
 */
export const appliedLegs = pgTable(
  'applied_legs',
  {
    partition: integer('partition').notNull(),
    applySeq: bigint('apply_seq', { mode: 'bigint' }).notNull(),
    transferId: uuid('transfer_id').notNull(),
    leg: text('leg', { enum: LEGS }).notNull(),
    /** `posted`, or the failure code the leg decided. */
    outcome: text('outcome').notNull(),
    epoch: bigint('epoch', { mode: 'bigint' }).notNull(),
    appliedAt: tstz('applied_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.partition, t.applySeq] }),
    unique('applied_legs_once').on(t.transferId, t.leg),
    check('applied_legs_leg', sql`${t.leg} IN (${inList(LEGS)})`),
  ],
);

/** Append-only: never updated, never deleted. Each local transaction's entries sum to zero. */
export const ledgerEntries = pgTable(
  'ledger_entries',
  {
    transferId: uuid('transfer_id').notNull(),
    accountId: uuid('account_id').notNull(),
    partition: integer('partition').notNull(),
    leg: text('leg', { enum: LEGS }).notNull(),
    amount: money('amount').notNull(),
    balanceAfter: money('balance_after').notNull(),
    /** Per-account (per sub-balance, for system accounts) sequence: 1, 2, 3… with no gaps. */
    accountVersion: bigint('account_version', { mode: 'bigint' }).notNull(),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [
    unique('ledger_entries_once').on(t.transferId, t.accountId, t.leg),
    // The natural key (no surrogate id: fewer writes a row), and the keyset index for
    // per-account history, newest first.
    primaryKey({
      name: 'ledger_entries_account_seq',
      columns: [t.accountId, t.partition, t.accountVersion],
    }),
    check('ledger_entries_amount_nonzero', sql`${t.amount} <> 0`),
    check('ledger_entries_leg', sql`${t.leg} IN (${inList(LEGS)})`),
    check('ledger_entries_version_positive', sql`${t.accountVersion} > 0`),
  ],
);

/** Partition ownership: an expiring lease plus a fencing epoch bumped on every claim. */
export const partitions = pgTable('partitions', {
  id: integer('id').primaryKey(),
  epoch: zeroBigint('epoch'),
  owner: text('owner'),
  leaseExpiresAt: tstz('lease_expires_at'),
  heartbeatAt: tstz('heartbeat_at'),
  /** The last apply sequence used; the next applied leg gets apply_seq + 1. */
  applySeq: zeroBigint('apply_seq'),
});

/** Live worker processes, so each can take its fair share of partitions. */
export const workerProcesses = pgTable('worker_processes', {
  id: text('id').primaryKey(),
  startedAt: tstz('started_at').notNull().defaultNow(),
  heartbeatAt: tstz('heartbeat_at').notNull().defaultNow(),
});

export const apiKeys = pgTable('api_keys', {
  id: uuid('id').primaryKey().defaultRandom(),
  name: text('name').notNull(),
  /** SHA-256 of the secret; the secret itself is shown once and never stored. */
  secretHash: text('secret_hash').notNull().unique(),
  scopes: text('scopes').array().notNull(),
  createdAt: tstz('created_at').notNull().defaultNow(),
  revokedAt: tstz('revoked_at'),
  /** Creation order, for the admin's newest-first listing (its keyset cursor). */
  seq: bigserial('seq', { mode: 'bigint' }).notNull().unique(),
});

/** One row per interest run: the run happens once per `as_of`, at one rate. */
export const interestRuns = pgTable(
  'interest_runs',
  {
    asOf: text('as_of').primaryKey(),
    annualRateBps: integer('annual_rate_bps').notNull(),
    createdAt: tstz('created_at').notNull().defaultNow(),
    /** `running` until every partition's owner has made its accounts' interest transfers. */
    status: text('status', { enum: ['running', 'completed'] })
      .notNull()
      .default('running'),
    completedAt: tstz('completed_at'),
  },
  (t) => [check('interest_runs_status', sql`${t.status} IN ('running', 'completed')`)],
);

/**
 * One row per run and partition: that partition's owner pays its own accounts, a page at a time
 * in id order, and keeps here how far it has got, so a new owner goes on where the last stopped.
 */
export const interestRunPartitions = pgTable(
  'interest_run_partitions',
  {
    asOf: text('as_of')
      .notNull()
      .references(() => interestRuns.asOf),
    partition: integer('partition').notNull(),
    /** The last account id this partition has made an interest transfer for; null: none yet. */
    paidThrough: uuid('paid_through'),
    status: text('status', { enum: ['running', 'completed'] })
      .notNull()
      .default('running'),
    completedAt: tstz('completed_at'),
  },
  (t) => [
    primaryKey({ columns: [t.asOf, t.partition] }),
    check('interest_run_partitions_status', sql`${t.status} IN ('running', 'completed')`),
    index('interest_run_partitions_running')
      .on(t.partition)
      .where(sql`${t.status} = 'running'`),
  ],
);

/**
 * Append-only audit trail: one row per request that asked to change state (accounts, money
 * movements, reversals, keys, interest runs), whatever its answer. Never a secret: the key's id,
 * not the key; the action and its target, not the body.
 */
export const auditEvents = pgTable(
  'audit_events',
  {
    id: bigserial('id', { mode: 'bigint' }).primaryKey(),
    at: tstz('at').notNull().defaultNow(),
    /** `api_keys.id`, or `admin` for ADMIN_API_KEY. */
    apiKeyId: text('api_key_id').notNull(),
    action: text('action').notNull(),
    targetId: text('target_id'),
    requestId: text('request_id').notNull(),
    status: integer('status').notNull(),
  },
  (t) => [check('audit_events_status', sql`${t.status} BETWEEN 100 AND 599`)],
);
