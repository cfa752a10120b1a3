// The process's batches: one at a time, each taking the legs waiting at every partition this
// process owns and applying them in one PostgreSQL transaction (one plan per partition, one
// fence per partition, one commit), then forwarding what comes next.
import type pg from 'pg';
import {
  APPLY_RETRIES_MAX,
  APPLY_RETRY_BACKOFF_MS_BASE,
  APPLY_RETRY_BACKOFF_MS_MAX,
} from '../config/limits';
import { isProgrammerPgError, withClient } from '../db/db';
import { applyBatches, FencedError } from '../ledger/apply';
import type { Plan } from '../ledger/plan';
import { AssertionError } from '../shared/assert';
import type { Forward, PartitionOwner, PendingLeg } from './partition-owner';

type Share = { owner: PartitionOwner; batch: PendingLeg[] };

/**
 * Why one batch for the process and not one per partition: a hot source's debits fan their
 * credits out over every partition, and per partition each credit batch was a transaction of a
 * few legs, so PostgreSQL spent its time on statements and commits, not on the legs. Ownership
 * stays per partition: each part of a batch is planned alone and written under its own fence.
 * A credit bound for another partition of this process is applied in its debit's batch, behind
 * that partition's own legs (so a batch holds up to twice APPLY_BATCH_LEGS_MAX legs): one
 * transaction and one status write per transfer instead of two.
 */
export class BatchRunner {
  private readonly owners = new Set<PartitionOwner>();
  /** Owners with legs in the batch being applied. */
  private readonly inFlight = new Set<PartitionOwner>();
  private flushing: Promise<void> | undefined;
  private flushScheduled = false;
  private batchWaiters: (() => void)[] = [];

  constructor(
    private readonly deps: {
      pool: pg.Pool;
      forward: Forward;
      batchLegsMax: number;
      /** Credits bound for a partition of this process ride in their debit's batch. */
      creditsInSameBatch: boolean;
      observer?: { batchApplied: (legs: number, seconds: number) => void };
      onFatal: (err: Error) => void;
    },
  ) {}

  add(owner: PartitionOwner): void {
    this.owners.add(owner);
  }

  /** Resolves once the owner has nothing waiting and nothing in a batch; then forgets it. */
  async remove(owner: PartitionOwner): Promise<void> {
    while (owner.pendingLegs > 0 || this.inFlight.has(owner)) {
      this.schedule();
      await new Promise<void>((resolve) => this.batchWaiters.push(resolve));
    }
    this.owners.delete(owner);
  }

  schedule(): void {
    if (this.flushing || this.flushScheduled) return;
    this.flushScheduled = true;
    // One turn of the event loop lets the envelopes fetched together land in one batch.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flushing = this.flush().finally(() => {
        this.flushing = undefined;
        if ([...this.owners].some((o) => o.pendingLegs > 0)) this.schedule();
        this.wakeWaiters();
      });
    });
  }

  private wakeWaiters(): void {
    const waiters = this.batchWaiters;
    this.batchWaiters = [];
    for (const wake of waiters) wake();
  }

  /** Batches run one at a time; each shares the batch bound among the owners with legs waiting. */
  private async flush(): Promise<void> {
    for (;;) {
      const waiting = [...this.owners].filter((o) => o.pendingLegs > 0).length;
      if (waiting === 0) return;
      // Every owner has a part, those with nothing waiting too: credits may join them.
      const owners = [...this.owners].sort((a, b) => a.partition - b.partition);
      const quota = Math.max(1, Math.ceil(this.deps.batchLegsMax / waiting));
      const shares = owners.map((owner) => ({ owner, batch: owner.take(quota) }));
      for (const { owner } of shares) this.inFlight.add(owner);
      try {
        await this.applyWithRetry(shares);
      } finally {
        this.inFlight.clear();
        this.wakeWaiters();
      }
    }
  }

  private async applyWithRetry(all: Share[]): Promise<void> {
    let shares = all;
    let plans: Plan[] | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        if (!plans) {
          // On a graceful stop the legs already taken are still applied: the lease is ours
          // until release. If a partition was taken, its fence says so.
          for (const { owner, batch } of shares) {
            if (batch.length > 0) await owner.beforeBatch(batch);
          }
          const startedMs = performance.now();
          plans = await this.applyOnce(shares);
          this.deps.observer?.batchApplied(
            plans.reduce((n, p) => n + p.results.length, 0),
            (performance.now() - startedMs) / 1000,
          );
          shares.forEach(({ owner, batch }, i) => owner.applied(plans![i]!, batch));
        }
        // Only after the commit and the forwarding of the next legs are the envelopes done.
        await this.deps.forward(plans.flatMap((p) => p.forward));
        for (const { owner, batch } of shares) owner.settle(batch);
        return;
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        if (error instanceof FencedError) {
          // Nothing was written. The fenced partitions' envelopes go back to BullMQ for whoever
          // owns them now; the other partitions' legs are applied again without them.
          const fenced = new Set(error.partitions);
          for (const s of shares) {
            if (fenced.has(s.owner.partition)) s.owner.fenced(s.batch, error);
          }
          shares = shares.filter((s) => !fenced.has(s.owner.partition));
          if (shares.length === 0) return;
          attempt = -1;
          continue;
        }
        if (error instanceof AssertionError || isProgrammerPgError(error)) {
          // Corrupt state must not spread: the process stops rather than guess.
          for (const { owner, batch } of shares) owner.failed(batch, error);
          this.deps.onFatal(error);
          return;
        }
        if (attempt >= APPLY_RETRIES_MAX) {
          // Still an infrastructure failure: BullMQ's attempts take over. If the commit stood,
          // the redelivered legs are duplicates that only re-send what comes next.
          for (const { owner, batch } of shares) owner.failed(batch, error);
          return;
        }
        const backoffMs = Math.min(
          APPLY_RETRY_BACKOFF_MS_MAX,
          APPLY_RETRY_BACKOFF_MS_BASE * 2 ** attempt,
        );
        await new Promise((r) => setTimeout(r, backoffMs));
      }
    }
  }

  private async applyOnce(shares: readonly Share[]): Promise<Plan[]> {
    try {
      return await withClient(this.deps.pool, (client) =>
        applyBatches(
          client,
          shares.map(({ owner, batch }) => owner.part(batch)),
          { chainCredits: this.deps.creditsInSameBatch },
        ),
      );
    } catch (err) {
      // The commit may or may not have stood (a connection lost during COMMIT): read afresh.
      // A fenced batch rolled back, so the memories of the others still hold.
      if (!(err instanceof FencedError)) for (const { owner } of shares) owner.forget();
      throw err;
    }
  }
}
