// Memory-cgroup accounting of dma-buf heaps (Linux 6.18+: dma_heap.mem_accounting=1 makes the
// system heap allocate with __GFP_ACCOUNT; the arm64-7-16k row boots with it, cgroup v2 mounted
// at /sys/fs/cgroup, DMA_HEAP_EXPECT=mem-accounting). Without it a dma-buf's pages belong to no
// cgroup (and to no process's RSS); with it they are charged to the memory cgroup of the process
// that allocated them, and a cgroup's memory.max refuses an allocation that does not fit.
//
// A child Node process (the built package, dist/) is moved into a fresh cgroup before it loads
// anything, then allocates from the system heap on the parent's command while the parent reads
// the cgroup's own counters.
//
// Measured on 7.3.4 (16 KiB pages): an 8 MiB buffer raises memory.current by 8 MiB and closing it
// gives it back to within the per-CPU charge batches (MEMCG_CHARGE_BATCH, 64 pages = 1 MiB each).
// Over memory.max the kernel does NOT answer ENOMEM to an ordinary process: the system heap's
// order-0 pages (GFP_HIGHUSER | __GFP_ACCOUNT) invoke the cgroup's OOM killer, which SIGKILLs the
// allocating process (memory.events: oom 1, oom_kill 1; "Memory cgroup out of memory: Killed
// process ... (node)"), and the heap gives back what it had taken. Only when the cgroup has
// nothing the OOM killer may kill (oom_score_adj -1000) does the charge fail, and the ioctl
// with it: ENOMEM. So the package checks memory.max itself first (lib/memcg.ts) and refuses with
// ENOMEM; the 'raw' command goes past it to show what the kernel alone does.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { listHeaps } from '../../lib';
import { page } from '../addon/helpers';
import { CGROUP2, MEM_ACCOUNTING_PARAM, describeWith } from '../helpers/expect';

const DIST = path.resolve(__dirname, '../../dist/index.js');
const MiB = 1 << 20;
/**
 * How far memory.current may sit from where it was once a buffer is freed: charges are taken in
 * per-CPU batches (MEMCG_CHARGE_BATCH, 64 pages = 1 MiB at 16 KiB), kept in stock on the CPU that
 * charged, so each of the guest's two CPUs may hold one. Measured after close: +0 and +1 MiB.
 */
const SLACK = 2 * 64 * page;

// The child: answers one JSON line per command read from stdin.
const CHILD = `'use strict';
const fs = require('fs');
const { openHeap } = require(${JSON.stringify(DIST)});
const { loadAddon } = require(${JSON.stringify(path.join(path.dirname(DIST), 'native/load.js'))});
const uapi = require(${JSON.stringify(path.join(path.dirname(DIST), 'uapi.js'))});
const fds = () => fs.readdirSync('/proc/self/fd').length;
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
let heap, buf;
require('readline').createInterface({ input: process.stdin }).on('line', (cmd) => {
  try {
    if (cmd.startsWith('alloc ')) {
      heap = heap || openHeap('system', { backend: 'kernel' });
      buf = heap.alloc(Number(cmd.slice(6)));
      say({ ok: true, size: buf.size, fds: fds() });
    } else if (cmd.startsWith('raw ')) {
      // the kernel alone, past the package's memory.max check: the addon's ioctl, then close
      const a = loadAddon();
      const h = a.open('/dev/dma_heap/system', uapi.O_RDONLY | uapi.O_CLOEXEC);
      try {
        a.close(a.heapAlloc(h, uapi.DMA_HEAP_IOCTL_ALLOC, Number(cmd.slice(4)), uapi.O_RDWR | uapi.O_CLOEXEC));
      } finally {
        a.close(h);
      }
      say({ ok: true, fds: fds() });
    } else if (cmd === 'close') {
      if (buf) buf.close();
      if (heap) heap.close();
      buf = heap = undefined;
      say({ ok: true, fds: fds() });
    } else if (cmd === 'exit') {
      process.exit(0);
    }
  } catch (e) {
    say({ error: { name: e.name, code: e.code, errno: e.errno, syscall: e.syscall, message: e.message }, fds: fds() });
  }
});
say({ ready: true, fds: fds(), cgroup: fs.readFileSync('/proc/self/cgroup', 'utf8').trim() });
`;

interface Reply { ok?: boolean; ready?: boolean; size?: number; fds: number; cgroup?: string; error?: Record<string, unknown> }

