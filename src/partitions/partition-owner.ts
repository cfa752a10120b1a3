// One owned partition: consumes its queue, applies legs in batches under the fencing epoch, and
// sweeps its stale transfers back onto the queues.
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type pg from 'pg';
import {
  APPLY_RETRIES_MAX,
  APPLY_RETRY_BACKOFF_MS_BASE,
  APPLY_RETRY_BACKOFF_MS_MAX,
  JOB_LOCK_MS,
  JOB_STALLED_CHECK_INTERVAL_MS,
  JOB_STALLED_COUNT_MAX,
} from '../config/limits';
import { isProgrammerPgError } from '../db/db';
import { applyBatch, FencedError, type Ownership } from '../ledger/apply';
import type { Plan } from '../ledger/plan';
import {
  LegJobSchema,
  queueName,
  type Dispatcher,
  type LegJobData,
  type LegToEnqueue,
} from '../queue/queues';
import { AssertionError } from '../shared/assert';
import type { Leg } from '../domain/transfer';
import { log } from '../shared/log';

export type OwnerStats = {
  batches: number;
  legsApplied: number;
  duplicates: number;
  fencedBatches: number;
  swept: number;
  backlogAlarms: number;
};

export type OwnerTuning = {
  batchMax: number;
  prefetchMax: number;
  sweepAfterMs: number;
  sweepIntervalMs: number;
  sweepBatchMax: number;
  backlogAlarmJobs: number;
};

export type OwnerHooks = {
  /** Called inside the batch transaction's life, before it starts; tests use it to interleave. */
  beforeBatch?: (partition: number, legs: readonly LegJobData[]) => Promise<void>;
};

type Pending = { data: LegJobData; resolve: () => void; reject: (err: Error) => void };

