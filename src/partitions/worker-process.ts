// A worker process: claims its fair share of partitions, runs an owner for each, renews the
// leases, takes over partitions whose owner died, and lets go of everything on shutdown.
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Config } from '../config/env';
import {
  APPLY_BATCH_LEGS_MAX,
  APPLY_BATCHES_IN_FLIGHT_MAX,
  BACKLOG_ALARM_LEGS,
  CLAIM_INTERVAL_MS,
  ENVELOPES_IN_HAND_MAX,
  HAND_OFF_LEGS_MAX,
  INTEREST_PAGE_ACCOUNTS_MAX,
  INTEREST_POLL_INTERVAL_MS,
  LEASE_MS,
  SWEEP_AFTER_MS,
  SWEEP_BATCH_MAX,
  SWEEP_INTERVAL_MS,
  POOL_SIZE_MAX,
} from '../config/limits';
import { createPool } from '../db/db';
import { WorkerMetrics } from './worker-metrics';
import { createProducerConnection, createWorkerConnection, Dispatcher } from '../queue/queues';
import {
  claimFree,
  ensurePartitionRows,
  forgetWorker,
  heartbeatWorker,
  release,
  renew,
  type Claimed,
} from './leases';
import type { LegToEnqueue } from '../domain/transfer';
import { packEnvelopes } from '../queue/queues';
import {
  emptyStats,
  PartitionOwner,
  type OwnerHooks,
  type OwnerStats,
  type OwnerTuning,
} from './partition-owner';
import { BatchRunner } from './batch-runner';
import { backfillPartitions, runningInterest } from './interest';
import { partitionOf } from './routing';
import { log } from '../shared/log';

export type WorkerProcessOptions = {
  config: Config;
  workerId?: string;
  leaseMs?: number;
  claimIntervalMs?: number;
  tuning?: Partial<OwnerTuning>;
  hooks?: OwnerHooks;
  /** Called on an error that means the code or data is wrong; the entry point exits. */
  onFatal?: (err: Error) => void;
};

export class WorkerProcess {
  readonly id: string;
  private readonly pool;
  private readonly producer;
  private readonly consumer;
  private readonly dispatcher;
  private readonly runner: BatchRunner;
  private readonly owners = new Map<number, { claim: Claimed; owner: PartitionOwner }>();
  private readonly leaseMs: number;
  private readonly claimIntervalMs: number;
  private readonly tuning: OwnerTuning;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> = Promise.resolve();
  private interestTimer: NodeJS.Timeout | undefined;
  private paying: Promise<void> = Promise.resolve();
  private stopping = false;
  /** Totals of owners that have already stopped, so stats survive a partition moving away. */
  private readonly retired: OwnerStats = emptyStats();
  /** Prometheus metrics of this process (workers/worker.ts serves them at METRICS_PORT). */
  readonly metrics: WorkerMetrics;

  constructor(private readonly opts: WorkerProcessOptions) {
    this.id = opts.workerId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    this.pool = createPool(
      opts.config.databaseUrl,
      POOL_SIZE_MAX,
      `ledgerline worker ${process.pid}`,
    );
    this.producer = createProducerConnection(opts.config.redisUrl);
    this.consumer = createWorkerConnection(opts.config.redisUrl);
    this.dispatcher = new Dispatcher(this.producer, opts.config.queuePrefix);
    this.metrics = new WorkerMetrics({
      pool: this.pool,
      ownedPartitions: () => this.ownedPartitions(),
    });
    this.leaseMs = opts.leaseMs ?? LEASE_MS;
    this.claimIntervalMs = opts.claimIntervalMs ?? CLAIM_INTERVAL_MS;
    this.tuning = {
      batchLegsMax: APPLY_BATCH_LEGS_MAX,
      batchesInFlightMax: APPLY_BATCHES_IN_FLIGHT_MAX,
      creditsInSameBatch: true,
      envelopesInHandMax: ENVELOPES_IN_HAND_MAX,
      handOffLegsMax: HAND_OFF_LEGS_MAX,
      sweepAfterMs: SWEEP_AFTER_MS,
      sweepIntervalMs: SWEEP_INTERVAL_MS,
      sweepBatchMax: SWEEP_BATCH_MAX,
      backlogAlarmLegs: BACKLOG_ALARM_LEGS,
      interestPollIntervalMs: INTEREST_POLL_INTERVAL_MS,
      interestPageAccountsMax: INTEREST_PAGE_ACCOUNTS_MAX,
      ...opts.tuning,
    };
    this.runner = new BatchRunner({
      pool: this.pool,
      forward: (legs) => this.forward(legs),
      batchLegsMax: this.tuning.batchLegsMax,
      batchesInFlightMax: this.tuning.batchesInFlightMax,
      creditsInSameBatch: this.tuning.creditsInSameBatch,
      observer: this.metrics,
      onFatal: (err) => {
        if (this.opts.onFatal) this.opts.onFatal(err);
        else throw err;
      },
    });
  }

  async start(): Promise<void> {
    const { partitions } = this.opts.config;
    await ensurePartitionRows(this.pool, partitions);
    // Accounts made by a web older than the partition column get it before any run reads them.
    await backfillPartitions(this.pool, partitions, (id) => partitionOf(id, partitions));
    await this.tick();
    this.schedule();
    this.scheduleInterest();
  }

  ownedPartitions(): number[] {
    return [...this.owners.keys()].sort((a, b) => a - b);
  }

