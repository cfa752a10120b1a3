// The audit trail in PostgreSQL: rows written together (requests answered in the same tick share
// one INSERT), read newest first by keyset.
import type pg from 'pg';

export type AuditEvent = {
  apiKeyId: string;
  action: string;
  targetId: string | null;
  requestId: string;
  status: number;
};
export type StoredAuditEvent = AuditEvent & { id: bigint; at: Date };

type Pending = { event: AuditEvent; resolve: () => void; reject: (err: Error) => void };

/**
 * Writes audit rows. `record` resolves once the row has committed, so a request is answered
 * only after its audit row is durable; rows recorded in one tick share one INSERT.
 */
export class AuditLog {
  private pending: Pending[] = [];
  private scheduled = false;

  constructor(private readonly pool: pg.Pool) {}

  record(event: AuditEvent): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ event, resolve, reject });
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    const batch = this.pending;
    this.pending = [];
    const column = <T>(f: (e: AuditEvent) => T) => batch.map((p) => f(p.event));
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
      for (const p of batch) p.resolve();
    } catch (err) {
      for (const p of batch) p.reject(err as Error);
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
