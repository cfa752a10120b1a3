// Proves `npm run bench` measures what it says, on small runs of the real CLI: the drain applies
// every transfer it recorded and says where the CPU went; the intake is measured beside its
// yardstick; at the backlog cap every answer is 503 with Retry-After and nothing is recorded.
// Each run makes its own database and queue prefix and drops them. Speed is not asserted here.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { deleteKeys } from '../support/test-env';
import { adminUrl, serverUrl } from '../support/urls';

const ROOT = path.resolve(import.meta.dirname, '../..');
const suffix = randomBytes(4).toString('hex');
const database = `llbench_${suffix}`;
const prefix = `llbench_${suffix}`;

/** The bench as `npm run bench -- …` runs it, on this test's database and queue prefix. */
async function bench(args: string[]): Promise<{ code: number | null; out: string }> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'test/load/engine-bench.ts', ...args], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: serverUrl(database), QUEUE_PREFIX: prefix },
    stdio: 'pipe',
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => proc.on('exit', resolve));
  return { code, out };
}

afterAll(async () => {
  // The bench drops its own; this is for a run that failed half-way.
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  await admin.query(
    `DROP DATABASE IF EXISTS ${pg.escapeIdentifier(`${database}_bench`)} WITH (FORCE)`,
  );
  await admin.end();
  const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  await deleteKeys(redis, `${prefix}_bench:*`);
  redis.disconnect();
});

// One at a time: they share the bench's database name.
describe.sequential('npm run bench', () => {
  it('drain: one worker applies every recorded transfer and says where the CPU went', async () => {
    const { code, out } = await bench(['drain', '--transfers', '3000']);
    expect(code, out).toBe(0);
    const line =
      /one worker drained 3000 transfers .* (\d+) transfers\/s; CPU ms a transfer, start-up included: worker ([\d.]+), postgres ([\d.]+), redis ([\d.]+), total ([\d.]+)/.exec(
        out,
      );
    expect(line, out).not.toBeNull();
    const [, rate, worker, postgres, redis, total] = line!.map(Number);
    expect(rate).toBeGreaterThan(0);
    expect(worker).toBeGreaterThan(0);
    expect(postgres).toBeGreaterThan(0);
    expect(Math.abs(worker! + postgres! + redis! - total!)).toBeLessThan(0.01);
  });

  it('intake: accepted a second, beside a bare server measured first', async () => {
    const { code, out } = await bench(['intake', '--seconds', '1', '--connections', '20']);
    expect(code, out).toBe(0);
    const yardstick = /yardstick: a bare Hono server answered (\d+) of these POSTs a second/.exec(
      out,
    );
    const intake =
      /intake alone: (\d+) accepted\/s \((\d+) in 1 s, (\d+) refused\).* (\d+) % of the yardstick/.exec(
        out,
      );
    expect(yardstick, out).not.toBeNull();
    expect(intake, out).not.toBeNull();
    expect(Number(yardstick![1])).toBeGreaterThan(0);
    expect(Number(intake![2])).toBeGreaterThan(0);
  });

  it('refusals: at the backlog cap, every answer is 503 with Retry-After and nothing is recorded', async () => {
    const { code, out } = await bench(['refusals', '--seconds', '1', '--connections', '20']);
    expect(code, out).toBe(0);
    const line = /answers \{"503 with Retry-After":(\d+)\}; recorded meanwhile: 0/.exec(out);
    expect(line, out).not.toBeNull();
    expect(Number(line![1])).toBeGreaterThan(0);
  });
});
