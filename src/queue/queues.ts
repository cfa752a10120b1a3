// Queue names, job shapes and the producer that puts legs on their partition's queue.
import { Queue, type JobsOptions } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import {
  JOB_ATTEMPTS_MAX,
  JOB_BACKOFF_MS_BASE,
  JOB_COMPLETED_KEEP_COUNT,
  JOB_FAILED_KEEP_COUNT,
} from '../config/limits';
import { z } from 'zod';
import { LEGS, type Leg } from '../domain/transfer';

/** One queue per partition. The `{…}` hash tag keeps a partition's keys in one Cluster slot. */
export function queueName(partition: number): string {
  return `{p${partition}}`;
}

/** Derived from transfer and leg, so a leg enqueued twice while waiting is one job. */
export function jobId(transferId: string, leg: Leg): string {
  return `${leg}-${transferId}`;
}

export type LegJobData = { transferId: string; leg: Leg };

/** What a worker accepts from Redis: anything else is refused before it reaches PostgreSQL. */
export const LegJobSchema = z.object({ transferId: z.uuid(), leg: z.enum(LEGS) });
export type LegToEnqueue = LegJobData & { partition: number };

export const LEG_JOB_OPTIONS: JobsOptions = {
  // Only infrastructure failures reach BullMQ's retries; business outcomes complete the job.
  attempts: JOB_ATTEMPTS_MAX,
  backoff: { type: 'exponential', delay: JOB_BACKOFF_MS_BASE },
  removeOnComplete: { count: JOB_COMPLETED_KEEP_COUNT },
  removeOnFail: { count: JOB_FAILED_KEEP_COUNT },
};

/** Producers fail fast: with Redis down the caller hears at once instead of hanging. */
export function createProducerConnection(redisUrl: string): Redis {
  const options: RedisOptions = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    lazyConnect: false,
  };
  const redis = new Redis(redisUrl, options);
  redis.on('error', () => {
    // Reported where a command fails; ioredis reconnects by itself.
  });
  return redis;
}

/** BullMQ workers must never give up on a blocking command. */
export function createWorkerConnection(redisUrl: string): Redis {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  redis.on('error', () => {});
  return redis;
}

export class Dispatcher {
  private readonly queues = new Map<number, Queue<LegJobData>>();

  constructor(
    private readonly connection: Redis,
    private readonly prefix: string,
  ) {}

  queue(partition: number): Queue<LegJobData> {
    let queue = this.queues.get(partition);
    if (!queue) {
      queue = new Queue<LegJobData>(queueName(partition), {
        connection: this.connection,
        prefix: this.prefix,
        defaultJobOptions: LEG_JOB_OPTIONS,
      });
      queue.on('error', () => {});
      this.queues.set(partition, queue);
    }
    return queue;
  }

  /** One addBulk per partition. Not atomic across jobs, which is fine: PostgreSQL is the record. */
  async enqueue(legs: readonly LegToEnqueue[]): Promise<void> {
    const byPartition = new Map<number, LegToEnqueue[]>();
    for (const leg of legs) {
      const group = byPartition.get(leg.partition) ?? [];
      group.push(leg);
      byPartition.set(leg.partition, group);
    }
    await Promise.all(
      [...byPartition].map(([partition, group]) =>
        this.queue(partition).addBulk(
          group.map(({ transferId, leg }) => ({
            name: leg,
            data: { transferId, leg },
            opts: { ...LEG_JOB_OPTIONS, jobId: jobId(transferId, leg) },
          })),
        ),
      ),
    );
  }

  /**
   * The sweep's re-drive: a job that exhausted its attempts sits in the failed set under its id
   * and would swallow the re-add, so it is removed first.
   */
  async redrive(legs: readonly LegToEnqueue[]): Promise<void> {
    for (const leg of legs) {
      const job = await this.queue(leg.partition).getJob(jobId(leg.transferId, leg.leg));
      if (job && (await job.isFailed())) await job.remove();
    }
    await this.enqueue(legs);
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close()));
    this.queues.clear();
  }
}
