import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { allocShareable, listHeaps, openHeap, type DmaBuf } from '../index';
import { COMMON_OPTIONS, formatSize, packageRoot, parseSize, UsageError, type Command } from './common';
import { jsonText, shown } from '../escape';

/*
 * In a checkout, `dma-heap bench` runs the package's benchmark (test/bench/run.js: the public
 * API against a C reference making the same syscalls), passing its options through. An
 * installed package has no test/: then a short loop through the public API on every heap this
 * machine has (allocate, map, fill, close), with progress on stderr. Numbers are printed,
 * never judged.
 */

interface Target {
  label: string;
  alloc(size: number): DmaBuf;
  done(): void;
}

interface Result {
  target: string;
  size: number;
  iterations: number;
  usPerOp: number;
  fillGBps: number;
}

function targets(): { list: Target[]; notes: string[] } {
  const list: Target[] = [];
  const notes: string[] = [];
  for (const h of listHeaps({ backend: 'kernel' })) {
    if (!h.accessible) {
      notes.push(`kernel heap ${h.name}: no access for this user, not measured`);
      continue;
    }
    const heap = openHeap(h.name, { backend: 'kernel' });
    list.push({ label: `kernel ${h.name}`, alloc: (n) => heap.alloc(n), done: () => heap.close() });
  }
  try {
    allocShareable(4096, { tiers: ['udmabuf'] }).close();
    list.push({ label: 'udmabuf', alloc: (n) => allocShareable(n, { tiers: ['udmabuf'] }), done: () => {} });
  } catch (err) {
    notes.push(`udmabuf: not measured (${(err as Error).message})`);
  }
  const soft = openHeap('system', { backend: 'software' });
  list.push({ label: `software system (${soft.backing})`, alloc: (n) => soft.alloc(n), done: () => soft.close() });
  return { list, notes };
}

function measure(t: Target, size: number, minTime: number): Result {
  let iterations = 0;
  let fillMs = 0;
  const start = performance.now();
  do {
    const buf = t.alloc(size);
    try {
      const f0 = performance.now();
      buf.cpuAccess('write', (bytes) => bytes.fill(0xa5));
      fillMs += performance.now() - f0;
    } finally {
      buf.close();
    }
    iterations++;
  } while (performance.now() - start < minTime * 1000 || iterations < 5);
  const total = performance.now() - start;
  return { target: t.label, size, iterations, usPerOp: (total * 1000) / iterations, fillGBps: (size * iterations) / (fillMs / 1000) / 1e9 };
}

function builtin(values: Record<string, unknown>, io: { out(l: string): void; err(l: string): void }): number {
  const sizes = (values.sizes as string | undefined)?.split(',').map(parseSize) ?? [4096, 64 << 10, 1 << 20, 16 << 20];
  const minTime = values.quick ? 0.05 : 0.3;
  const { list, notes } = targets();
  const results: Result[] = [];
  const steps = list.length * sizes.length;
  let step = 0;
  try {
    for (const t of list) {
      for (const size of sizes) {
        step++;
        const label = `[${step}/${steps}] ${shown(t.label)}, ${formatSize(size)}`;
        if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${label}...`);
        const r = measure(t, size, minTime);
        results.push(r);
        if (!process.stderr.isTTY) io.err(`${label}: ${r.usPerOp.toFixed(1)} µs/op`);
      }
    }
  } finally {
    for (const t of list) t.done();
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  }
  if (values.json) {
    io.out(jsonText({ runner: 'builtin', results, notes }, 2));
    return 0;
  }
  io.out('allocate + map + fill + close, per buffer, through the public API:');
  const width = Math.max(...results.map((r) => shown(r.target).length));
  for (const r of results) {
    io.out(`  ${shown(r.target).padEnd(width)}  ${formatSize(r.size).padStart(8)}  ${r.usPerOp.toFixed(1).padStart(9)} µs/op  fill ${r.fillGBps.toFixed(2)} GB/s  (${r.iterations} runs)`);
  }
  for (const n of notes) io.out(shown(n));
  return 0;
}

function runner(file: string, values: Record<string, unknown>, extra: string[], io: { out(l: string): void }): Promise<number> {
  const args = [file, ...(values.quick ? ['--quick'] : []), ...(values.sizes ? ['--sizes', values.sizes as string] : []), ...extra];
  let dir: string | undefined;
  let jsonFile: string | undefined;
  if (values.json) {
    dir = mkdtempSync(path.join(tmpdir(), 'dma-heap-bench-'));
    jsonFile = path.join(dir, 'bench.json');
    args.push('--json', jsonFile);
  }
  // its progress is on stderr; with --json its tables go to stderr too, the JSON alone to stdout
  const child = spawn(process.execPath, args, { stdio: ['inherit', values.json ? 2 : 'inherit', 'inherit'] });
  return new Promise((resolve) => {
    const finish = (code: number) => {
      if (jsonFile && code === 0) io.out(readFileSync(jsonFile, 'utf8').trim());
      if (dir) rmSync(dir, { recursive: true, force: true });
      resolve(code);
    };
    child.once('error', () => finish(1));
    child.once('exit', (code, signal) => finish(code ?? (signal ? 1 : 0)));
  });
}

export const bench: Command = {
  name: 'bench',
  summary: "the package's benchmark on this machine's heaps, with progress",
  usage: 'bench [--quick] [--sizes 4k,1M,...] [--builtin] [--json] [-- runner options]',
  help: `In a checkout: runs test/bench/run.js (the package through its public API against a C
reference making the same syscalls; needs cc), with its progress on stderr; options after --
go to it. Installed, or with --builtin: a short loop through the public API (allocate, map,
fill, close) on every heap this machine has, udmabuf and the software framework.
Speed is printed, never judged: the exit status says only whether it ran.`,
  options: {
    ...COMMON_OPTIONS,
    quick: { type: 'boolean', default: false },
    sizes: { type: 'string' },
    builtin: { type: 'boolean', default: false },
  },
  positionals: true,
  run(values, positionals, io) {
    const file = path.join(packageRoot(), 'test', 'bench', 'run.js');
    if (!values.builtin && existsSync(file)) return runner(file, values, positionals, io);
    if (positionals.length) throw new UsageError(`runner options (${positionals.join(' ')}) need the checkout's test/bench/run.js`);
    return builtin(values, io);
  },
};
