// `npm run reconcile`: the ledger's invariants checked over the whole database, from one snapshot;
// a readable report (or --json), exit code 0 when every check holds and 1 on any mismatch. Made
// for an end-of-day cron job: it only reads.
import { loadConfig } from '../config/env';
import { createPool } from '../db/db';
import { reconcile, type Mismatch, type Reconciliation } from '../ledger/reconcile';
import { checkPostgres, checkSchema, runMain } from './preflight';

function describe(m: Mismatch): string {
  const { kind, ...fields } = m;
  return `${kind}: ${Object.entries(fields)
    .map(([k, v]) => `${k}=${v === null ? '-' : String(v)}`)
    .join(' ')}`;
}

function report(r: Reconciliation, database: string, at: Date): string {
  const lines = [
    `ledgerline reconciliation of ${database} at ${at.toISOString()}`,
    `  balances checked        ${r.accounts_checked} (customer accounts and system sub-balances)`,
    `  sum of all balances     ${r.total} (must be 0)`,
    `  money in flight         ${r.in_flight.amount} in ${r.in_flight.count} transfers`,
    `  mismatches              ${r.mismatches.length}`,
    ...r.mismatches.map((m) => `    ${describe(m)}`),
    r.ok ? 'OK: every invariant holds' : 'MISMATCH: the ledger does not reconcile',
  ];
  return lines.join('\n');
}

runMain(async () => {
  const json = process.argv.includes('--json');
  const config = loadConfig();
  await checkPostgres(config.databaseUrl);
  await checkSchema(config.databaseUrl);
  const pool = createPool(config.databaseUrl, 2, `ledgerline reconcile ${process.pid}`);
  try {
    const result = await reconcile(pool);
    const database = new URL(config.databaseUrl).pathname.slice(1);
    console.log(json ? JSON.stringify(result, null, 2) : report(result, database, new Date()));
    process.exitCode = result.ok ? 0 : 1;
  } finally {
    await pool.end();
  }
});
