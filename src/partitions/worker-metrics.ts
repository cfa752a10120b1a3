// Prometheus metrics of a worker process, where money moves: transfers finished by type and
// outcome, batch sizes and apply latency, envelopes in and out, backlogs and their oldest leg,
// money in flight, fenced batches and leases held. Served at METRICS_PORT by workers/worker.ts.
import type pg from 'pg';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Plan } from '../ledger/plan';
import { BACKLOG_ALARM_LEGS } from '../config/limits';
import { backlogLegs, oldestWaitingSeconds } from './backlog';

/** What an owner reports as it works; the worker process's metrics implement it. */
export type OwnerObserver = {
  envelopeReceived: () => void;
  legsHandedOff: (legs: number) => void;
  /** One partition's part of a committed batch. */
  partApplied: (plan: Plan) => void;
  batchFenced: () => void;
};

export class WorkerMetrics implements OwnerObserver {
  readonly registry = new Registry();
  private readonly finished: Counter<'type' | 'status' | 'failure_code'>;
  private readonly legsApplied: Counter;
  private readonly batchLegs: Histogram;
  private readonly applySeconds: Histogram;
  private readonly envelopesIn: Counter;
  private readonly envelopesOut: Counter;
  private readonly handedOff: Counter;
  private readonly fenced: Counter;

  constructor(opts: { pool: pg.Pool; ownedPartitions: () => number[] }) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.finished = new Counter({
      name: 'ledgerline_worker_transfers_finished_total',
      help: 'Transfers this worker brought to a final status, by type, status and failure code',
      labelNames: ['type', 'status', 'failure_code'] as const,
      registers,
    });
    this.legsApplied = new Counter({
      name: 'ledgerline_worker_legs_applied_total',
      help: 'Legs applied (debit, credit, refund), redeliveries not counted',
      registers,
    });
    this.batchLegs = new Histogram({
      name: 'ledgerline_worker_batch_legs',
      help: 'Legs per applied batch (one PostgreSQL transaction, every partition of the process)',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
      registers,
    });
    this.applySeconds = new Histogram({
      name: 'ledgerline_worker_batch_apply_seconds',
      help: 'Time to read, apply and commit one batch',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.envelopesIn = new Counter({
      name: 'ledgerline_worker_envelopes_received_total',
      help: 'Envelopes taken from Redis',
      registers,
    });
    this.envelopesOut = new Counter({
      name: 'ledgerline_worker_envelopes_sent_total',
      help: 'Envelopes of next legs sent through Redis to another process',
      registers,
    });
    this.handedOff = new Counter({
      name: 'ledgerline_worker_legs_handed_off_total',
      help: 'Next legs handed in memory to an owner in this process, without Redis',
      registers,
    });
    this.fenced = new Counter({
      name: 'ledgerline_worker_fenced_batches_total',
      help: 'Batches refused by the fence because another worker owns the partition now',
      registers,
    });
    new Gauge({
      name: 'ledgerline_worker_partitions_owned',
      help: 'Partition leases this worker holds',
      registers,
      collect() {
        this.set(opts.ownedPartitions().length);
      },
    });
    new Gauge({
      name: 'ledgerline_worker_backlog_legs',
      help: `Legs waiting to be applied, per partition this worker owns (read from PostgreSQL, capped at ${BACKLOG_ALARM_LEGS})`,
      labelNames: ['partition'] as const,
      registers,
      async collect() {
        this.reset();
        const owned = opts.ownedPartitions();
        const legs = await backlogLegs(opts.pool, {
          partitions: owned,
          capLegs: BACKLOG_ALARM_LEGS,
        });
        for (const [p, n] of legs) this.set({ partition: String(p) }, n);
      },
    });
    new Gauge({
      name: 'ledgerline_worker_backlog_oldest_seconds',
      help: 'Age of the oldest leg waiting, per partition this worker owns (0 when none waits)',
      labelNames: ['partition'] as const,
      registers,
      async collect() {
        this.reset();
        const ages = await oldestWaitingSeconds(opts.pool, opts.ownedPartitions());
        for (const [p, s] of ages) this.set({ partition: String(p) }, s);
      },
    });
    new Gauge({
      name: 'ledgerline_money_in_flight_minor',
      help: 'Money debited and not yet credited or refunded, in minor units, per currency (whole ledger)',
      labelNames: ['currency'] as const,
      registers,
      async collect() {
        this.reset();
        const res = await opts.pool.query<{ currency: string; amount: string }>(
          `SELECT currency, sum(amount)::text AS amount FROM transfers
            WHERE status = 'debited' GROUP BY currency`,
        );
        for (const r of res.rows) this.set({ currency: r.currency }, Number(r.amount));
      },
    });
  }

  envelopeReceived(): void {
    this.envelopesIn.inc();
  }

  envelopesSent(envelopes: number): void {
    if (envelopes > 0) this.envelopesOut.inc(envelopes);
  }

  legsHandedOff(legs: number): void {
    this.handedOff.inc(legs);
  }

  /** A batch of the process (all its partitions' parts, one transaction) committed. */
  batchApplied(legs: number, seconds: number): void {
    this.batchLegs.observe(legs);
    this.applySeconds.observe(seconds);
  }

  partApplied(plan: Plan): void {
    this.legsApplied.inc(plan.appliedLegs.length);
    for (const w of plan.transferWrites) {
      if (w.status !== 'completed' && w.status !== 'failed') continue;
      this.finished.inc({ type: w.type, status: w.status, failure_code: w.failureCode ?? '' });
    }
  }

  batchFenced(): void {
    this.fenced.inc();
  }
}
