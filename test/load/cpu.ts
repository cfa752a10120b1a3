// Where the CPU goes while a lab run is in its middle: the CPU time each process of the run took
// (web and worker, or the strategy's server; PostgreSQL's server processes; redis-server; the lab
// itself, which is the load generator) between the end of the warm-up and the end of the load,
// divided by the moves made in that window. Processes on another machine cannot be measured
// and are left out (a URL that is not loopback).
import { cpus } from 'node:os';
import pidtree from 'pidtree';
import pidusage from 'pidusage';
import type pg from 'pg';
import type { Redis } from 'ioredis';

/** A sample slower than this (`ps` or `/proc` stuck) leaves the run without CPU figures. */
const CPU_SAMPLE_MS_MAX = 5_000;

/** A part of the run, and how to find its processes now (a server's come and go). */
export type CpuParts = ReadonlyMap<string, () => Promise<readonly number[]>>;

export type CpuRecord = {
  /** Seconds between the two samples, and final moves made between them. */
  window_s: number;
  moves: number;
  /** CPU ms (user + system) each part took per move made in the window. */
  ms_per_move: Record<string, number>;
  total_ms_per_move: number;
  /** The share of the machine's CPU time nobody used in the window (every core). */
  machine_idle_pct: number;
};

type Sample = {
  atMs: number;
  moves: number;
  /** Per part, CPU ms per process (a process that ends before the second sample drops out). */
  ms: Map<string, Map<number, number>>;
  idle: number;
  total: number;
};

function isLoopback(url: string): boolean {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

/**
 * All of the PostgreSQL server's processes (its postmaster and every child: backends, WAL
 * writer, checkpointer…), found through the parent of this pool's backend; so whatever else
 * uses that server in the window counts too. Null when the server is not on this machine.
 */
async function postgresProcesses(
  pool: pg.Pool,
  databaseUrl: string,
): Promise<(() => Promise<number[]>) | null> {
  if (!isLoopback(databaseUrl)) return null;
  const { rows } = await pool.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
  const backend = await pidusage(rows[0]!.pid).catch(() => undefined);
  if (!backend) return null;
  const postmaster = backend.ppid;
  return () => pidtree(postmaster, { root: true }).catch(() => [postmaster]);
}

/** The redis-server this connection talks to (all of its work, whoever asked for it). */
async function redisProcess(
  redis: Pick<Redis, 'info'>,
  redisUrl: string,
): Promise<number[] | null> {
  if (!isLoopback(redisUrl)) return null;
  const info = await redis.info('server');
  const pid = Number(/^process_id:(\d+)/m.exec(info)?.[1]);
  return Number.isInteger(pid) ? [pid] : null;
}

/** A run's parts: its own processes (name, pid), then PostgreSQL's and Redis' when local. */
export async function runParts(
  own: readonly (readonly [string, number])[],
  stores: { pool: pg.Pool; databaseUrl: string; redis: Pick<Redis, 'info'>; redisUrl: string },
): Promise<Map<string, () => Promise<readonly number[]>>> {
  const parts = new Map<string, () => Promise<readonly number[]>>();
  for (const [part, pid] of own) parts.set(part, () => Promise.resolve([pid]));
  const postgres = await postgresProcesses(stores.pool, stores.databaseUrl);
  if (postgres) parts.set('postgres', postgres);
  const redisPids = await redisProcess(stores.redis, stores.redisUrl);
  if (redisPids) parts.set('redis', () => Promise.resolve(redisPids));
  return parts;
}

/** A sample, or undefined if it failed or took longer than CPU_SAMPLE_MS_MAX. */
async function sample(parts: CpuParts, moves: number): Promise<Sample | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), CPU_SAMPLE_MS_MAX);
  });
  try {
    return await Promise.race([read(parts, moves).catch(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}

async function read(parts: CpuParts, moves: number): Promise<Sample> {
  const ms = new Map<string, Map<number, number>>();
  for (const [part, pidsNow] of parts) {
    const byPid = new Map<number, number>();
    for (const pid of await pidsNow()) {
      const stat = await pidusage(pid).catch(() => undefined);
      if (stat) byPid.set(pid, stat.ctime);
    }
    ms.set(part, byPid);
  }
  let idle = 0;
  let total = 0;
  for (const { times } of cpus()) {
    idle += times.idle;
    total += times.user + times.nice + times.sys + times.idle + times.irq;
  }
  return { atMs: performance.now(), moves, ms, idle, total };
}

/**
 * Samples the run's processes once the warm-up is over and again when the load stops. A run
 * that ends before its warm-up does has no window: `end` gives null.
 */
export class CpuWindow {
  private first: Promise<Sample | undefined> | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly parts: CpuParts,
    warmupMs: number,
    private readonly moves: () => number,
  ) {
    this.timer = setTimeout(() => {
      // A process that cannot be read leaves the run without CPU figures, nothing more.
      this.first = sample(parts, moves());
    }, warmupMs);
  }

  async end(): Promise<CpuRecord | null> {
    clearTimeout(this.timer);
    const moves = this.moves();
    if (!this.first) return null;
    const a = await this.first;
    const b = await sample(this.parts, moves);
    pidusage.clear();
    if (!a || !b) return null;
    const made = b.moves - a.moves;
    if (made <= 0) return null;
    const perMove: Record<string, number> = {};
    let total = 0;
    for (const [part, after] of b.ms) {
      const before = a.ms.get(part)!;
      let ms = 0;
      // A process born in the window (a new backend) counts from its start.
      for (const [pid, t] of after) ms += t - (before.get(pid) ?? 0);
      perMove[part] = round3(ms / made);
      total += ms;
    }
    return {
      window_s: Math.round(b.atMs - a.atMs) / 1000,
      moves: made,
      ms_per_move: perMove,
      total_ms_per_move: round3(total / made),
      machine_idle_pct: Math.round(((b.idle - a.idle) / (b.total - a.total)) * 1000) / 10,
    };
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
