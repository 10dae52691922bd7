import { spawn, type ChildProcess, type SpawnOptions, type StdioOptions } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { loadAddon } from '../../lib/native/load';

/** Children and workers run the built package: jest's TS transform does not exist there. */
export const DIST = path.resolve(__dirname, '../../dist');
export const FIXTURES = path.join(__dirname, 'fixtures');

/** Fails the suite clearly when dist/ is missing or older than the code the children run. */
export function requireDist(): void {
  const stale: string[] = [];
  for (const name of ['index', 'dmabuf', 'share/index', 'share/channel', 'share/spawn', 'share/buffers']) {
    const js = path.join(DIST, `${name}.js`);
    const ts = path.resolve(__dirname, `../../lib/${name}.ts`);
    if (!existsSync(js)) stale.push(`${js} is missing`);
    else if (existsSync(ts) && statSync(ts).mtimeMs > statSync(js).mtimeMs) stale.push(`${js} is older than ${ts}`);
  }
  if (stale.length) {
    throw new Error(`${stale.join('; ')}: run \`npx tsc -p tsconfig.build.json\` first (npm test does); child processes and workers load dist/`);
  }
}

/** Buffers only cross processes with the addon (fds); without it buffers are JS memory. */
export const canShare = loadAddon() !== null;

/** What the parent writes into buffer i; pattern.js (the children's copy) must agree. */
export const parentByte = (i: number, j: number) => (j * 7 + i + 1) & 0xff;
export const childByte = (i: number, j: number) => (j * 13 + i + 101) & 0xff;

export function fill(bytes: Uint8Array, i: number, byte: (i: number, j: number) => number): void {
  for (let j = 0; j < bytes.length; j++) bytes[j] = byte(i, j);
}

export function holds(bytes: Uint8Array, i: number, byte: (i: number, j: number) => number): boolean {
  for (let j = 0; j < bytes.length; j++) if (bytes[j] !== byte(i, j)) return false;
  return true;
}

let sockets = 0;
export function socketPath(tag: string): string {
  return path.join(tmpdir(), `dma-heap-share-${process.pid}-${tag}-${sockets++}.sock`);
}

/** Run a fixture with node; its stdout lines are read as they come, stderr passes through. */
export function runFixture(
  spawnIt: (command: string, args: string[], options: SpawnOptions) => ChildProcess,
  fixture: string,
  args: string[],
  stdio: StdioOptions = ['ignore', 'pipe', 'inherit'],
): { child: ChildProcess; lines: AsyncIterableIterator<string>; closed: Promise<Exit> } {
  const child = spawnIt(process.execPath, [path.join(FIXTURES, fixture), ...args], { stdio });
  // 'close': the child exited and its stdio pipes are closed (no fd of ours left open)
  const closed = new Promise<Exit>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return { child, lines, closed };
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** The next line a child prints, parsed as JSON (fails clearly if it exits first). */
export async function nextJson<T = any>(lines: AsyncIterableIterator<string>): Promise<T> {
  const r = await lines.next();
  if (r.done) throw new Error('the child exited without reporting');
  return JSON.parse(r.value);
}

/** Spawning opens fds Node keeps for good (libuv's SIGCHLD pipes): do it once before counting fds. */
export async function warmUpSpawn(): Promise<void> {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await once(child, 'close');
}
