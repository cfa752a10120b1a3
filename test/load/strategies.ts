// The classic concurrency-control strategies, each moving money between rows of one table, for
// comparison with Ledgerline's queue serialization in the same run.
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type pg from 'pg';

export type Outcome = 'ok' | 'insufficient_funds' | 'gave_up';
/** A money movement: from an account (null: from outside) to an account (null: to outside). */
export type Move = { from: number | null; to: number | null; amount: bigint };
/** What a strategy works with: the PostgreSQL pool, and Redis connections for the Redis ones. */
export type StrategyDeps = { pool: pg.Pool; redis: RedisPool };
export type Strategy = (deps: StrategyDeps, move: Move) => Promise<Outcome>;

/** Optimistic retries before a request gives up; bounded like every retry. */
export const OPTIMISTIC_RETRIES_MAX = 100;

export const CLASSIC_SCHEMA = `
  DROP TABLE IF EXISTS load_accounts, load_entries;
  CREATE TABLE load_accounts (id int PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0),
                              version bigint NOT NULL DEFAULT 0);
  CREATE TABLE load_entries (id bigserial PRIMARY KEY, account_id int NOT NULL, amount bigint NOT NULL);`;

async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  } finally {
    client.release();
  }
}

class Insufficient extends Error {}

function entries(move: Move): { ids: number[]; amounts: string[] } {
  const ids: number[] = [];
  const amounts: string[] = [];
  if (move.from !== null) {
    ids.push(move.from);
    amounts.push((-move.amount).toString());
  }
  if (move.to !== null) {
    ids.push(move.to);
    amounts.push(move.amount.toString());
  }
  return { ids, amounts };
}

const LOG = `INSERT INTO load_entries (account_id, amount) SELECT * FROM unnest($1::int[], $2::bigint[])`;

/** Read, decide in the client, write back: lost updates under concurrency. Never use this. */
export const unsafe: Strategy = async ({ pool }, move) => {
  if (move.from !== null) {
    const r = await pool.query<{ balance: string }>(
      'SELECT balance FROM load_accounts WHERE id = $1',
      [move.from],
    );
    const balance = BigInt(r.rows[0]!.balance);
    if (balance < move.amount) return 'insufficient_funds';
    await pool.query('UPDATE load_accounts SET balance = $2 WHERE id = $1', [
      move.from,
      (balance - move.amount).toString(),
    ]);
  }
  if (move.to !== null) {
    const r = await pool.query<{ balance: string }>(
      'SELECT balance FROM load_accounts WHERE id = $1',
      [move.to],
    );
    await pool.query('UPDATE load_accounts SET balance = $2 WHERE id = $1', [
      move.to,
      (BigInt(r.rows[0]!.balance) + move.amount).toString(),
    ]);
  }
  const e = entries(move);
  await pool.query(LOG, [e.ids, e.amounts]);
  return 'ok';
};

/** Pessimistic: lock the rows (in id order, against deadlocks), check, write. */
export const forUpdate: Strategy = async ({ pool }, move) => {
  try {
    return await inTransaction(pool, async (c) => {
      const ids = [move.from, move.to].filter((x): x is number => x !== null).sort((a, b) => a - b);
      const rows = await c.query<{ id: number; balance: string }>(
        'SELECT id, balance FROM load_accounts WHERE id = ANY($1::int[]) ORDER BY id FOR UPDATE',
        [ids],
      );
      const from = rows.rows.find((r) => r.id === move.from);
      if (from && BigInt(from.balance) < move.amount) throw new Insufficient();
      const e = entries(move);
      await c.query(
        `UPDATE load_accounts a SET balance = a.balance + x.d FROM unnest($1::int[], $2::bigint[]) AS x(id, d) WHERE a.id = x.id`,
        [e.ids, e.amounts],
      );
      await c.query(LOG, [e.ids, e.amounts]);
      return 'ok' as const;
    });
  } catch (err) {
    if (err instanceof Insufficient) return 'insufficient_funds';
    throw err;
  }
};

/** Optimistic: read with versions, write only if no one else did, retry otherwise. */
export const optimistic: Strategy = async ({ pool }, move) => {
  for (let attempt = 0; attempt < OPTIMISTIC_RETRIES_MAX; attempt++) {
    const ids = [move.from, move.to].filter((x): x is number => x !== null);
    const rows = await pool.query<{ id: number; balance: string; version: string }>(
      'SELECT id, balance, version FROM load_accounts WHERE id = ANY($1::int[])',
      [ids],
    );
    const from = rows.rows.find((r) => r.id === move.from);
    if (from && BigInt(from.balance) < move.amount) return 'insufficient_funds';
    const e = entries(move);
    const done = await inTransaction(pool, async (c) => {
      const u = await c.query(
        `UPDATE load_accounts a SET balance = a.balance + x.d, version = a.version + 1
           FROM unnest($1::int[], $2::bigint[], $3::bigint[]) AS x(id, d, v)
          WHERE a.id = x.id AND a.version = x.v`,
        [e.ids, e.amounts, e.ids.map((id) => rows.rows.find((r) => r.id === id)!.version)],
      );
      if (u.rowCount !== e.ids.length) throw new Insufficient();
      await c.query(LOG, [e.ids, e.amounts]);
      return true;
    }).catch((err) => {
      if (err instanceof Insufficient) return false;
      throw err;
    });
    if (done) return 'ok';
  }
  return 'gave_up';
};

