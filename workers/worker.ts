// `worker:` process: claims a fair share of partitions and applies their legs until SIGINT/SIGTERM.
import { checkPostgres, checkRedis, checkSchema, runMain } from '../src/cli/preflight';
import { createServer } from 'node:http';
import { loadConfig, loadWorkerSettings } from '../src/config/env';
import { WorkerProcess } from '../src/partitions/worker-process';
import { log } from '../src/shared/log';

runMain(async () => {
  const config = loadConfig();
  const timing = loadWorkerSettings();
  for (const warning of await checkPostgres(config.databaseUrl))
    console.warn(`ledgerline: ${warning}`);
  await checkSchema(config.databaseUrl);
  for (const warning of await checkRedis(config.redisUrl)) console.warn(`ledgerline: ${warning}`);

  const worker = new WorkerProcess({
    config,
    leaseMs: timing.leaseMs,
    claimIntervalMs: timing.claimIntervalMs,
    tuning: { sweepAfterMs: timing.sweepAfterMs, sweepIntervalMs: timing.sweepIntervalMs },
    onFatal: (err) => {
      // A broken invariant: stop at once rather than write on top of it.
      log.fatal({ err, worker: worker.id }, 'invariant broken; stopping');
      process.exit(70);
    },
  });
  await worker.start();
  // Prometheus metrics of this worker, when METRICS_PORT is set (each worker on a host its own).
  const metricsServer =
    timing.metricsPort === undefined
      ? undefined
      : createServer((req, res) => {
          if (req.method !== 'GET' || req.url !== '/metrics') {
            res.writeHead(404).end();
            return;
          }
          worker.metrics.registry.metrics().then(
            (text) =>
              res.writeHead(200, { 'Content-Type': worker.metrics.registry.contentType }).end(text),
            (err: Error) => res.writeHead(500).end(err.message),
          );
        }).listen(timing.metricsPort, config.host);
  console.log(
    `ledgerline worker ${worker.id}: started, partitions ${config.partitions}, prefix ${config.queuePrefix}` +
      (timing.metricsPort === undefined
        ? ''
        : `, metrics at http://${config.host}:${timing.metricsPort}/metrics`),
  );

  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(
      `ledgerline worker ${worker.id}: ${signal}, finishing batches and releasing leases`,
    );
    metricsServer?.close();
    worker.stop().then(
      () => process.exit(0),
      (err: Error) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
});
