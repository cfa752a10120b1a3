// The batch planner: given a partition's legs in order and the state they read, decides every
// outcome and every posting. Pure, so the money rules are testable without a database.
import { BALANCE_MINOR_LIMIT, BIGINT_MAX } from '../config/limits';
import { assert, unreachable } from '../shared/assert';
import type {
  FailureCode,
  Leg,
  LegRef,
  LegToEnqueue,
  SystemName,
  TransferStatus,
  TransferType,
} from '../domain/transfer';

export type TransferState = {
  id: string;
  type: TransferType;
  fromAccountId: string | null;
  toAccountId: string | null;
  amount: bigint;
  currency: string;
  status: TransferStatus;
  failureCode: FailureCode | null;
  srcPartition: number;
  dstPartition: number;
  /** For a cancel: the transfer it cancels (its row is read with the batch). */
  cancelsTransferId?: string | null;
  /** Epoch milliseconds; a debit after it fails `expired`. */
  expiresAtMs?: number | null;
};

export type AccountState = {
  id: string;
  currency: string;
  kind: 'customer' | 'system';
  status: 'open' | 'closed';
  overdraftLimit: bigint;
  balance: bigint;
  version: bigint;
};

/** A system account's sub-balance on this partition. */
export type SubBalanceState = { accountId: string; balance: bigint; version: bigint };

export type { SystemName };

export type PlanInput = {
  partition: number;
  /** The apply sequence already used on this partition; the first applied leg gets +1. */
  applySeqBefore: bigint;
  legs: readonly LegRef[];
  transfers: ReadonlyMap<string, TransferState>;
  /** Customer accounts the legs name, local or not (non-local ones are only read). */
  accounts: ReadonlyMap<string, AccountState>;
  /** Keyed by `systemKey(name, currency)`. */
  subBalances: ReadonlyMap<string, SubBalanceState>;
  isLocal: (accountId: string) => boolean;
  /** The time the batch is planned at (epoch ms), for `expires_at`. */
  nowMs?: number;
};

export type Entry = {
  transferId: string;
  accountId: string;
  leg: Leg;
  amount: bigint;
  balanceAfter: bigint;
  accountVersion: bigint;
};
export type AccountWrite = {
  id: string;
  balance: bigint;
  version: bigint;
  versionBefore: bigint;
  status: 'open' | 'closed';
};
export type SubBalanceWrite = {
  /** `systemKey(name, currency)`. */
  key: string;
  accountId: string;
  balance: bigint;
  version: bigint;
  versionBefore: bigint;
};
export type TransferWrite = {
  id: string;
  type: TransferType;
  statusBefore: TransferStatus;
  failureCodeBefore: FailureCode | null;
  status: TransferStatus;
  failureCode: FailureCode | null;
};
export type AppliedLeg = {
  transferId: string;
  leg: Leg;
  outcome: 'posted' | FailureCode;
  applySeq: bigint;
};
/** What happened to each input leg: applied now, already applied (a redelivery), or no record. */
export type LegResult = 'applied' | 'duplicate' | 'unknown_transfer';

export type Plan = {
  entries: Entry[];
  accountWrites: AccountWrite[];
  subBalanceWrites: SubBalanceWrite[];
  transferWrites: TransferWrite[];
  appliedLegs: AppliedLeg[];
  forward: LegToEnqueue[];
  results: LegResult[];
  applySeqAfter: bigint;
};

export function systemKey(name: SystemName, currency: string): string {
  return `${name}:${currency}`;
}

/**
 * Checks in precedence order; the first that applies is the transfer's failure code. `from` and
 * `to` are the accounts this leg must check: a credit leg checks only its destination.
 */
function decide(
  t: TransferState,
  parties: { from?: AccountState | undefined; to?: AccountState | undefined },
): FailureCode | null {
  const checked = (['from', 'to'] as const).filter((side) => side in parties);
  const named = (side: 'from' | 'to') => (side === 'from' ? t.fromAccountId : t.toAccountId);
  if (checked.some((side) => named(side) !== null && !parties[side])) return 'account_not_found';
  if (checked.some((side) => parties[side]?.status === 'closed')) return 'account_closed';
  if (checked.some((side) => parties[side] && parties[side].currency !== t.currency)) {
    return 'currency_mismatch';
  }
  const { from } = parties;
  if (from && from.balance - t.amount < -from.overdraftLimit) return 'insufficient_funds';
  return null;
}

