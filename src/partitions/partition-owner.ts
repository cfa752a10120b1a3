// One owned partition: takes its envelopes in queue order and keeps their legs waiting, in order,
// for the process's next batch (which applies them under this partition's fencing epoch, with
// this owner's memory), and sweeps its stale transfers back onto the queues.
import { ErrorCode, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { RedisConnection } from '../queue/queues';
import type pg from 'pg';
import {
  JOB_LOCK_MS,
  JOB_STALLED_CHECK_INTERVAL_MS,
  JOB_STALLED_COUNT_MAX,
} from '../config/limits';
import type { OwnerObserver } from './worker-metrics';
import type { Leg, LegRef, LegToEnqueue } from '../domain/transfer';
import { emptyMemory, type BatchPart, type Ownership } from '../ledger/apply';
import type { Plan } from '../ledger/plan';
import { EnvelopeSchema, parseLeg, queueName } from '../queue/queues';
import { log } from '../shared/log';
import type { BatchRunner } from './batch-runner';
import { backlogLegs } from './backlog';
import { makeInterestPage } from './interest';

/**
 * BullMQ's answers when an envelope's job is no longer this owner's to finish: its lock lapsed
 * while the process was frozen (another owner may have taken the job over) or Redis lost the job.
 * Its legs are safe either way: a leg is applied once (applied_legs), a redelivery finds it
 * applied, and the sweep re-drives from PostgreSQL whatever was not. So they are warnings.
 */
const JOB_NO_LONGER_OURS: ReadonlySet<number> = new Set([
  ErrorCode.JobNotExist,
  ErrorCode.JobLockNotExist,
  ErrorCode.JobNotInState,
  ErrorCode.JobLockMismatch,
]);

export type OwnerStats = {
  batches: number;
  legsApplied: number;
  duplicates: number;
  /** Legs that named no transfer, or were not legs at all: each failed alone. */
  rejectedLegs: number;
  envelopes: number;
  /** Legs received in memory from a batch of this process, without a trip through Redis. */
  handedOff: number;
  /** Credit legs applied in the same batch as their debit (another partition of this process). */
  chainedCredits: number;
  fencedBatches: number;
  swept: number;
  backlogAlarms: number;
  /** Interest transfers this owner made for its accounts (then applied like any other). */
  interestTransfers: number;
};

export function emptyStats(): OwnerStats {
  return {
    batches: 0,
    legsApplied: 0,
    duplicates: 0,
    rejectedLegs: 0,
    envelopes: 0,
    handedOff: 0,
    chainedCredits: 0,
    fencedBatches: 0,
    swept: 0,
    backlogAlarms: 0,
    interestTransfers: 0,
  };
}

export type OwnerTuning = {
  batchLegsMax: number;
  /** Batches the process applies at once, over disjoint sets of its partitions. */
  batchesInFlightMax: number;
  /**
   * A credit bound for another partition of this process is applied in its debit's batch. Off,
   * it takes the next batch, as it must when another process owns the destination (tests turn it
   * off to exercise that path in one process).
   */
  creditsInSameBatch: boolean;
  envelopesInHandMax: number;
  /** Legs received in memory and not yet applied; past it, forwards go through Redis. */
  handOffLegsMax: number;
  sweepAfterMs: number;
  sweepIntervalMs: number;
  sweepBatchMax: number;
  backlogAlarmLegs: number;
  /** How often a worker asks for interest runs its partitions have still to pay. */
  interestPollIntervalMs: number;
  /** Accounts an owner looks at per page of an interest run: one page per poll. */
  interestPageAccountsMax: number;
};

export type OwnerHooks = {
  /** Called before each batch is applied; tests use it to interleave. */
  beforeBatch?: (partition: number, legs: readonly LegRef[]) => Promise<void>;
};

/** Where the next legs go: in memory to an owner of this process, or through Redis. */
export type Forward = (legs: readonly LegToEnqueue[], opts?: { round?: string }) => Promise<void>;

/** An envelope in hand: its job completes when its last leg's batch has committed. */
type Envelope = {
  remaining: number;
  settled: boolean;
  resolve?: () => void;
  reject?: (err: Error) => void;
};
export type PendingLeg = { leg: LegRef; envelope: Envelope };

export class PartitionOwner {
  readonly stats: OwnerStats = emptyStats();
  private worker: Worker | undefined;
  /** Within one epoch only: a new claim makes a new owner, with an empty memory. */
  private memory = emptyMemory();
  private pending: PendingLeg[] = [];
  private sweepTimer: NodeJS.Timeout | undefined;
  private sweepRound = 0;
  private stopped = false;

  constructor(
    private readonly deps: {
      own: Ownership;
      pool: pg.Pool;
      runner: BatchRunner;
      forward: Forward;
      connection: RedisConnection;
      queuePrefix: string;
      isLocal: (accountId: string) => boolean;
      tuning: OwnerTuning;
      hooks: OwnerHooks;
      observer?: OwnerObserver;
      onFenced: (partition: number) => void;
    },
  ) {}

  get partition(): number {
    return this.deps.own.partition;
  }

  start(): void {
    const { own, connection, queuePrefix, tuning } = this.deps;
    this.worker = new Worker(queueName(own.partition), (job: Job) => this.accept(job.data), {
      connection,
      prefix: queuePrefix,
      // Envelopes held at once: while one batch commits, the next ones are already here.
      concurrency: tuning.envelopesInHandMax,
      autorun: true,
      // A dead process's jobs come back once their lock lapses and a stall check sees it.
      lockDuration: JOB_LOCK_MS,
      stalledInterval: JOB_STALLED_CHECK_INTERVAL_MS,
      maxStalledCount: JOB_STALLED_COUNT_MAX,
    });
    this.worker.on('error', (err) => {
      const code = (err as { code?: unknown }).code;
      if (typeof code === 'number' && JOB_NO_LONGER_OURS.has(code)) {
        // Expected after a frozen owner thaws or Redis loses its data: nothing to do.
        log.warn(
          { partition: own.partition, code, job: err.message },
          'envelope job no longer this owner’s to finish (its lock lapsed or Redis lost it); ' +
            'each leg is applied once all the same',
        );
      } else log.error({ err, partition: own.partition }, 'queue worker error');
    });
    this.deps.runner.add(this);
    this.scheduleSweep();
  }

  /**
   * Stops taking envelopes, applies the legs already in hand (BullMQ waits for their jobs, and
   * the legs handed over in memory are applied too), and stops sweeping.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.sweepTimer) clearTimeout(this.sweepTimer);
    await this.worker?.close();
    await this.deps.runner.remove(this);
  }

  /**
   * Legs from a batch of this process bound for this partition, without a trip through Redis.
   * The `debited` rows stay the record: if this owner dies first, the sweep re-drives them.
   * Refused (false) when stopping or when too many wait already.
   */
  handOff(legs: readonly LegRef[]): boolean {
    if (this.stopped || this.pending.length + legs.length > this.deps.tuning.handOffLegsMax) {
      return false;
    }
    const envelope: Envelope = { remaining: legs.length, settled: false };
    for (const leg of legs) this.pending.push({ leg, envelope });
    this.stats.handedOff += legs.length;
    this.deps.observer?.legsHandedOff(legs.length);
    this.deps.runner.schedule();
    return true;
  }

  /**
   * The BullMQ processor. An envelope that is not one fails alone and is never retried; inside a
   * good envelope, a leg that is not a leg is counted and skipped, and the others are applied.
   */
  private accept(raw: unknown): Promise<void> {
    const parsed = EnvelopeSchema.safeParse(raw);
    if (!parsed.success) {
      return Promise.reject(new UnrecoverableError(`not an envelope: ${JSON.stringify(raw)}`));
    }
    this.stats.envelopes += 1;
    this.deps.observer?.envelopeReceived();
    const legs: LegRef[] = [];
    for (const item of parsed.data.legs) {
      const leg = parseLeg(item);
      if (leg) legs.push(leg);
      else this.rejectLeg(item, 'not a leg');
    }
    if (legs.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const envelope: Envelope = { remaining: legs.length, settled: false, resolve, reject };
      for (const leg of legs) this.pending.push({ leg, envelope });
      this.deps.runner.schedule();
    });
  }

  private rejectLeg(leg: unknown, reason: string): void {
    this.stats.rejectedLegs += 1;
    log.warn({ partition: this.partition, leg, reason }, 'leg rejected');
  }

  /** Letting go of the partition: it applies what it holds and takes nothing new. */
  get stopping(): boolean {
    return this.stopped;
  }

  /** Legs waiting for the process's next batch. */
  get pendingLegs(): number {
    return this.pending.length;
  }

  /** The next legs in order, up to the share of a batch this partition gets. */
  take(legsMax: number): PendingLeg[] {
    return this.pending.splice(0, legsMax);
  }

  /** A batch's part for this partition: its legs, its epoch, its memory. */
  part(batch: readonly PendingLeg[]): BatchPart {
    return {
      own: this.deps.own,
      legs: batch.map((p) => p.leg),
      isLocal: this.deps.isLocal,
      memory: this.memory,
    };
  }

  beforeBatch(batch: readonly PendingLeg[]): Promise<void> {
    return (
      this.deps.hooks.beforeBatch?.(
        this.partition,
        batch.map((p) => p.leg),
      ) ?? Promise.resolve()
    );
  }

  /** This partition's part of a batch committed: counted here, and in the process's metrics. */
  applied(plan: Plan, batch: readonly PendingLeg[]): void {
    if (plan.results.length === 0) return;
    this.deps.observer?.partApplied(plan);
    this.stats.batches += 1;
    this.stats.legsApplied += plan.appliedLegs.length;
    // Past the batch's own legs come the credits that joined it behind their debits.
    this.stats.chainedCredits += plan.results.length - batch.length;
    plan.results.forEach((result, i) => {
      if (result === 'duplicate') this.stats.duplicates += 1;
      else if (result === 'unknown_transfer') this.rejectLeg(batch[i]?.leg, 'names no transfer');
    });
  }

  /** Each leg of the batch is done; an envelope completes with its last leg. */
  settle(batch: readonly PendingLeg[]): void {
    for (const { envelope } of batch) {
      envelope.remaining -= 1;
      if (envelope.remaining === 0 && !envelope.settled) {
        envelope.settled = true;
        envelope.resolve?.();
      }
    }
  }

  /** The envelopes these legs came in go back to BullMQ whole; redelivered legs are harmless. */
  failed(batch: readonly PendingLeg[], err: Error): void {
    for (const { envelope } of batch) {
      if (envelope.settled) continue;
      envelope.settled = true;
      envelope.reject?.(err);
    }
  }

  /**
   * Another process owns the partition now and nothing of this batch was written: its envelopes
   * and every leg still waiting go back to BullMQ; legs handed over in memory are re-driven by
   * the new owner's sweep.
   */
  fenced(batch: readonly PendingLeg[], err: Error): void {
    this.stats.fencedBatches += 1;
    this.deps.observer?.batchFenced();
    log.warn(
      { partition: this.partition, epoch: this.deps.own.epoch, legs: batch.length },
      'batch fenced out: another worker owns the partition now; nothing written',
    );
    this.failed([...batch, ...this.pending.splice(0)], err);
    if (!this.stopped) this.deps.onFenced(this.partition);
  }

  /** The last commit may or may not have stood: the memory is read afresh. */
  forget(): void {
    this.memory = emptyMemory();
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
    const { pool, tuning, own } = this.deps;
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
    // Its own round in the envelope ids: an earlier envelope with the same legs may still be
    // waiting, or kept by BullMQ as failed, and would swallow a re-add under its id.
    this.sweepRound += 1;
    if (legs.length > 0) {
      await this.deps.forward(legs, { round: `s${own.epoch}.${this.sweepRound}` });
    }
    this.stats.swept += legs.length;
    await this.checkBacklog();
    return legs.length;
  }

  /**
   * The next page of an interest run for this partition's accounts: its transfers are made, then
   * their debit legs join this owner's stream (in memory when it takes them). If this owner dies
   * before applying them, the sweep re-drives them.
   */
  async payInterestPage(asOf: string): Promise<void> {
    if (this.stopped) return;
    const legs = await makeInterestPage(this.deps.pool, {
      asOf,
      partition: this.partition,
      pageAccountsMax: this.deps.tuning.interestPageAccountsMax,
    });
    if (!legs) return;
    this.stats.interestTransfers += legs.length;
    await this.deps.forward(legs);
  }

  /** The backlog alarm: this many legs waiting means the partition's owner cannot keep up. */
  private async checkBacklog(): Promise<void> {
    const { backlogAlarmLegs } = this.deps.tuning;
    const counts = await backlogLegs(this.deps.pool, {
      partitions: [this.partition],
      capLegs: backlogAlarmLegs + 1,
    });
    const waiting = counts.get(this.partition) ?? 0;
    if (waiting <= backlogAlarmLegs) return;
    this.stats.backlogAlarms += 1;
    log.warn(
      { partition: this.partition, waitingLegs: waiting, alarmLegs: backlogAlarmLegs },
      'partition backlog above its alarm',
    );
  }
}