/** a child Node in cgroup `cg` (moved there by its shell before node starts), spoken to by lines */
class Child {
  readonly proc: ChildProcess;
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>;
  private readonly lines: AsyncIterator<string>;
  constructor(cg: string, script: string, options: { unkillable?: boolean } = {}) {
    // `$$` is the shell, which exec turns into node: the pid is in the group before node runs
    // (and an oom_score_adj set there is node's: -1000 puts it out of the OOM killer's reach)
    const adj = options.unkillable ? 'echo -1000 > /proc/self/oom_score_adj && ' : '';
    this.proc = spawn('sh', ['-c', `${adj}echo $$ > "$0/cgroup.procs" && exec "$1" "$2"`, cg, process.execPath, script],
      { stdio: ['pipe', 'pipe', 'inherit'] });
    this.exited = once(this.proc, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    this.proc.stdin!.on('error', () => undefined); // EPIPE once the child is gone: the exit says why
    this.lines = createInterface({ input: this.proc.stdout! })[Symbol.asyncIterator]();
  }
  async next(): Promise<Reply | null> {
    const r = await this.lines.next();
    return r.done ? null : (JSON.parse(r.value) as Reply);
  }
  async ask(cmd: string): Promise<Reply | null> {
    this.proc.stdin!.write(`${cmd}\n`);
    return this.next();
  }
}

describeWith('mem-accounting')('system-heap buffers are charged to the memory cgroup (6.18+, dma_heap.mem_accounting=1)', () => {
  let dir: string;
  let script: string;
  const groups: string[] = [];
  const num = (cg: string, f: string): number => Number(readFileSync(path.join(cg, f), 'utf8').trim());
  const kv = (cg: string, f: string): Record<string, number> =>
    Object.fromEntries(readFileSync(path.join(cg, f), 'utf8').trim().split('\n').map((l) => l.split(' ')).map(([k, v]) => [k, Number(v)]));

  beforeAll(() => {
    if (!existsSync(DIST)) throw new Error(`${DIST} is missing: run \`npx tsc -p tsconfig.build.json\` first (the child runs the built package)`);
    dir = mkdtempSync(path.join(tmpdir(), 'dma-heap-memcg-'));
    script = path.join(dir, 'child.js');
    writeFileSync(script, CHILD);
    // the memory controller for the groups below the root (the root itself holds no limits)
    writeFileSync(path.join(CGROUP2, 'cgroup.subtree_control'), '+memory');
  });
  afterAll(() => {
    for (const cg of groups) try { rmdirSync(cg); } catch { /* still populated: the report shows it */ }
    rmSync(dir, { recursive: true, force: true });
  });

  function group(): string {
    const cg = path.join(CGROUP2, `dma-heap-test-${process.pid}-${groups.length}`);
    mkdirSync(cg);
    groups.push(cg);
    expect(readFileSync(path.join(cg, 'cgroup.controllers'), 'utf8')).toMatch(/\bmemory\b/);
    return cg;
  }

  test('the kernel says it accounts, and listHeaps() says the system heap is accounted', () => {
    expect(readFileSync(MEM_ACCOUNTING_PARAM, 'utf8').trim()).toBe('Y');
    const system = listHeaps({ backend: 'kernel' }).find((h) => h.name === 'system');
    expect(system).toMatchObject({ kind: 'system', accounted: true });
  });

  test('an 8 MiB buffer raises the cgroup\'s memory.current by at least 8 MiB; closing it gives it back', async () => {
    const cg = group();
    const child = new Child(cg, script);
    try {
      const hello = await child.next();
      expect(hello).toMatchObject({ ready: true, cgroup: `0::/${path.basename(cg)}` });
      // warm up: the package's code paths loaded and the heap opened, so the counters below move
      // by the buffer and not by Node loading modules
      expect(await child.ask(`alloc ${MiB}`)).toMatchObject({ ok: true });
      expect(await child.ask('close')).toMatchObject({ ok: true, fds: hello!.fds });
      const before = num(cg, 'memory.current');
      const held = await child.ask(`alloc ${8 * MiB}`);
      expect(held).toMatchObject({ ok: true, size: 8 * MiB });
      const during = num(cg, 'memory.current');
      expect(during - before).toBeGreaterThanOrEqual(8 * MiB);
      expect(await child.ask('close')).toMatchObject({ ok: true, fds: hello!.fds });
      const after = num(cg, 'memory.current');
      // eslint-disable-next-line no-console
      console.log(`memory.current: ${before} before, ${during} holding 8 MiB (+${during - before}), ${after} after close`);
      expect(during - after).toBeGreaterThanOrEqual(8 * MiB - SLACK);
      expect(after - before).toBeLessThanOrEqual(SLACK);
    } finally {
      child.proc.stdin!.end('exit\n');
      await child.exited;
    }
  });

  /** a child in a fresh group, warmed up (package loaded, heap used once), with memory.max = its use + 4 MiB */
  async function limited(options: { unkillable?: boolean }) {
    const cg = group();
    const child = new Child(cg, script, options);
    const hello = await child.next();
    expect(hello).toMatchObject({ ready: true });
    expect(await child.ask(`alloc ${MiB}`)).toMatchObject({ ok: true });
    expect(await child.ask('close')).toMatchObject({ ok: true, fds: hello!.fds });
    const before = num(cg, 'memory.current');
    const events = kv(cg, 'memory.events');
    writeFileSync(path.join(cg, 'memory.max'), String(before + 4 * MiB));
    return { cg, child, hello: hello!, before, events };
  }

  test('memory.max below the buffer: the package refuses with ENOMEM before the kernel is asked; the child lives, nothing leaks', async () => {
    const { cg, child, hello, before, events } = await limited({});
    try {
      // the package counts the group's page cache and reclaimable slab as room (the kernel
      // reclaims them before its OOM killer): ask for more than the limit leaves with them
      const stat = readFileSync(path.join(cg, 'memory.stat'), 'utf8');
      const reclaimable = [...stat.matchAll(/^(file|slab_reclaimable) (\d+)$/gm)].reduce((n, m) => n + Number(m[2]), 0);
      const reply = await child.ask(`alloc ${16 * MiB + Math.ceil(reclaimable / MiB) * MiB}`);
      expect(reply).toMatchObject({
        error: { name: 'DmaHeapError', code: 'ENOMEM', errno: -12, syscall: 'ioctl', message: expect.stringMatching(new RegExp(`${path.basename(cg)} has \\d+ bytes left under memory.max`)) },
        fds: hello.fds + 1, // the heap it opened, and no buffer
      });
      const after = kv(cg, 'memory.events');
      expect(after.oom).toBe(events.oom); // the kernel never got to its OOM killer
      expect(num(cg, 'memory.current') - before).toBeLessThanOrEqual(SLACK);
      // what fits still allocates
      expect(await child.ask(`alloc ${2 * MiB}`)).toMatchObject({ ok: true, size: 2 * MiB });
      expect(await child.ask('close')).toMatchObject({ ok: true, fds: hello.fds });
    } finally {
      child.proc.stdin!.end('exit\n');
      await child.exited;
    }
  });

  test('why: the kernel alone (the addon\'s ioctl, no check) has the cgroup\'s OOM killer kill the allocating process, and its pages come back', async () => {
    const { cg, child, before, events } = await limited({});
    try {
      const reply = await child.ask(`raw ${16 * MiB}`);
      const [code, signal] = await child.exited;
      const after = kv(cg, 'memory.events');
      // eslint-disable-next-line no-console
      console.log(`memory.max ${before + 4 * MiB}, 16 MiB asked of the kernel: reply ${JSON.stringify(reply)}, exit ${code} ${signal}, ` +
        `memory.events ${JSON.stringify(events)} -> ${JSON.stringify(after)}, memory.current ${num(cg, 'memory.current')}`);
      expect(reply).toBeNull(); // no answer: killed inside the ioctl
      expect(signal).toBe('SIGKILL');
      expect(after.oom_kill - events.oom_kill).toBe(1);
      expect(after.max).toBeGreaterThan(events.max);
      // the process is gone and so is every page it held: the buffer's, never handed out, too
      expect(num(cg, 'memory.current')).toBeLessThan(before);
      expect(readFileSync(path.join(cg, 'cgroup.procs'), 'utf8').trim()).toBe('');
    } finally {
      child.proc.kill('SIGKILL');
      await child.exited;
    }
  });

  test('the kernel alone, nothing killable (oom_score_adj -1000): the ioctl fails ENOMEM, the child lives, nothing leaks', async () => {
    const { cg, child, hello, before, events } = await limited({ unkillable: true });
    try {
      const reply = await child.ask(`raw ${16 * MiB}`);
      const after = kv(cg, 'memory.events');
      // eslint-disable-next-line no-console
      console.log(`unkillable, memory.max ${before + 4 * MiB}, 16 MiB asked: reply ${JSON.stringify(reply)}, ` +
        `memory.events ${JSON.stringify(events)} -> ${JSON.stringify(after)}, memory.current ${num(cg, 'memory.current')}`);
      expect(reply).toMatchObject({ error: { code: 'ENOMEM', errno: -12, syscall: 'ioctl' } });
      expect(after.oom - events.oom).toBeGreaterThanOrEqual(1); // the OOM killer ran, and found no one
      expect(after.oom_kill).toBe(events.oom_kill);
      expect(num(cg, 'memory.current') - before).toBeLessThanOrEqual(SLACK); // the pages taken before the refusal were given back
      writeFileSync(path.join(cg, 'memory.max'), 'max');
      expect(await child.ask('close')).toMatchObject({ ok: true, fds: hello.fds }); // no fd left behind either
      // and the group serves again once the limit is gone
      expect(await child.ask(`alloc ${16 * MiB}`)).toMatchObject({ ok: true, size: 16 * MiB });
      expect(await child.ask('close')).toMatchObject({ ok: true, fds: hello.fds });
    } finally {
      child.proc.stdin!.end('exit\n');
      await child.exited;
    }
  });
});