export class PartitionOwner {
  readonly stats: OwnerStats = {
    batches: 0,
    legsApplied: 0,
    duplicates: 0,
    fencedBatches: 0,
    swept: 0,
    backlogAlarms: 0,
  };
  private worker: Worker<LegJobData> | undefined;
  private pending: Pending[] = [];
  private flushing = false;
  private flushScheduled = false;
  private sweepTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly deps: {
      own: Ownership;
      pool: pg.Pool;
      dispatcher: Dispatcher;
      connection: Redis;
      queuePrefix: string;
      isLocal: (accountId: string) => boolean;
      tuning: OwnerTuning;
      hooks: OwnerHooks;
      onFenced: (partition: number) => void;
      onFatal: (err: Error) => void;
    },
  ) {}

  get partition(): number {
    return this.deps.own.partition;
  }

  start(): void {
    const { own, connection, queuePrefix, tuning } = this.deps;
    this.worker = new Worker<LegJobData>(
      queueName(own.partition),
      (job: Job<LegJobData>) => this.accept(job.data),
      {
        connection,
        prefix: queuePrefix,
        // Prefetch: this many jobs may be held at once, so a batch can fill while one commits.
        concurrency: tuning.prefetchMax,
        autorun: true,
        // A dead process's jobs come back once their lock lapses and a stall check sees it.
        lockDuration: JOB_LOCK_MS,
        stalledInterval: JOB_STALLED_CHECK_INTERVAL_MS,
        maxStalledCount: JOB_STALLED_COUNT_MAX,
      },
    );
    this.worker.on('error', (err) =>
      log.error({ err, partition: own.partition }, 'queue worker error'),
    );
    this.scheduleSweep();
  }

  /** Stops taking jobs, lets the batches in hand finish (BullMQ waits for them), stops sweeping. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    await this.worker?.close();
  }

  /**
   * The BullMQ processor: the job completes when its batch has committed and forwarded. A job
   * whose data is not a leg fails alone and is never retried, rather than poisoning a batch.
   */
  private accept(raw: unknown): Promise<void> {
    const parsed = LegJobSchema.safeParse(raw);
    if (!parsed.success) {
      return Promise.reject(new UnrecoverableError(`not a leg job: ${JSON.stringify(raw)}`));
    }
    const data: LegJobData = {
      transferId: parsed.data.transferId.toLowerCase(),
      leg: parsed.data.leg,
    };
    return new Promise<void>((resolve, reject) => {
      this.pending.push({ data, resolve, reject });
      this.scheduleFlush();
    });
  }

  private scheduleFlush(): void {
    if (this.flushing || this.flushScheduled) return;
    this.flushScheduled = true;
    // One turn of the event loop lets the jobs fetched together land in one batch.
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flush();
    });
  }

  /** Batches run one at a time: a partition's legs are applied in the order they arrived. */
  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, this.deps.tuning.batchMax);
        await this.applyWithRetry(batch);
      }
    } finally {
      this.flushing = false;
    }
  }

  private async applyWithRetry(batch: Pending[]): Promise<void> {
    const legs = batch.map((p) => p.data);
    let plan: Plan | undefined;
    for (let attempt = 0; ; attempt++) {
      try {
        if (!plan) {
          // On a graceful stop the jobs already taken are still applied: the lease is ours
          // until release. If the partition was taken, the fence below says so.
          await this.deps.hooks.beforeBatch?.(this.partition, legs);
          plan = await this.applyOnce(legs);
          this.stats.batches += 1;
          this.stats.legsApplied += plan.appliedLegs.length;
          this.stats.duplicates += plan.results.filter((r) => r === 'duplicate').length;
        }
        // Only after the commit and the forwarding of the next legs are the jobs acknowledged.
        await this.deps.dispatcher.enqueue(plan.forward);
        for (const p of batch) p.resolve();
        return;
      } catch (err) {
        const error = err instanceof Error ? err : new Error(String(err));
        if (error instanceof FencedError) {
          // Nothing was written. The jobs go back to BullMQ for whoever owns the partition now.
          this.stats.fencedBatches += 1;
          for (const p of batch) p.reject(error);
          if (!this.stopped) this.deps.onFenced(this.partition);
          return;
        }
        if (error instanceof AssertionError || isProgrammerPgError(error)) {
          // Corrupt state must not spread: the process stops rather than guess.
          for (const p of batch) p.reject(error);
          this.deps.onFatal(error);
          return;
        }
        if (attempt >= APPLY_RETRIES_MAX) {
          // Still an infrastructure failure: BullMQ's attempts take over. If the commit stood,
          // the redelivered leg is a duplicate that only re-sends what comes next.
          for (const p of batch) p.reject(error);
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

  private async applyOnce(legs: readonly LegJobData[]): Promise<Plan> {
    const client = await this.deps.pool.connect();
    try {
      return await applyBatch(client, this.deps.own, legs, this.deps.isLocal);
    } finally {
      client.release();
    }
  }

  private scheduleSweep(): void {
    if (this.stopped) return;
    this.sweepTimer = setTimeout(() => {
      this.sweep()
        .catch((err: Error) => log.error({ err, partition: this.partition }, 'sweep failed'))
        .finally(() => this.scheduleSweep());
    }, this.deps.tuning.sweepIntervalMs);
  }

  /**
   * The outbox sweep: PostgreSQL alone knows every accepted transfer, so whatever Redis lost,
   * the legs that have sat too long are put back on the queues. Redelivery is harmless.
   */
  async sweep(): Promise<number> {
    const { pool, tuning } = this.deps;
    const res = await pool.query<{ id: string; leg: Leg; partition: number }>(
      `(SELECT id, 'debit' AS leg, src_partition AS partition FROM transfers
         WHERE status = 'accepted' AND src_partition = $1
           AND accepted_at < now() - make_interval(secs => $2::double precision / 1000)
         ORDER BY accepted_at LIMIT $3)
       UNION ALL
       (SELECT id, 'credit', dst_partition FROM transfers
         WHERE status = 'debited' AND failure_code IS NULL AND dst_partition = $1
           AND debited_at < now() - make_interval(secs => $2::double precision / 1000)
         ORDER BY debited_at LIMIT $3)
       UNION ALL
       (SELECT id, 'refund', src_partition FROM transfers
         WHERE status = 'debited' AND failure_code IS NOT NULL AND src_partition = $1
           AND debited_at < now() - make_interval(secs => $2::double precision / 1000)
         ORDER BY debited_at LIMIT $3)`,
      [this.partition, tuning.sweepAfterMs, tuning.sweepBatchMax],
    );
    const legs: LegToEnqueue[] = res.rows.map((r) => ({
      transferId: r.id,
      leg: r.leg,
      partition: r.partition,
    }));
    if (legs.length > 0) await this.deps.dispatcher.redrive(legs);
    this.stats.swept += legs.length;
    await this.checkBacklog();
    return legs.length;
  }

  /** The backlog alarm: a queue this deep means the partition's owner cannot keep up. */
  private async checkBacklog(): Promise<void> {
    const { backlogAlarmJobs } = this.deps.tuning;
    const waiting = await this.deps.dispatcher.queue(this.partition).getWaitingCount();
    if (waiting <= backlogAlarmJobs) return;
    this.stats.backlogAlarms += 1;
    log.warn(
      { partition: this.partition, waiting, alarmJobs: backlogAlarmJobs },
      'queue backlog above its alarm',
    );
  }
}
