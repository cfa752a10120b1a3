// Proves the start-up checks warn about the PostgreSQL settings a payments deployment must not
// run with, exactly when the server has them.
import pg from 'pg';
import { expect, it } from 'vitest';
import { checkPostgres } from '../../src/cli/preflight';
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
