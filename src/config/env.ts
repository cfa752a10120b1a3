// Parses the process environment once, with the defaults the design names.
import { z } from 'zod';
import {
  AMOUNT_MINOR_MAX_DEFAULT,
  CLAIM_INTERVAL_MS,
  LEASE_MS,
  SWEEP_AFTER_MS,
  SWEEP_INTERVAL_MS,
  PARTITIONS_MAX,
  RATE_LIMIT_BURST_DEFAULT,
  RATE_LIMIT_PER_SECOND_DEFAULT,
} from './limits';

const EnvSchema = z.object({
  DATABASE_URL: z.string().url().default('postgres://root@127.0.0.1:5432/ledgerline'),
  REDIS_URL: z.string().url().default('redis://127.0.0.1:6379'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  ADMIN_API_KEY: z.string().min(16).optional(),
  PARTITIONS: z.coerce.number().int().min(1).max(PARTITIONS_MAX).default(16),
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - only')
    .default('ledgerline'),
  MAX_AMOUNT: z
    .string()
    .regex(/^[1-9][0-9]{0,17}$/)
    .transform((s) => BigInt(s))
    .default(AMOUNT_MINOR_MAX_DEFAULT),
  RATE_LIMIT_PER_SECOND: z.coerce.number().int().min(1).default(RATE_LIMIT_PER_SECOND_DEFAULT),
  RATE_LIMIT_BURST: z.coerce.number().int().min(1).default(RATE_LIMIT_BURST_DEFAULT),
});

export type Config = {
  databaseUrl: string;
  redisUrl: string;
  port: number;
  host: string;
  adminApiKey: string | undefined;
  partitions: number;
  queuePrefix: string;
  amountMinorMax: bigint;
  rateLimit: { perSecond: number; burst: number };
};

/** Parses the variables a schema names; unset and empty ones take its defaults. */
function parseEnv<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv): z.infer<S> {
  const parsed = schema.safeParse(
    Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== '')),
  );
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid environment: ${lines.join('; ')}`);
  }
  return parsed.data;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const e = parseEnv(EnvSchema, env);
  return {
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    port: e.PORT,
    host: e.HOST,
    adminApiKey: e.ADMIN_API_KEY,
    partitions: e.PARTITIONS,
    queuePrefix: e.QUEUE_PREFIX,
    amountMinorMax: e.MAX_AMOUNT,
    rateLimit: { perSecond: e.RATE_LIMIT_PER_SECOND, burst: e.RATE_LIMIT_BURST },
  };
}

const WorkerSettingsSchema = z.object({
  METRICS_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  LEASE_MS: z.coerce.number().int().min(500).max(600_000).default(LEASE_MS),
  CLAIM_INTERVAL_MS: z.coerce.number().int().min(50).max(60_000).default(CLAIM_INTERVAL_MS),
  SWEEP_AFTER_MS: z.coerce.number().int().min(100).max(3_600_000).default(SWEEP_AFTER_MS),
  SWEEP_INTERVAL_MS: z.coerce.number().int().min(50).max(600_000).default(SWEEP_INTERVAL_MS),
});

export type WorkerSettings = {
  /** Where /metrics is served; unset: not served. */
  metricsPort: number | undefined;
  leaseMs: number;
  claimIntervalMs: number;
  sweepAfterMs: number;
  sweepIntervalMs: number;
};

/**
 * A worker's own settings: its metrics port, and its clocks (how long a lease lasts, how often it
 * is renewed, when the sweep re-drives a transfer Redis lost). The clocks' defaults suit
 * production; tests and operators may shorten them.
 */
export function loadWorkerSettings(env: NodeJS.ProcessEnv = process.env): WorkerSettings {
  const e = parseEnv(WorkerSettingsSchema, env);
  if (e.CLAIM_INTERVAL_MS * 2 > e.LEASE_MS) {
    throw new Error('invalid environment: CLAIM_INTERVAL_MS must be at most half of LEASE_MS');
  }
  return {
    metricsPort: e.METRICS_PORT,
    leaseMs: e.LEASE_MS,
    claimIntervalMs: e.CLAIM_INTERVAL_MS,
    sweepAfterMs: e.SWEEP_AFTER_MS,
    sweepIntervalMs: e.SWEEP_INTERVAL_MS,
  };
}