  stats(): OwnerStats {
    const total = { ...this.retired };
    for (const { owner } of this.owners.values()) addStats(total, owner.stats);
    return total;
  }

  /** Finishes the batches in hand, releases every partition, and closes its connections. */
  stop(): Promise<void> {
    return this.shutdown({ release: true });
  }

  /** Simulates a crash: stops consuming without releasing leases or saying goodbye. */
  kill(): Promise<void> {
    return this.shutdown({ release: false });
  }

  private async shutdown(opts: { release: boolean }): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.interestTimer) clearTimeout(this.interestTimer);
    await this.ticking;
    await this.paying;
    await Promise.all(this.ownedPartitions().map((p) => this.letGo(p, opts)));
    if (opts.release) await forgetWorker(this.pool, this.id).catch(() => {});
    await this.dispatcher.close();
    this.producer.disconnect();
    this.consumer.disconnect();
    await this.pool.end();
  }

  private schedule(): void {
    if (this.stopping) return;
    this.timer = setTimeout(() => {
      this.ticking = this.tick()
        .catch((err: Error) => log.error({ err, worker: this.id }, 'lease tick failed'))
        .finally(() => this.schedule());
    }, this.claimIntervalMs);
  }

  private async tick(): Promise<void> {
    const { partitions } = this.opts.config;
    const live = await heartbeatWorker(this.pool, {
      workerId: this.id,
      // A process stops counting towards the share when its leases would have run out, so a dead
      // one's partitions are claimable as soon as their leases expire.
      staleMs: this.leaseMs,
    });
    const kept = await renew(this.pool, {
      owner: this.id,
      held: [...this.owners.values()].map((o) => o.claim),
      leaseMs: this.leaseMs,
    });
    for (const p of this.ownedPartitions()) {
      if (!kept.has(p)) await this.letGo(p, { release: false });
    }
    if (this.stopping) return;

    // Fair share: with W live processes each aims at ceil(N / W) partitions.
    const target = Math.ceil(partitions / Math.max(1, live));
    const extra = this.owners.size - target;
    for (const p of this.ownedPartitions().reverse().slice(0, Math.max(0, extra))) {
      await this.letGo(p, { release: true });
    }
    const claimed = await claimFree(this.pool, {
      owner: this.id,
      countMax: target - this.owners.size,
      leaseMs: this.leaseMs,
      partitions,
    });
    for (const claim of claimed) this.run(claim);
  }

  private scheduleInterest(): void {
    if (this.stopping) return;
    this.interestTimer = setTimeout(() => {
      this.paying = this.payInterest()
        .catch((err: Error) => log.error({ err, worker: this.id }, 'interest page failed'))
        .finally(() => this.scheduleInterest());
    }, this.tuning.interestPollIntervalMs);
  }

  /**
   * Each owned partition with a run to pay pays one page of it per poll, so a run moves along
   * beside the traffic instead of in front of it.
   */
  private async payInterest(): Promise<void> {
    for (const { asOf, partition } of await runningInterest(this.pool, this.ownedPartitions())) {
      if (this.stopping) return;
      await this.owners.get(partition)?.owner.payInterestPage(asOf);
    }
  }

  /** Starts an owner for a partition this process has just claimed (or stolen, in tests). */
  run(claim: Claimed): void {
    const { config } = this.opts;
    const owner = new PartitionOwner({
      own: { partition: claim.partition, epoch: claim.epoch, owner: this.id },
      pool: this.pool,
      runner: this.runner,
      forward: (legs, opts) => this.forward(legs, opts),
      connection: this.consumer,
      queuePrefix: config.queuePrefix,
      isLocal: (accountId) => partitionOf(accountId, config.partitions) === claim.partition,
      tuning: this.tuning,
      hooks: this.opts.hooks ?? {},
      observer: this.metrics,
      onFenced: (p) => void this.letGo(p, { release: false }),
    });
    this.owners.set(claim.partition, { claim, owner });
    owner.start();
  }

  /**
   * The legs a batch or a sweep sends on: to an owner in this process, in memory, when it takes
   * them; the rest in envelopes through Redis.
   */
  private async forward(
    legs: readonly LegToEnqueue[],
    opts: { round?: string } = {},
  ): Promise<void> {
    if (legs.length === 0) return;
    const viaRedis: LegToEnqueue[] = [];
    let envelopesViaRedis = 0;
    for (const [partition, envelopes] of packEnvelopes(legs)) {
      const owner = this.owners.get(partition)?.owner;
      for (const envelope of envelopes) {
        if (owner?.handOff(envelope)) continue;
        envelopesViaRedis += 1;
        for (const leg of envelope) viaRedis.push({ ...leg, partition });
      }
    }
    await this.dispatcher.enqueue(viaRedis, opts);
    this.metrics.envelopesSent(envelopesViaRedis);
  }

  private async letGo(partition: number, opts: { release: boolean }): Promise<void> {
    const entry = this.owners.get(partition);
    if (!entry) return;
    this.owners.delete(partition);
    await entry.owner.stop();
    addStats(this.retired, entry.owner.stats);
    if (opts.release) await release(this.pool, this.id, entry.claim).catch(() => {});
  }
}

function addStats(into: OwnerStats, from: OwnerStats): void {
  for (const key of Object.keys(into) as (keyof OwnerStats)[]) into[key] += from[key];
}
