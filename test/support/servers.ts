// Servers a fault test owns and breaks: a Redis and a PostgreSQL cluster of its own on loopback
// ports of their own, in temporary directories, stopped and removed by the test.
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';

const run = promisify(execFile);

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export async function until(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (
      await Promise.resolve()
        .then(check)
        .catch(() => false)
    )
      return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A redis-server on a loopback port that keeps nothing on disk, with `extra` arguments. */
function spawnRedis(port: number, dir: string, extra: string[] = []): ChildProcess {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  args.push('--dir', dir, '--maxmemory-policy', 'noeviction', ...extra);
  return spawn('redis-server', args, { stdio: 'ignore' });
}

/** Waits until the server on `port` answers PING. */
async function redisAnswers(port: number): Promise<void> {
  await until(`redis on ${port}`, async () => {
    const c = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0 });
    c.on('error', () => {}); // refused until the server listens; connect() rejects too
    try {
      await c.connect();
      return (await c.ping()) === 'PONG';
    } finally {
      c.disconnect();
    }
  });
}

/** A Redis that keeps nothing on disk: killed and started again, it is empty. */
export class OwnRedis {
  private proc: ChildProcess | undefined;
  private readonly dir = mkdtempSync(path.join(tmpdir(), 'ledgerline-redis-'));
  private constructor(readonly port: number) {}

  static async start(): Promise<OwnRedis> {
    const r = new OwnRedis(await freePort());
    await r.startAgain();
    return r;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async startAgain(): Promise<void> {
    this.proc = spawnRedis(this.port, this.dir);
    await redisAnswers(this.port);
  }

  /** SIGKILL: whatever it held is gone. */
  async kill(): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGKILL');
    await exited;
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function postgresBin(): string {
  const base = '/usr/lib/postgresql';
  const versions = existsSync(base) ? readdirSync(base).sort() : [];
  const dir = versions.length > 0 ? path.join(base, versions.at(-1)!, 'bin') : '';
  if (!dir || !existsSync(path.join(dir, 'initdb'))) {
    throw new Error(
      'PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql',
    );
  }
  return dir;
}

/**
 * A PostgreSQL cluster of the test's own: initdb into a temporary directory (as the postgres
 * user when the tests run as root, which initdb refuses), trust auth for the `root` role.
 */
export class OwnPostgres {
  private readonly bin = postgresBin();
  private constructor(
    readonly port: number,
    private readonly dir: string,
    private readonly settings: Record<string, string>,
  ) {}

  static async start(settings: Record<string, string> = {}): Promise<OwnPostgres> {
    const dir = mkdtempSync(path.join(tmpdir(), 'ledgerline-pg-'));
    const pgc = new OwnPostgres(await freePort(), dir, settings);
    if (process.getuid?.() === 0) chownSync(dir, ...pgc.postgresIds());
    await pgc.as('initdb', [
      '-D',
      path.join(dir, 'data'),
      '-U',
      'root',
      '--auth=trust',
      '-E',
      'UTF8',
      '--no-sync',
    ]);
    await pgc.startAgain();
    return pgc;
  }

  url(database = 'postgres'): string {
    return `postgres://root@127.0.0.1:${this.port}/${database}`;
  }

  async startAgain(): Promise<void> {
    const options = [
      `-p ${this.port}`,
      `-c listen_addresses=127.0.0.1`,
      `-c unix_socket_directories=${this.dir}`,
      `-c fsync=on`,
      ...Object.entries(this.settings).map(([k, v]) => `-c ${k}=${v}`),
    ].join(' ');
    await this.as('pg_ctl', [
      '-D',
      path.join(this.dir, 'data'),
      '-l',
      path.join(this.dir, 'log'),
      '-o',
      options,
      '-w',
      'start',
    ]);
  }

  /** `immediate` is a crash: no checkpoint, backends killed; the next start replays the WAL. */
  async stop(mode: 'fast' | 'immediate'): Promise<void> {
    await this.as('pg_ctl', ['-D', path.join(this.dir, 'data'), '-m', mode, '-w', 'stop']);
  }

  /** The machine losing power, as near as a test can: every process of the cluster SIGKILLed. */
  async crash(): Promise<void> {
    const pid = Number(
      readFileSync(path.join(this.dir, 'data', 'postmaster.pid'), 'utf8').split('\n')[0],
    );
    const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)])
      .toString()
      .trim()
      .split(/\s+/)
      .filter(Boolean)
      .map(Number);
    process.kill(pid, 'SIGKILL');
    for (const child of children) process.kill(child, 'SIGKILL');
    // The next start refuses while any of them still exists (a zombie included).
    await until('the crashed cluster to be gone', () =>
      [pid, ...children].every((p) => {
        try {
          process.kill(p, 0);
          return false;
        } catch {
          return true;
        }
      }),
    );
  }

  /** The pid of one of the cluster's own processes, e.g. `walwriter`. */
  async backendPid(backendType: string): Promise<number> {
    const rows = await this.query<{ pid: number }>(
      `SELECT pid FROM pg_stat_activity WHERE backend_type = '${backendType}'`,
    );
    return rows[0]!.pid;
  }

  async remove(): Promise<void> {
    await this.stop('immediate').catch(() => {});
    rmSync(this.dir, { recursive: true, force: true });
  }

  async query<T extends pg.QueryResultRow>(sql: string, database = 'postgres'): Promise<T[]> {
    const c = new pg.Client({ connectionString: this.url(database) });
    await c.connect();
    try {
      return (await c.query<T>(sql)).rows;
    } finally {
      await c.end();
    }
  }

  private postgresIds(): [number, number] {
    const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
    return [id('-u'), id('-g')];
  }

  private async as(tool: string, args: string[]): Promise<void> {
    const file = path.join(this.bin, tool);
    if (process.getuid?.() === 0) await run('runuser', ['-u', 'postgres', '--', file, ...args]);
    else await run(file, args);
  }
}

/** A three-node Redis Cluster (no replicas) on ports of its own, keeping nothing on disk. */
export class OwnRedisCluster {
  private readonly procs: ChildProcess[] = [];
  private readonly dir = mkdtempSync(path.join(tmpdir(), 'ledgerline-cluster-'));
  private constructor(readonly ports: number[]) {}

  static async start(): Promise<OwnRedisCluster> {
    const c = new OwnRedisCluster([await freePort(), await freePort(), await freePort()]);
    for (const port of c.ports) {
      c.procs.push(
        spawnRedis(port, c.dir, [
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          `nodes-${port}.conf`,
        ]),
      );
    }
    for (const port of c.ports) await redisAnswers(port);
    await run('redis-cli', [
      '--cluster',
      'create',
      ...c.ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    for (const port of c.ports) {
      await until(`cluster state ok on ${port}`, async () => {
        const { stdout } = await run('redis-cli', ['-p', String(port), 'cluster', 'info']);
        return stdout.includes('cluster_state:ok');
      });
    }
    return c;
  }

  get url(): string {
    return `redis-cluster://127.0.0.1:${this.ports[0]}`;
  }

  async stop(): Promise<void> {
    for (const p of this.procs) {
      if (p.exitCode === null) {
        const exited = new Promise((r) => p.once('exit', r));
        p.kill('SIGKILL');
        await exited;
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