export function plan(input: PlanInput): Plan {
  const { partition } = input;
  // Working copies: the planner folds each leg into them, so later legs see earlier ones.
  const accounts = new Map<string, AccountState>();
  const accountVersionBefore = new Map<string, bigint>();
  const subBalances = new Map<string, SubBalanceState>();
  const subVersionBefore = new Map<string, bigint>();
  const transfers = new Map<string, TransferState>();
  const transferBefore = new Map<string, TransferState>();

  const entries: Entry[] = [];
  const appliedLegs: AppliedLeg[] = [];
  const forward: LegToEnqueue[] = [];
  const results: LegResult[] = [];
  let applySeq = input.applySeqBefore;
  const nowMs = input.nowMs ?? Date.now();

  const customer = (id: string | null): AccountState | undefined => {
    if (id === null) return undefined;
    const seen = accounts.get(id);
    if (seen) return seen;
    const row = input.accounts.get(id);
    // Clients can name only customer accounts; a system account id is as good as unknown.
    if (!row || row.kind !== 'customer') return undefined;
    const copy = { ...row };
    accounts.set(id, copy);
    return copy;
  };

  const isCancel = (leg: LegRef) => input.transfers.get(leg.transferId)?.type === 'cancel';

  const transferOf = (id: string): TransferState | undefined => {
    const seen = transfers.get(id);
    if (seen) return seen;
    const row = input.transfers.get(id);
    if (!row) return undefined;
    transferBefore.set(id, row);
    const copy = { ...row };
    transfers.set(id, copy);
    return copy;
  };

  const postCustomer = (t: TransferState, leg: Leg, account: AccountState, amount: bigint) => {
    assert(input.isLocal(account.id), `account ${account.id} is not on partition ${partition}`);
    if (!accountVersionBefore.has(account.id))
      accountVersionBefore.set(account.id, account.version);
    account.balance += amount;
    account.version += 1n;
    // Debits and credits stay within BALANCE_MINOR_LIMIT (checked before posting); a refund,
    // which cannot fail, has bigint's remaining room (docs/reliability.md).
    assert(account.balance <= BIGINT_MAX, `account ${account.id} would leave bigint`);
    // Invariant 3, checked before writing; the CHECK constraint is the last line.
    assert(
      amount > 0n || account.balance >= -account.overdraftLimit,
      `account ${account.id} would go below its overdraft limit`,
    );
    entries.push({
      transferId: t.id,
      accountId: account.id,
      leg,
      amount,
      balanceAfter: account.balance,
      accountVersion: account.version,
    });
  };

  /** This partition's sub-balance of a system account, as the batch has left it so far. */
  const subOf = (name: SystemName, currency: string): SubBalanceState => {
    const key = systemKey(name, currency);
    let sub = subBalances.get(key);
    if (!sub) {
      const row = input.subBalances.get(key);
      assert(row, `no ${name} account for ${currency}`);
      sub = { ...row };
      subBalances.set(key, sub);
      subVersionBefore.set(key, row.version);
    }
    return sub;
  };

  /** A status change only: no entry, so the version (the entry count) stays. */
  const closeAccount = (account: AccountState) => {
    assert(input.isLocal(account.id), `account ${account.id} is not on partition ${partition}`);
    if (!accountVersionBefore.has(account.id))
      accountVersionBefore.set(account.id, account.version);
    account.status = 'closed';
  };

  const postSystem = (t: TransferState, leg: Leg, name: SystemName, amount: bigint) => {
    const sub = subOf(name, t.currency);
    sub.balance += amount;
    sub.version += 1n;
    assert(
      sub.balance <= BIGINT_MAX && sub.balance >= -BIGINT_MAX,
      `${name} on partition ${partition} would leave bigint`,
    );
    entries.push({
      transferId: t.id,
      accountId: sub.accountId,
      leg,
      amount,
      balanceAfter: sub.balance,
      accountVersion: sub.version,
    });
  };

  /** True when a posting would take a balance past BALANCE_MINOR_LIMIT either way. */
  const overflows = (...postings: [balance: bigint, amount: bigint][]): boolean =>
    postings.some(([balance, amount]) => {
      const after = balance + amount;
      return after > BALANCE_MINOR_LIMIT || after < -BALANCE_MINOR_LIMIT;
    });

  /** The debit leg's postings, checked against the limit before any is made. */
  const debitOverflows = (t: TransferState, from?: AccountState, to?: AccountState): boolean => {
    const a = t.amount;
    switch (t.type) {
      case 'deposit':
        return overflows([subOf('settlement', t.currency).balance, -a], [to!.balance, a]);
      case 'interest':
        return overflows([subOf('interest', t.currency).balance, -a], [to!.balance, a]);
      case 'withdrawal':
        return overflows([from!.balance, -a], [subOf('settlement', t.currency).balance, a]);
      case 'transfer':
      case 'reversal':
        return t.dstPartition === partition
          ? overflows([from!.balance, -a], [to!.balance, a])
          : overflows([from!.balance, -a], [subOf('in_transit', t.currency).balance, a]);
      case 'close':
      case 'cancel':
        return false;
      default:
        return unreachable(t.type);
    }
  };

  const record = (t: TransferState, leg: Leg, outcome: 'posted' | FailureCode) => {
    applySeq += 1n;
    appliedLegs.push({ transferId: t.id, leg, outcome, applySeq });
  };

  // Cancels first: one that reached the owner in the same batch as the debit it means to stop
  // still comes before it. Results keep the input's order.
  const cancels: number[] = [];
  const others: number[] = [];
  input.legs.forEach((leg, i) => (isCancel(leg) ? cancels : others).push(i));
  for (const i of [...cancels, ...others]) {
    const job = input.legs[i]!;
    const t = transferOf(job.transferId);
    if (!t) {
      results[i] = 'unknown_transfer';
      continue;
    }
    const entriesBefore = entries.length;
    const a = t.amount;
    switch (job.leg) {
      case 'debit': {
        assert(t.srcPartition === partition, `debit leg of ${t.id} on the wrong partition`);
        if (t.status !== 'accepted') {
          // A redelivered debit posts nothing; it re-sends whatever leg should come next.
          if (t.status === 'debited') {
            forward.push(
              t.failureCode === null
                ? { transferId: t.id, leg: 'credit', partition: t.dstPartition }
                : { transferId: t.id, leg: 'refund', partition: t.srcPartition },
            );
          }
          results[i] = 'duplicate';
          continue;
        }
        if (t.expiresAtMs != null && t.expiresAtMs <= nowMs) {
          // Not applied in time: it moves nothing, whatever else would have been true.
          t.status = 'failed';
          t.failureCode = 'expired';
          record(t, 'debit', 'expired');
          break;
        }
        if (t.type === 'cancel') {
          // In the owner's order: before the target's debit it fails the target; after, too late.
          const target = t.cancelsTransferId ? transferOf(t.cancelsTransferId) : undefined;
          if (target?.status === 'accepted' && target.srcPartition === partition) {
            target.status = 'failed';
            target.failureCode = 'cancelled';
            t.status = 'completed';
            record(t, 'debit', 'posted');
          } else {
            t.status = 'failed';
            t.failureCode = 'too_late';
            record(t, 'debit', 'too_late');
          }
          break;
        }
        const from = customer(t.fromAccountId);
        const to = customer(t.toAccountId);
        const failure =
          decide(t, { from, to }) ??
          (debitOverflows(t, from, to) ? 'balance_overflow' : null) ??
          (t.type === 'close' && from!.balance !== 0n ? 'account_not_empty' : null);
        if (failure !== null) {
          t.status = 'failed';
          t.failureCode = failure;
          record(t, 'debit', failure);
          break;
        }
        switch (t.type) {
          case 'deposit':
            postSystem(t, 'debit', 'settlement', -a);
            postCustomer(t, 'debit', to!, a);
            t.status = 'completed';
            break;
          case 'interest':
            postSystem(t, 'debit', 'interest', -a);
            postCustomer(t, 'debit', to!, a);
            t.status = 'completed';
            break;
          case 'withdrawal':
            postCustomer(t, 'debit', from!, -a);
            postSystem(t, 'debit', 'settlement', a);
            t.status = 'completed';
            break;
          case 'transfer':
          case 'reversal':
            postCustomer(t, 'debit', from!, -a);
            if (t.dstPartition === partition) {
              // One hop: both accounts are ours, so the credit posts in the same transaction.
              postCustomer(t, 'debit', to!, a);
              t.status = 'completed';
            } else {
              postSystem(t, 'debit', 'in_transit', a);
              t.status = 'debited';
              forward.push({ transferId: t.id, leg: 'credit', partition: t.dstPartition });
            }
            break;
          case 'close':
            // In the owner's order: a credit after this finds the account closed and is refunded.
            closeAccount(from!);
            t.status = 'completed';
            break;
          default:
            unreachable(t.type);
        }
        record(t, 'debit', 'posted');
        break;
      }
      case 'credit': {
        assert(t.dstPartition === partition, `credit leg of ${t.id} on the wrong partition`);
        if (t.status !== 'debited' || t.failureCode !== null) {
          results[i] = 'duplicate';
          continue;
        }
        const to = customer(t.toAccountId);
        const failure =
          decide(t, { to }) ??
          (overflows([subOf('in_transit', t.currency).balance, -a], [to!.balance, a])
            ? 'balance_overflow'
            : null);
        if (failure !== null) {
          // The destination cannot take it: the money goes back to the source's partition.
          t.failureCode = failure;
          record(t, 'credit', failure);
          forward.push({ transferId: t.id, leg: 'refund', partition: t.srcPartition });
          break;
        }
        postSystem(t, 'credit', 'in_transit', -a);
        postCustomer(t, 'credit', to!, a);
        t.status = 'completed';
        record(t, 'credit', 'posted');
        break;
      }
      case 'refund': {
        assert(t.srcPartition === partition, `refund leg of ${t.id} on the wrong partition`);
        if (t.status !== 'debited' || t.failureCode === null) {
          results[i] = 'duplicate';
          continue;
        }
        const from = input.accounts.get(t.fromAccountId ?? '');
        assert(from, `refund of ${t.id} to a missing source account`);
        postSystem(t, 'refund', 'in_transit', -a);
        postCustomer(t, 'refund', customer(from.id)!, a);
        t.status = 'failed';
        record(t, 'refund', 'posted');
        break;
      }
      default:
        unreachable(job.leg);
    }
    // Invariant 1: every leg's entries sum to zero.
    const legSum = entries.slice(entriesBefore).reduce((sum, e) => sum + e.amount, 0n);
    assert(legSum === 0n, `leg ${job.leg} of ${t.id} posts entries summing to ${legSum}`);
    results[i] = 'applied';
  }

  const transferWrites: TransferWrite[] = [];
  for (const [id, t] of transfers) {
    const before = transferBefore.get(id)!;
    if (before.status === t.status && before.failureCode === t.failureCode) continue;
    transferWrites.push({
      id,
      type: t.type,
      statusBefore: before.status,
      failureCodeBefore: before.failureCode,
      status: t.status,
      failureCode: t.failureCode,
    });
  }

  return {
    entries,
    accountWrites: [...accountVersionBefore].map(([id, versionBefore]) => {
      const a = accounts.get(id)!;
      return { id, balance: a.balance, version: a.version, versionBefore, status: a.status };
    }),
    subBalanceWrites: [...subBalances].map(([key, s]) => ({
      key,
      accountId: s.accountId,
      balance: s.balance,
      version: s.version,
      versionBefore: subVersionBefore.get(key)!,
    })),
    transferWrites,
    appliedLegs,
    forward,
    results,
    applySeqAfter: applySeq,
  };
}
