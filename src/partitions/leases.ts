// Partition leases in PostgreSQL: an expiring lease plus a fencing epoch bumped on every claim.
import type pg from 'pg';

export type Claimed = { partition: number; epoch: bigint };

export async function ensurePartitionRows(pool: pg.Pool, partitions: number): Promise<void> {
  await pool.query(
    `INSERT INTO partitions (id) SELECT generate_series(0, $1::int - 1) ON CONFLICT DO NOTHING`,
    [partitions],
  );
}

/** Records that this process is alive and returns how many processes are (itself included). */
export async function heartbeatWorker(
  pool: pg.Pool,
  opts: { workerId: string; staleMs: number },
): Promise<number> {
  await pool.query(
    `INSERT INTO worker_processes (id) VALUES ($1)
     ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`,
    [opts.workerId],
  );
  // Processes that died without saying goodbye are forgotten after ten lease times.
  await pool.query(
    `DELETE FROM worker_processes
      WHERE heartbeat_at < now() - make_interval(secs => $1::double precision / 100)`,
    [opts.staleMs],
  );
  const live = await pool.query<{ n: string }>(
    `SELECT count(*) AS n FROM worker_processes
      WHERE heartbeat_at > now() - make_interval(secs => $1::double precision / 1000)`,
    [opts.staleMs],
  );
  return Number(live.rows[0]!.n);
}

export async function forgetWorker(pool: pg.Pool, workerId: string): Promise<void> {
  await pool.query('DELETE FROM worker_processes WHERE id = $1', [workerId]);
}

/**
 * Claims up to `countMax` partitions that are free or whose lease ran out. The condition is
 * repeated in the outer UPDATE so that, of two racing claimers, the second re-checks the row it
 * waited for and finds it taken.
 */
export async function claimFree(
  pool: pg.Pool,
  opts: { owner: string; countMax: number; leaseMs: number; partitions: number },
): Promise<Claimed[]> {
  if (opts.countMax <= 0) return [];
  const res = await pool.query<{ id: number; epoch: string }>(
    `UPDATE partitions p
        SET owner = $1, epoch = p.epoch + 1, heartbeat_at = now(),
            lease_expires_at = now() + make_interval(secs => $2::double precision / 1000)
      WHERE p.id IN (SELECT id FROM partitions
                      WHERE id < $4 AND (owner IS NULL OR lease_expires_at < now())
                      ORDER BY id LIMIT $3)
        AND (p.owner IS NULL OR p.lease_expires_at < now())
      RETURNING p.id, p.epoch`,
    [opts.owner, opts.leaseMs, opts.countMax, opts.partitions],
  );
  return res.rows.map((r) => ({ partition: r.id, epoch: BigInt(r.epoch) }));
}

/** Takes a partition whatever its lease says (an operator's or a test's forced move). */
export async function steal(
  pool: pg.Pool,
  opts: { owner: string; partition: number; leaseMs: number },
): Promise<Claimed> {
  const res = await pool.query<{ epoch: string }>(
    `UPDATE partitions
        SET owner = $1, epoch = epoch + 1, heartbeat_at = now(),
            lease_expires_at = now() + make_interval(secs => $3::double precision / 1000)
      WHERE id = $2 RETURNING epoch`,
    [opts.owner, opts.partition, opts.leaseMs],
  );
  return { partition: opts.partition, epoch: BigInt(res.rows[0]!.epoch) };
}

/** Extends the leases still ours; returns the partitions whose lease we still hold. */
export async function renew(
  pool: pg.Pool,
  opts: { owner: string; held: readonly Claimed[]; leaseMs: number },
): Promise<Set<number>> {
  if (opts.held.length === 0) return new Set();
  const res = await pool.query<{ id: number }>(
    `UPDATE partitions p
        SET lease_expires_at = now() + make_interval(secs => $2::double precision / 1000)
       FROM unnest($3::int[], $4::bigint[]) AS x(id, epoch)
      WHERE p.id = x.id AND p.epoch = x.epoch AND p.owner = $1
      RETURNING p.id`,
    [
      opts.owner,
      opts.leaseMs,
      opts.held.map((h) => h.partition),
      opts.held.map((h) => h.epoch.toString()),
    ],
  );
  return new Set(res.rows.map((r) => r.id));
}

/** Lets go of a partition so another process can claim it at once. */
export async function release(pool: pg.Pool, owner: string, held: Claimed): Promise<void> {
  await pool.query(
    `UPDATE partitions SET owner = NULL, lease_expires_at = now()
      WHERE id = $1 AND epoch = $2 AND owner = $3`,
    [held.partition, held.epoch.toString(), owner],
  );
}
