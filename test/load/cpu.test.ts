// The lab's CPU window: what a process burned between the two samples, per move; a process born
// inside the window counts from its start; no window, no figures.
import { spawn } from 'node:child_process';
import { expect, it } from 'vitest';
import { CpuWindow } from './cpu';

/** Burns this much of this process's own CPU time (not wall time: a busy machine has both). */
function burn(ms: number): void {
  const start = process.cpuUsage();
  for (;;) {
    const used = process.cpuUsage(start);
    if (used.user + used.system >= ms * 1000) return;
  }
}

/** A child that burns 300 ms of its own CPU time, says so, and waits. */
const CHILD = `const s = process.cpuUsage();
for (;;) { const u = process.cpuUsage(s); if (u.user + u.system >= 300000) break; }
console.log('burnt');
setTimeout(() => {}, 60000);`;

const afterWarmup = () => new Promise((resolve) => setTimeout(resolve, 50));

it('divides what each process burned in the window by the moves made in it', async () => {
  let moves = 1_000;
  const window = new CpuWindow(
    new Map([['lab', () => Promise.resolve([process.pid])]]),
    0,
    () => moves,
  );
  await afterWarmup();
  burn(300);
  moves += 100;
  const cpu = await window.end();
  expect(cpu!.moves).toBe(100);
  // 300 ms of this process's CPU over 100 moves: about 3 ms a move (clock ticks are 10 ms).
  expect(cpu!.ms_per_move.lab).toBeGreaterThan(2.5);
  expect(cpu!.ms_per_move.lab).toBeLessThan(10);
  expect(cpu!.total_ms_per_move).toBe(cpu!.ms_per_move.lab);
  expect(cpu!.window_s).toBeGreaterThanOrEqual(0.3);
});

it('counts a process born inside the window from its start', async () => {
  const pids: number[] = [];
  let moves = 0;
  const window = new CpuWindow(new Map([['server', () => Promise.resolve(pids)]]), 0, () => moves);
  await afterWarmup();
  const child = spawn(process.execPath, ['-e', CHILD]);
  pids.push(child.pid!);
  await new Promise((resolve) => child.stdout.once('data', resolve));
  moves = 10;
  const cpu = await window.end();
  child.kill();
  // At least the 300 ms its loop burned, over 10 moves.
  expect(cpu!.ms_per_move.server).toBeGreaterThanOrEqual(25);
});

it('gives nothing when the load ends before the warm-up does', async () => {
  const window = new CpuWindow(
    new Map([['lab', () => Promise.resolve([process.pid])]]),
    60_000,
    () => 5,
  );
  expect(await window.end()).toBeNull();
});
