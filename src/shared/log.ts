// Structured logs (pino, JSON lines) for what happens at run time; LOG_LEVEL sets the threshold.
import { pino } from 'pino';

export const log = pino({
  level: process.env.LOG_LEVEL ?? 'info',
  base: { service: 'ledgerline', pid: process.pid },
});
