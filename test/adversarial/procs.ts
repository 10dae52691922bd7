import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';

export const FIXTURES = path.join(__dirname, 'fixtures');
export const PEER = path.join(FIXTURES, 'hostile_peer.py');
const DIST = path.resolve(__dirname, '../../dist/index.js');

/** Children run the built package (jest's TS transform does not exist there). */
export function requireDist(): void {
  if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`npx tsc -p tsconfig.build.json\` first (npm test does)`);
}

export interface Proc {
  child: ChildProcess;
  /** the next stdout line, parsed as JSON (rejects if the child exits first) */
  next<T = any>(): Promise<T>;
  /** resolves when the child exited and its pipes closed */
  closed: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr(): string;
}

export function run(command: string, args: string[], options: SpawnOptions = {}): Proc {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal })),
  );
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  return {
    child,
    closed,
    stderr: () => err,
    async next() {
      const r = await lines.next();
      // the head too: V8 puts a fatal error's reason before its stack
      const said = err.length > 3000 ? `${err.slice(0, 1000)}\n[...]\n${err.slice(-2000)}` : err;
      if (r.done) throw new Error(`${path.basename(args[0] ?? command)} exited without reporting; stderr: ${said}`);
      return JSON.parse(r.value);
    },
  };
}

export function node(fixture: string, args: string[], prefix: string[] = []): Proc {
  const file = path.join(FIXTURES, fixture);
  if (prefix.length) return run(prefix[0], [...prefix.slice(1), process.execPath, file, ...args]);
  return run(process.execPath, [file, ...args]);
}

export function python(args: string[]): Proc {
  return run('python3', [PEER, ...args]);
}

export function scratchDir(tag: string): string {
  return mkdtempSync(path.join(tmpdir(), `dma-heap-${tag}-`));
}
