// `web:` process: the intake API on PORT until SIGINT/SIGTERM.
import { loadConfig } from '../config/env';
import { createWebProcess } from '../app/web-process';
import { checkPostgres, checkRedis, checkSchema, runMain } from './preflight';

runMain(async () => {
  const config = loadConfig();
  for (const warning of await checkPostgres(config.databaseUrl))
    console.warn(`ledgerline: ${warning}`);
  await checkSchema(config.databaseUrl);
  for (const warning of await checkRedis(config.redisUrl)) console.warn(`ledgerline: ${warning}`);
  if (!config.adminApiKey) {
    console.warn(
      'ledgerline: ADMIN_API_KEY is not set; only keys made with POST /v1/api-keys work',
    );
  }
  const web = await createWebProcess(config);
  const port = await web.listen(config.port);
  console.log(`ledgerline web: listening on http://${config.host}:${port} (docs at /docs)`);

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`ledgerline web: ${signal}, closing`);
    web.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
});
