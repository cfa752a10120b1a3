// Long-poll support: one LISTEN connection per web process, woken by the workers' NOTIFY when
// transfers become final, so a waiting request never polls the database in a loop.
import pg from 'pg';
import { LONG_POLL_WAITERS_MAX } from '../config/limits';
import {
  ACCOUNT_ENTRIES_CHANNEL,
  noticeId,
  readFinalNotice,
  TRANSFER_FINAL_CHANNEL,
  type FinalState,
} from '../ledger/apply';

/** Resolves with the transfer's final state when the notification carried it, else undefined. */
type Wake = (final?: FinalState) => void;

const RECONNECT_DELAY_MS = 1_000;

export class TransferWaiter {
  private client: pg.Client | undefined;
  private readonly waiters = new Map<string, Set<Wake>>();
  private readonly accountWatchers = new Map<string, Set<() => void>>();
  private count = 0;
  private stopped = false;

  constructor(private readonly databaseUrl: string) {}

  async start(): Promise<void> {
    const client = new pg.Client({ connectionString: this.databaseUrl });
    client.on('notification', (msg) => {
      if (!msg.payload) return;
      if (msg.channel === TRANSFER_FINAL_CHANNEL) {
        // Every web process hears every finished transfer: only those waited for here are read.
        for (const item of msg.payload.split(',')) {
          const id = noticeId(item);
          if (this.waiters.has(id)) this.wake(id, readFinalNotice(item).final);
        }
      } else if (msg.channel === ACCOUNT_ENTRIES_CHANNEL) {
        for (const id of msg.payload.split(',')) this.accountWatchers.get(id)?.forEach((f) => f());
      }
    });
    client.on('error', () => this.lost(client));
    client.on('end', () => this.lost(client));
    await client.connect();
    await client.query(`LISTEN ${TRANSFER_FINAL_CHANNEL}; LISTEN ${ACCOUNT_ENTRIES_CHANNEL}`);
    this.client = client;
  }

  private lost(client: pg.Client): void {
    if (this.client !== client || this.stopped) return;
    this.client = undefined;
    // Notifications sent while we were away are lost: wake everyone so they read the row again.
    for (const id of [...this.waiters.keys()]) this.wake(id);
    for (const set of this.accountWatchers.values()) set.forEach((f) => f());
    void this.reconnect();
  }

  private async reconnect(): Promise<void> {
    while (!this.stopped && !this.client) {
      await new Promise((r) => setTimeout(r, RECONNECT_DELAY_MS));
      await this.start().catch(() => {});
    }
  }

  /** How many requests are waiting now (bounded by LONG_POLL_WAITERS_MAX). */
  get waiting(): number {
    return this.count;
  }

  /**
   * Resolves when the transfer is announced final or the time is up, whichever comes first; with
   * the final state when the announcement carried it (then the row need not be read).
   * Register before reading the row, so a notification between the read and the wait is not lost.
   */
  subscribe(
    id: string,
    timeoutMs: number,
  ): { done: Promise<FinalState | undefined>; cancel: () => void } {
    if (this.count >= LONG_POLL_WAITERS_MAX || !this.client) {
      return { done: Promise.resolve(undefined), cancel: () => {} };
    }
    let wake!: Wake;
    const done = new Promise<FinalState | undefined>((resolve) => {
      wake = resolve;
    });
    const set = this.waiters.get(id) ?? new Set();
    set.add(wake);
    this.waiters.set(id, set);
    this.count += 1;
    const timer = setTimeout(() => cancel(), timeoutMs);
    const cancel = () => {
      clearTimeout(timer);
      if (set.delete(wake)) this.count -= 1;
      if (set.size === 0) this.waiters.delete(id);
      wake();
    };
    void done.then(() => clearTimeout(timer));
    return { done, cancel };
  }

  /**
   * Calls `onEntries` whenever the account may have new ledger entries (and when the LISTEN
   * connection was lost, so the caller reads again). Returns the unsubscribe.
   */
  watchAccount(accountId: string, onEntries: () => void): () => void {
    const set = this.accountWatchers.get(accountId) ?? new Set();
    set.add(onEntries);
    this.accountWatchers.set(accountId, set);
    return () => {
      set.delete(onEntries);
      if (set.size === 0) this.accountWatchers.delete(accountId);
    };
  }

  private wake(id: string, final?: FinalState): void {
    const set = this.waiters.get(id);
    if (!set) return;
    this.waiters.delete(id);
    this.count -= set.size;
    const woken = [...set];
    // Emptied so that a later cancel() of one of these finds nothing to count down again.
    set.clear();
    for (const w of woken) w(final);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const id of [...this.waiters.keys()]) this.wake(id);
    await this.client?.end().catch(() => {});
  }
}
