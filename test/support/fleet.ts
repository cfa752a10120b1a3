// The Procfile's processes as children a fault test can kill, freeze and start again, with clocks
// short enough for a test's patience, and a load of money movements over HTTP that records
// every answer.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { WebProcess } from '../../src/app/web-process';
import type { Config } from '../../src/config/env';
import { processEnv, spawnScript, type Child } from './processes';
import { freePort, until } from './servers';
import { deposit, type TestEnv } from './test-env';
import { createTestWeb } from './web';

/** Worker clocks for fault tests: a dead owner's partitions move in about 2 s. */
export const FAULT_TIMING = {
  LEASE_MS: '2000',
  CLAIM_INTERVAL_MS: '200',
  SWEEP_AFTER_MS: '1000',
  SWEEP_INTERVAL_MS: '250',
};

export function startWorkerChild(config: Config, env: NodeJS.ProcessEnv = {}): Child {
  return spawnScript('workers/worker.ts', {
    ...processEnv(config),
    ...FAULT_TIMING,
    LOG_LEVEL: 'warn',
    ...env,
  });
}

export async function startWebChild(
  config: Config,
  port?: number,
): Promise<{ child: Child; url: string; port: number }> {
  const p = port ?? (await freePort());
  const child = spawnScript('src/cli/web.ts', {
    ...processEnv(config),
    PORT: String(p),
    LOG_LEVEL: 'warn',
  });
  const url = `http://127.0.0.1:${p}`;
  await until(`web on ${p}`, async () => (await fetch(`${url}/healthz`)).ok, 60_000).catch(
    (err: Error) => {
      throw new Error(`${err.message}\n${child.output()}`);
    },
  );
  return { child, url, port: p };
}

/** `count` customer accounts, each funded by a completed deposit of `amountMinor`. */
export async function fundedAccounts(
  env: TestEnv,
  count: number,
  amountMinor: bigint,
): Promise<string[]> {
  const accounts: string[] = [];
  for (let i = 0; i < count; i++) accounts.push((await env.account()).id);
  const deposits = await env.submit(accounts.map((id) => deposit(id, amountMinor)));
  await env.waitForFinal(deposits.map((t) => t.id));
  return accounts;
}

/**
 * The service as a fault test meets it: a worker child owning every partition, the web in this
 * process on a port of its own, and funded accounts to move money between.
 */
export type Stage = {
  web: WebProcess;
  worker: Child;
  url: string;
  accounts: string[];
  close: () => Promise<void>;
};

export async function stage(env: TestEnv, accountCount = 12): Promise<Stage> {
  const worker = startWorkerChild(env.config);
  const web = await createTestWeb(env);
  await allOwned(env.pool, env.config.partitions);
  const accounts = await fundedAccounts(env, accountCount, 100_000n);
  const port = await web.listen(0);
  return {
    web,
    worker,
    url: `http://127.0.0.1:${port}`,
    accounts,
    async close() {
      await web.stop();
      await kill(worker);
    },
  };
}

export async function kill(child: Child, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.proc.exitCode !== null || child.proc.signalCode !== null) return;
  child.proc.kill(signal);
  await child.exited;
}

/** Every partition has a live owner. */
export async function allOwned(pool: pg.Pool, partitions: number): Promise<void> {
  await until('every partition owned', async () => {
    const r = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM partitions WHERE owner IS NOT NULL AND lease_expires_at > now()`,
    );
    return Number(r.rows[0]!.n) === partitions;
  });
}

export type Sent = {
  idem: string;
  body: { from_account_id: string; to_account_id: string; amount: string; currency: string };
  /** Each answer in order: an HTTP status, or `error` when no answer came (connection refused). */
  answers: (number | 'error')[];
  transferId?: string;
};

/**
 * Clients moving money between `accounts` until `stop()`; each request has its own
 * Idempotency-Key. With `retry`, a request without a final answer (no answer, or 5xx) is sent
 * again with the same key and body until one comes, as the contract tells clients to.
 */
export function load(opts: {
  url: () => string;
  key: string;
  accounts: readonly string[];
  clients: number;
  retry?: boolean;
}): { sent: Sent[]; stop: () => Promise<void> } {
  const sent: Sent[] = [];
  let stopping = false;
  const client = async () => {
    while (!stopping) {
      const from = opts.accounts[Math.floor(Math.random() * opts.accounts.length)]!;
      let to = from;
      while (to === from) to = opts.accounts[Math.floor(Math.random() * opts.accounts.length)]!;
      const s: Sent = {
        idem: randomUUID(),
        body: {
          from_account_id: from,
          to_account_id: to,
          amount: String(1 + Math.floor(Math.random() * 100)),
          currency: 'EUR',
        },
        answers: [],
      };
      sent.push(s);
      for (;;) {
        let status: number | 'error';
        try {
          const res = await fetch(`${opts.url()}/v1/transfers`, {
            method: 'POST',
            headers: {
              authorization: `Bearer ${opts.key}`,
              'content-type': 'application/json',
              'idempotency-key': s.idem,
            },
            body: JSON.stringify(s.body),
            signal: AbortSignal.timeout(10_000),
          });
          status = res.status;
          const json = (await res.json()) as { id?: string };
          if (res.status === 200 || res.status === 202) s.transferId = json.id;
        } catch {
          status = 'error';
        }
        s.answers.push(status);
        const final = status !== 'error' && status < 500;
        if (final || !opts.retry || stopping) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      if (s.answers.at(-1) === 'error' || (s.answers.at(-1) as number) >= 500) {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  };
  const clients = Array.from({ length: opts.clients }, client);
  return {
    sent,
    async stop() {
      stopping = true;
      await Promise.all(clients);
    },
  };
}
