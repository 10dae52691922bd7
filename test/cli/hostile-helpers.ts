/**
 * What the hostile CLI suites share: the CLI spawned as users run it (dist/, which `npm test`
 * builds first), a hostile process that holds named buffers and many fds, and what output a
 * terminal may safely show.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';


export const root = path.resolve(__dirname, '..', '..');
// eslint-disable-next-line @typescript-eslint/no-var-requires
const pkg = require(path.join(root, 'package.json')) as { bin: Record<string, string> };
export const CLI = path.join(root, pkg.bin['dma-heap']);
/** what a shell reports for a writer SIGPIPE killed; the CLI exits with it on EPIPE (lib/cli.ts) */
export const BROKEN_PIPE = 141;

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/**
 * Run the CLI. `close`: when to close our end of its stdout, 'start' (before it can have
 * written: node takes far longer to start than this takes to close) or 'first-chunk'.
 */
export function cli(args: string[], options: { close?: 'start' | 'first-chunk'; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: options.env ?? process.env });
    const out: Buffer[] = [];
    let stderr = '';
    if (options.close === 'start') child.stdout.destroy();
    child.stdout.on('data', (d: Buffer) => {
      out.push(d);
      if (options.close === 'first-chunk') child.stdout.destroy();
    });
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr }));
  });
}

/** Start the hostile holder (fixtures/hostile-hold.js) and resolve with what it holds. */
/** the fd limit the holder runs with where this process may raise it */
const FD_LIMIT = 8192;
/** what the CLI may write before a reader that takes one chunk and leaves is gone: the pipe
 *  (64 KiB by default), the chunk read (up to 64 KiB), and as much again, with room */
export const PIPE_HOLDS = 192 * 1024;

export async function holder(spec: { names?: string[]; comm?: string; dups?: number; buffers?: number }): Promise<{ child: ChildProcess; pid: number; kernel: boolean; dups: number; buffers: number }> {
  const env = { ...process.env };
  delete env.DMA_HEAP_ADDON; // it makes memfds whatever this run does; dump runs as this run does
  const argv = [process.execPath, path.join(__dirname, 'fixtures', 'hostile-hold.js'), JSON.stringify(spec)];
  // thousands of fds need a limit above the usual 1024 (the VMs' init leaves it there): root
  // raises it with prlimit, as an attacker who is root on their side would
  const raise = process.getuid?.() === 0 && existsSync('/usr/bin/prlimit') ? ['/usr/bin/prlimit', `--nofile=${FD_LIMIT}:${FD_LIMIT}`, '--'] : [];
  const [file, ...args] = [...raise, ...argv];
  const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const line = await new Promise<string>((resolve, reject) => {
    let out = '';
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      out += d;
      if (out.includes('\n')) resolve(out.slice(0, out.indexOf('\n')));
    });
    child.once('exit', (code) => reject(new Error(`hostile-hold exited (${code}): ${err}`)));
  });
  return { child, ...JSON.parse(line) };
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await gone;
}

/** Human output a terminal may safely show: no control byte but '\n', no DEL, no C1, no bidi control. */
export function expectInert(out: Buffer): void {
  const bad = [...out].filter((b) => (b < 0x20 && b !== 0x0a) || b === 0x7f || b === 0x9b);
  expect(bad).toEqual([]);
  expect(out.toString('utf8')).not.toMatch(/[\u0080-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
}

export function expectNoCrash(r: Run): void {
  expect(r.signal).toBeNull();
  expect(r.stderr).not.toMatch(/^\s+at /m); // a stack trace
  expect(r.stderr).not.toMatch(/Error\b/);
}

