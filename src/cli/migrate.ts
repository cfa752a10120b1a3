// `npm run migrate`: create the database if it is missing, then apply the migrations in drizzle/.
import { loadConfig } from '../config/env';
import { ensureDatabase, runMigrations } from '../db/migrate';
import { checkPostgres, runMain } from './preflight';

runMain(async () => {
  const config = loadConfig();
  await checkPostgres(config.databaseUrl);
  await ensureDatabase(config.databaseUrl);
  await runMigrations(config.databaseUrl);
  console.log(`ledgerline: migrations applied to ${new URL(config.databaseUrl).pathname.slice(1)}`);
});
