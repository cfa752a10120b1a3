// The process's batches: each takes the legs waiting at several partitions this process owns and
// applies them in one PostgreSQL transaction (one plan per partition, one fence per partition,
// one commit), then forwards what comes next; a few run at once, over disjoint partitions.
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
 * Why batches span partitions instead of one per partition: a hot source's debits fan their
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
  private running = 0;
  private pumpScheduled = false;
  private batchWaiters: (() => void)[] = [];

  constructor(
    private readonly deps: {
      pool: pg.Pool;
      forward: Forward;
      batchLegsMax: number;
      /** Batches applied at once, over disjoint sets of owners, each on its own connection. */
      batchesInFlightMax: number;
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
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    // One turn of the event loop lets the envelopes fetched together land in one batch.
    setImmediate(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  private wakeWaiters(): void {
    const waiters = this.batchWaiters;
    this.batchWaiters = [];
    for (const wake of waiters) wake();
  }

  /**
   * Starts batches while fewer than the bound run and an owner outside them has legs waiting.
   * A batch takes the owners with the most legs waiting first, each up to the batch bound, until
   * the bound is reached: a hot partition with a backlog fills a batch of its own, and the
   * partitions its credits go to are applied beside it, in another batch on another connection.
   * A batch with room also takes every other free owner, with nothing waiting, so that credits
   * bound for them can ride in it.
   */
  private pump(): void {
    const { batchLegsMax, batchesInFlightMax } = this.deps;
    while (this.running < batchesInFlightMax) {
      const free = [...this.owners].filter((o) => !this.inFlight.has(o));
      const waiting = free
        .filter((o) => o.pendingLegs > 0)
        .sort((a, b) => b.pendingLegs - a.pendingLegs);
      if (waiting.length === 0) return;
      const shares: Share[] = [];
      let legs = 0;
      for (const owner of waiting) {
        if (legs >= batchLegsMax) break;
        const batch = owner.take(batchLegsMax - legs);
        legs += batch.length;
        shares.push({ owner, batch });
      }
      if (legs < batchLegsMax && this.deps.creditsInSameBatch) {
        for (const owner of free) {
          // Not one that is letting go (fenced, or stopping): it only drains what it holds.
          if (owner.stopping || owner.pendingLegs > 0) continue;
          if (!shares.some((s) => s.owner === owner)) {
            shares.push({ owner, batch: [] });
          }
        }
      }
      shares.sort((a, b) => a.owner.partition - b.owner.partition);
      for (const { owner } of shares) this.inFlight.add(owner);
      this.running += 1;
      void this.applyWithRetry(shares).finally(() => {
        for (const { owner } of shares) this.inFlight.delete(owner);
        this.running -= 1;
        this.wakeWaiters();
        this.pump();
      });
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
