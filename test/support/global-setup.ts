// Once per test run: check the servers answer, and build one migrated template database that
// every test file clones (CREATE DATABASE … TEMPLATE) into a database of its own.
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { checkPostgres, checkRedis, PreflightError } from '../../src/cli/preflight';
import { ensureDatabase, runMigrations } from '../../src/db/migrate';
import { DATABASE_URL_BASE, adminUrl, serverUrl } from './urls';

declare module 'vitest' {
  export interface ProvidedContext {
    templateDatabase: string;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  try {
    await checkPostgres(DATABASE_URL_BASE);
    await checkRedis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  } catch (err) {
    if (err instanceof PreflightError) {
      // One clear line instead of a wall of failed tests.
      console.error(`\nledgerline tests: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const template = `ledgerline_test_tpl_${process.pid}`;
  await dropDatabase(template);
  await ensureDatabase(serverUrl(template));
  await runMigrations(serverUrl(template));
  project.provide('templateDatabase', template);
  return async () => {
    await dropDatabase(template);
  };
}

async function dropDatabase(name: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
}
