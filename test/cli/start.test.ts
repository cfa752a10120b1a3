// Proves `npm start` on a fresh machine: it creates and migrates a missing database, prints a
// generated admin key, serves the API with a worker, stops cleanly on Ctrl-C, and says in one
// line what is wrong when PostgreSQL or Redis cannot be reached.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { deleteKeys } from '../support/test-env';
import { freePort } from '../support/servers';
import { adminUrl, serverUrl } from '../support/urls';
import { Redis } from 'ioredis';

const ROOT = path.resolve(import.meta.dirname, '../..');
const suffix = randomBytes(4).toString('hex');
const database = `ledgerline_start_${suffix}`;
const prefix = `llstart_${suffix}`;

function start(env: NodeJS.ProcessEnv) {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/cli/start.ts'], {
    cwd: ROOT,
    env: { ...process.env, ADMIN_API_KEY: '', ...env },
    detached: true,
    stdio: 'pipe',
  });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { proc, exited, out: () => out, err: () => err };
}

afterAll(async () => {
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(database)} WITH (FORCE)`);
  await admin.end();
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  await deleteKeys(redis, `${prefix}:*`);
  redis.disconnect();
});

describe('npm start', () => {
  it('with PostgreSQL unreachable, says so in one line with the URL and how to start it', async () => {
    const run = start({ DATABASE_URL: 'postgres://root@127.0.0.1:1/ledgerline' });
    expect(await run.exited).toBe(1);
    const lines = run.err().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(
      'PostgreSQL is not reachable at postgres://root@127.0.0.1:1/ledgerline',
    );
    expect(lines[0]).toContain('pg_ctlcluster');
  });

  it('with Redis unreachable, says so in one line with the URL and how to start it', async () => {
    const run = start({ DATABASE_URL: serverUrl(database), REDIS_URL: 'redis://127.0.0.1:1' });
    expect(await run.exited).toBe(1);
    const lines = run.err().trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('Redis is not reachable at redis://127.0.0.1:1');
    expect(lines[0]).toContain('redis-server');
  });

  it('creates the database, prints an admin key, serves the API with a worker, and stops on Ctrl-C', async () => {
    // A port the kernel just gave out, not a random one: a random port could be an ephemeral port
    // in use by one of the suite's other connections, and the web would never listen.
    const port = await freePort();
    const run = start({
      DATABASE_URL: serverUrl(database),
      QUEUE_PREFIX: prefix,
      PORT: String(port),
      PARTITIONS: '4',
    });
    let key: string | undefined;
    for (let i = 0; i < 300 && !key; i++) {
      key = /ADMIN_API_KEY was not set; generated for this run:\s+(\S+)/.exec(run.out())?.[1];
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(key).toBeDefined();
    let health;
    for (let i = 0; i < 300; i++) {
      health = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
      if (health?.ok) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(health?.ok, `npm start printed:\n${run.out()}\n${run.err()}`).toBe(true);
    const h = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
    const account: any = await (
      await fetch(`http://127.0.0.1:${port}/v1/accounts`, {
        method: 'POST',
        headers: h,
        body: JSON.stringify({ holder: 'A', currency: 'EUR' }),
      })
    ).json();
    const dep = await fetch(`http://127.0.0.1:${port}/v1/deposits`, {
      method: 'POST',
      headers: { ...h, 'idempotency-key': 'start-1' },
      body: JSON.stringify({ account_id: account.id, amount: '100', currency: 'EUR' }),
    });
    expect(dep.status).toBe(202);
    const done: any = await (
      await fetch(`http://127.0.0.1:${port}${dep.headers.get('location')}?wait=20`, { headers: h })
    ).json();
    expect(done.status).toBe('completed');

    // Ctrl-C in a terminal signals the whole process group.
    process.kill(-run.proc.pid!, 'SIGINT');
    expect(await run.exited).toBe(0);
    const db = new pg.Client({ connectionString: serverUrl(database) });
    await db.connect();
    const held = await db.query(
      `SELECT count(*)::int AS n FROM partitions WHERE owner IS NOT NULL`,
    );
    await db.end();
    expect(held.rows[0].n).toBe(0);
    expect(await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => 'closed')).toBe('closed');
  });
});
