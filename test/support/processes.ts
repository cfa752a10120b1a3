// Runs the Procfile's processes as real child processes for end-to-end tests.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { Config } from '../../src/config/env';

const ROOT = path.resolve(import.meta.dirname, '../..');

export function processEnv(config: Config): NodeJS.ProcessEnv {
  return {
    ...process.env,
    DATABASE_URL: config.databaseUrl,
    REDIS_URL: config.redisUrl,
    QUEUE_PREFIX: config.queuePrefix,
    PARTITIONS: String(config.partitions),
    ADMIN_API_KEY: config.adminApiKey,
  };
}

export type Child = { proc: ChildProcess; output: () => string; exited: Promise<number | null> };

export function spawnScript(script: string, env: NodeJS.ProcessEnv, args: string[] = []): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: ROOT,
    env,
    stdio: 'pipe',
  });
  let output = '';
  proc.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { proc, output: () => output, exited };
}
