// Parses the process environment once, with the defaults the design names.
import { z } from 'zod';
import {
  AMOUNT_MINOR_MAX_DEFAULT,
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

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = EnvSchema.safeParse(
    Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== '')),
  );
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid environment: ${lines.join('; ')}`);
  }
  const e = parsed.data;
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
