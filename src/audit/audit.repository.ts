// The audit trail in PostgreSQL: rows written in the background in one INSERT per interval, read
// newest first by keyset.
import type pg from 'pg';
import { AUDIT_BUFFER_EVENTS_MAX, AUDIT_FLUSH_INTERVAL_MS } from '../config/limits';
import { log } from '../shared/log';

export type AuditEvent = {
  apiKeyId: string;
  action: string;
  targetId: string | null;
  requestId: string;
  status: number;
};
export type StoredAuditEvent = AuditEvent & { id: bigint; at: Date };

/**
 * Writes audit rows in the background: `record` only buffers, and the buffer is written in one
 * INSERT every AUDIT_FLUSH_INTERVAL_MS (and at stop), so the trail costs a request no round trip.
 * The price: a web process killed without warning loses at most that interval's rows (a money
 * movement itself still names its key in its transfer row). Past AUDIT_BUFFER_EVENTS_MAX rows
 * waiting (PostgreSQL down), the oldest are dropped, counted and logged, never the process.
 */
export class AuditLog {
  private buffer: AuditEvent[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  dropped = 0;

  constructor(
    private readonly pool: pg.Pool,
    private readonly opts = {
      flushIntervalMs: AUDIT_FLUSH_INTERVAL_MS,
      bufferEventsMax: AUDIT_BUFFER_EVENTS_MAX,
    },
  ) {}

  record(event: AuditEvent): void {
    if (this.buffer.length >= this.opts.bufferEventsMax) {
      this.buffer.shift();
      this.dropped += 1;
    }
    this.buffer.push(event);
    this.schedule();
  }

  private schedule(): void {
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      this.flushing = this.flushing.then(() => this.write());
    }, this.opts.flushIntervalMs);
  }

  /** Writes whatever is buffered now; at stop, and in tests that read the trail at once. */
  async flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing = this.flushing.then(() => this.write());
    await this.flushing;
  }

  private async write(): Promise<void> {
    if (this.buffer.length === 0) return;
    const batch = this.buffer;
    this.buffer = [];
    const column = <T>(f: (e: AuditEvent) => T) => batch.map(f);
    try {
      await this.pool.query({
        name: 'ledgerline_audit_insert',
        text: `INSERT INTO audit_events (api_key_id, action, target_id, request_id, status)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[])`,
        values: [
          column((e) => e.apiKeyId),
          column((e) => e.action),
          column((e) => e.targetId),
          column((e) => e.requestId),
          column((e) => e.status),
        ],
      });
    } catch (err) {
      // Kept for the next write, in order, within the bound.
      this.buffer = [...batch, ...this.buffer];
      const over = this.buffer.length - this.opts.bufferEventsMax;
      if (over > 0) {
        this.buffer.splice(0, over);
        this.dropped += over;
      }
      log.warn(
        { message: (err as Error).message, waiting: this.buffer.length, dropped: this.dropped },
        'audit rows not written yet',
      );
      this.schedule();
    }
  }
}

export async function listAuditEvents(
  pool: pg.Pool,
  opts: { limit: number; beforeId: bigint | null },
): Promise<{ events: StoredAuditEvent[]; more: boolean }> {
  const res = await pool.query<{
    id: string;
    at: Date;
    api_key_id: string;
    action: string;
    target_id: string | null;
    request_id: string;
    status: number;
  }>(
    `SELECT id, at, api_key_id, action, target_id, request_id, status FROM audit_events
      WHERE $1::bigint IS NULL OR id < $1
      ORDER BY id DESC LIMIT $2`,
    [opts.beforeId, opts.limit + 1],
  );
  const events = res.rows.slice(0, opts.limit).map((r) => ({
    id: BigInt(r.id),
    at: r.at,
    apiKeyId: r.api_key_id,
    action: r.action,
    targetId: r.target_id,
    requestId: r.request_id,
    status: r.status,
  }));
  return { events, more: res.rows.length > opts.limit };
}