/** Atomic conditional UPDATE: the database checks the funds in the write itself. */
export const atomic: Strategy = async ({ pool }, move) => {
  try {
    return await inTransaction(pool, async (c) => {
      if (move.from !== null) {
        const u = await c.query(
          'UPDATE load_accounts SET balance = balance - $2 WHERE id = $1 AND balance >= $2',
          [move.from, move.amount.toString()],
        );
        if (u.rowCount === 0) throw new Insufficient();
      }
      if (move.to !== null) {
        await c.query('UPDATE load_accounts SET balance = balance + $2 WHERE id = $1', [
          move.to,
          move.amount.toString(),
        ]);
      }
      const e = entries(move);
      await c.query(LOG, [e.ids, e.amounts]);
      return 'ok' as const;
    });
  } catch (err) {
    if (err instanceof Insufficient) return 'insufficient_funds';
    throw err;
  }
};

/** Redis retries before a request gives up (lock waits, lost WATCH races); bounded like all. */
export const REDIS_RETRIES_MAX = 2_000;
const LOCK_TTL_MS = 5_000;
const LOCK_RETRY_MS = 1;

/**
 * WATCH is per connection, so each request borrows a connection of its own from a small pool
 * (as many as PostgreSQL's), and gives it back.
 */
export class RedisPool {
  private readonly idle: Redis[];
  private readonly waiting: ((r: Redis) => void)[] = [];
  constructor(readonly all: Redis[]) {
    this.idle = [...all];
  }
  async with<T>(fn: (r: Redis) => Promise<T>): Promise<T> {
    const r = this.idle.pop() ?? (await new Promise<Redis>((res) => this.waiting.push(res)));
    try {
      return await fn(r);
    } finally {
      const next = this.waiting.shift();
      if (next) next(r);
      else this.idle.push(r);
    }
  }
}

/** Deletes the lock only if it still holds our token: an expired lock is never freed twice. */
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

/**
 * A Redis lock per account (SET NX PX with a random token), taken in id order, around the
 * read-modify-write in PostgreSQL. Safe while no lock outlives its expiry mid-write.
 */
export const redisLock: Strategy = async ({ pool, redis }, move) => {
  const ids = [move.from, move.to].filter((x): x is number => x !== null).sort((a, b) => a - b);
  const token = randomBytes(12).toString('hex');
  return redis.with(async (r) => {
    const held: string[] = [];
    try {
      for (const id of ids) {
        const key = `lock:${id}`;
        for (let attempt = 0; ; attempt++) {
          if ((await r.set(key, token, 'PX', LOCK_TTL_MS, 'NX')) === 'OK') break;
          if (attempt >= REDIS_RETRIES_MAX) return 'gave_up';
          await new Promise((res) => setTimeout(res, LOCK_RETRY_MS));
        }
        held.push(key);
      }
      return await unsafe({ pool, redis }, move);
    } finally {
      for (const key of held) await r.eval(RELEASE, 1, key, token);
    }
  });
};

/** Balances kept in Redis, changed with WATCH/MULTI/EXEC; each success logged in PostgreSQL. */
export const redisCas: Strategy = async ({ pool, redis }, move) => {
  const ids = [move.from, move.to].filter((x): x is number => x !== null);
  const keys = ids.map((id) => `bal:${id}`);
  const outcome = await redis.with(async (r) => {
    for (let attempt = 0; attempt < REDIS_RETRIES_MAX; attempt++) {
      await r.watch(...keys);
      if (move.from !== null) {
        const balance = BigInt((await r.get(`bal:${move.from}`)) ?? '0');
        if (balance < move.amount) {
          await r.unwatch();
          return 'insufficient_funds' as const;
        }
      }
      const tx = r.multi();
      if (move.from !== null) tx.decrby(`bal:${move.from}`, move.amount.toString());
      if (move.to !== null) tx.incrby(`bal:${move.to}`, move.amount.toString());
      if ((await tx.exec()) !== null) return 'ok' as const;
    }
    return 'gave_up' as const;
  });
  if (outcome === 'ok') {
    const e = entries(move);
    await pool.query(LOG, [e.ids, e.amounts]);
  }
  return outcome;
};

export const CLASSIC_NAMES = [
  'unsafe',
  'for-update',
  'optimistic',
  'atomic',
  'redis-lock',
  'redis-cas',
] as const;
export type ClassicName = (typeof CLASSIC_NAMES)[number];

export const CLASSIC: Record<ClassicName, Strategy> = {
  unsafe,
  'for-update': forUpdate,
  optimistic,
  atomic,
  'redis-lock': redisLock,
  'redis-cas': redisCas,
};
