// Admission control at the intake: a partition whose backlog is at its cap takes no new command
// until its owner catches up. The backlogs come from PostgreSQL (the record) a few times a
// second, plus what this process accepted since, so the check itself costs no I/O per request.
import type pg from 'pg';
import { backlogLegs } from '../partitions/backlog';
import { log } from '../shared/log';

export class Admission {
  private backlog = new Map<number, number>();
  /** Partitions at their cap in `backlog`: while none is, nothing needs routing to be admitted. */
  private full = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly deps: {
      pool: pg.Pool;
      partitions: number;
      backlogLegsMax: number;
      checkIntervalMs: number;
    },
  ) {}

  async start(): Promise<void> {
    await this.refresh();
    this.schedule();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** True when every partition named can take one more leg. */
  admits(partitions: readonly number[]): boolean {
    const max = this.deps.backlogLegsMax;
    return partitions.every((p) => (this.backlog.get(p) ?? 0) < max);
  }

  /** True when some partition is at its cap (one comparison, for the intake's hot path). */
  get anyFull(): boolean {
    return this.full > 0;
  }

  /** Counts a leg this process just enqueued, until the next reading replaces the estimate. */
  noteAccepted(partition: number): void {
    const legs = (this.backlog.get(partition) ?? 0) + 1;
    this.backlog.set(partition, legs);
    if (legs === this.deps.backlogLegsMax) this.full += 1;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.refresh()
        .catch((err: Error) => log.warn({ err }, 'backlog reading failed; keeping the last one'))
        .finally(() => this.schedule());
    }, this.deps.checkIntervalMs);
  }

  private async refresh(): Promise<void> {
    const max = this.deps.backlogLegsMax;
    this.backlog = await backlogLegs(this.deps.pool, {
      partitions: Array.from({ length: this.deps.partitions }, (_, p) => p),
      capLegs: max,
    });
    this.full = 0;
    for (const legs of this.backlog.values()) if (legs >= max) this.full += 1;
  }
}
