// Proves the start-up checks: warnings about the PostgreSQL settings a payments deployment must
// not run with, exactly when the server has them, and a refusal to run on an older schema.
import pg from 'pg';
import { expect, it } from 'vitest';
import { PreflightError, checkPostgres, checkSchema } from '../../src/cli/preflight';
import { processEnv, spawnScript } from '../support/processes';
import { createTestEnv } from '../support/test-env';
import { DATABASE_URL_BASE, adminUrl } from '../support/urls';

it('warns about autovacuum off and synchronous_commit off exactly when the server has them', async () => {
  const client = new pg.Client({ connectionString: adminUrl() });
  await client.connect();
  const res = await client.query<{ name: string; setting: string }>(
    `SELECT name, setting FROM pg_settings WHERE name IN ('autovacuum', 'synchronous_commit')`,
  );
  await client.end();
  const setting = new Map(res.rows.map((r) => [r.name, r.setting]));

  const warnings = await checkPostgres(DATABASE_URL_BASE);
  expect(warnings.some((w) => w.includes('autovacuum off'))).toBe(
    setting.get('autovacuum') !== 'on',
  );
  expect(warnings.some((w) => w.includes('synchronous_commit'))).toBe(
    setting.get('synchronous_commit') !== 'on',
  );
});

it('a worker refuses to start on a schema older than its code, with one line saying npm run migrate', async () => {
  const env = await createTestEnv();
  try {
    await expect(checkSchema(env.config.databaseUrl)).resolves.toBeUndefined();
    // As if the newest migration had not been applied yet.
    await env.pool.query(
      `DELETE FROM drizzle.__drizzle_migrations
        WHERE created_at = (SELECT max(created_at) FROM drizzle.__drizzle_migrations)`,
    );
    await expect(checkSchema(env.config.databaseUrl)).rejects.toThrow(PreflightError);

    const worker = spawnScript('workers/worker.ts', processEnv(env.config));
    expect(await worker.exited).toBe(1);
    const lines = worker
      .output()
      .split('\n')
      .filter((l) => l.includes('schema'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /older than this code \(1 migration\(s\) not applied\); run: npm run migrate/,
    );
  } finally {
    await env.cleanup();
  }
});
