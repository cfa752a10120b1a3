// `npm start`: check PostgreSQL and Redis, create and migrate the database, then run the
// Procfile's processes (web and worker) in the foreground with foreman until Ctrl-C.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../config/env';
import { ensureDatabase, runMigrations } from '../db/migrate';
import { checkPostgres, checkRedis, runMain } from './preflight';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

runMain(async () => {
  const config = loadConfig();
  await checkPostgres(config.databaseUrl);
  for (const warning of await checkRedis(config.redisUrl)) console.warn(`ledgerline: ${warning}`);
  await ensureDatabase(config.databaseUrl);
  await runMigrations(config.databaseUrl);

  const env: NodeJS.ProcessEnv = { ...process.env, PORT: String(config.port) };
  if (!config.adminApiKey) {
    env.ADMIN_API_KEY = `llk_admin_${randomBytes(24).toString('base64url')}`;
    console.log(
      `ledgerline: ADMIN_API_KEY was not set; generated for this run:\n\n  ${env.ADMIN_API_KEY}\n`,
    );
  }
  console.log(
    `ledgerline: starting the Procfile's processes (API on http://127.0.0.1:${config.port})`,
  );

  // foreman (nf) runs every Procfile line and stops them all when one exits or on SIGINT. It
  // runs in a process group of its own, so that a Ctrl-C reaches it exactly once, from here:
  // foreman handles one SIGINT gracefully and dies on a second, before its children finish.
  const nf = createRequire(import.meta.url).resolve('foreman/nf.js');
  const child = spawn(
    process.execPath,
    [nf, 'start', '--procfile', 'Procfile', '--port', String(config.port)],
    { cwd: ROOT, env, stdio: 'inherit', detached: true },
  );
  let stopping = false;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      // npm forwards signals too, so one Ctrl-C may arrive twice; foreman hears it once.
      if (stopping) return;
      stopping = true;
      child.kill('SIGINT');
    });
  }
  const code = await new Promise<number>((resolve) => child.on('exit', (c) => resolve(c ?? 1)));
  process.exit(code);
});
