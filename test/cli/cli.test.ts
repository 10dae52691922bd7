import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { expects } from '../helpers/expect';
import { testIf } from '../helpers/skip';

/*
 * The built CLI, spawned as users run it (`npm test` builds first). Every command, its
 * --help and --json; the checks follow what this host (or the VM row, DMA_HEAP_EXPECT) has.
 * The jest run without the addon (DMA_HEAP_ADDON=0, inherited) runs all of it again.
 */

const root = path.resolve(__dirname, '..', '..');
// eslint-disable-next-line @typescript-eslint/no-var-requires
const pkg = require(path.join(root, 'package.json')) as { version: string; bin: Record<string, string> };
const CLI = path.join(root, pkg.bin['dma-heap']); // what `npx dma-heap` runs
const noAddon = process.env.DMA_HEAP_ADDON === '0';
const hasHeaps = existsSync('/dev/dma_heap');

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], options: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: options.env ?? process.env, uid: options.uid, gid: options.gid });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

async function json(args: string[]): Promise<any> {
  const r = await cli([...args, '--json']);
  expect({ code: r.code, stderr: r.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  return JSON.parse(r.stdout);
}

/** Start a long-running process and resolve with its first stdout line. */
function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    child.stderr?.on('data', (d) => (err += d));
    child.stdout!.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve(buf.slice(0, nl));
    });
    child.once('exit', (code) => reject(new Error(`exited (${code}) before a line: ${buf}${err}`)));
  });
}

/** debugfs mounted and bufinfo readable by us (root): dump must then read it */
function debugfsReadable(): boolean {
  try {
    readFileSync('/sys/kernel/debug/dma_buf/bufinfo');
    return true;
  } catch {
    return false;
  }
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

describe('help, version, mistakes', () => {
  test.each([['--help'], ['-h'], ['help']])('%s prints the usage on stdout and exits 0', async (flag) => {
    const r = await cli([flag]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    for (const c of ['demo', 'list', 'dump', 'alloc', 'bench']) expect(r.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
  });

  test.each(['demo', 'list', 'dump', 'alloc', 'bench'])('%s --help prints its usage on stdout and exits 0', async (c) => {
    const r = await cli([c, '--help']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(new RegExp(`^usage: dma-heap ${c}`));
  });

  test.each([['--version'], ['-v']])('%s prints the package version', async (flag) => {
    const r = await cli([flag]);
    expect(r).toMatchObject({ code: 0, stdout: `${pkg.version}\n`, stderr: '' });
  });

  test('an unknown command or option is a usage error: stderr, exit 2', async () => {
    const a = await cli(['frobnicate']);
    expect(a.code).toBe(2);
    expect(a.stdout).toBe('');
    expect(a.stderr).toMatch(/unknown command "frobnicate"/);
    const b = await cli(['list', '--frobnicate']);
    expect(b.code).toBe(2);
    expect(b.stderr).toMatch(/--frobnicate/);
    const c = await cli(['list', 'extra']);
    expect(c.code).toBe(2);
  });

  test("a typo gets a usage error saying what was probably meant, not parseArgs' advice or a stack", async () => {
    const a = await cli(['lsit']);
    expect(a.code).toBe(2);
    expect(a.stderr).toMatch(/^dma-heap: unknown command "lsit"; did you mean 'list'\?\n\nusage: dma-heap /);
    const b = await cli(['list', '--jsno']);
    expect(b.code).toBe(2);
    expect(b.stderr).toBe("dma-heap list: unknown option '--jsno'; did you mean '--json'?\nusage: dma-heap list [--json]\n");
    const c = await cli(['alloc', '4k', '--heap', 'sytem']);
    expect(c.code).toBe(1);
    expect(c.stderr).toMatch(/ENOENT.*did you mean 'system'\?/);
    for (const r of [a, b, c]) expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('list', () => {
  test('--json: the heaps /dev/dma_heap has, with mode and owners, whether or not the addon loaded', async () => {
    const r = await json(['list']);
    expect(r.addon.loaded).toBe(!noAddon);
    expect(r.kernel.present).toBe(hasHeaps);
    const names = hasHeaps ? readdirSync('/dev/dma_heap').sort() : [];
    expect(r.kernel.heaps.map((h: { name: string }) => h.name)).toEqual(names);
    for (const h of r.kernel.heaps) {
      const st = statSync(h.path);
      expect(h).toMatchObject({ uid: st.uid, gid: st.gid, mode: (st.mode & 0o7777).toString(8).padStart(4, '0') });
      expect(h.perms).toMatch(/^c[rwx-]{9}$/);
      expect(typeof h.accessible).toBe('boolean');
    }
    if (expects('system')) expect(names).toContain('system');
    expect(r.udmabuf.present).toBe(existsSync('/dev/udmabuf'));
    if (expects('udmabuf')) expect(r.udmabuf).toMatchObject({ present: true, sizeLimit: expect.any(Number) });
    expect(r.software.heaps).toContain('system');
    expect(r.software.backing).toBe(noAddon ? 'js' : 'memfd');
  });

  test('the text form says the same, and never claims a missing /dev/dma_heap that exists', async () => {
    const r = await cli(['list']);
    expect(r.code).toBe(0);
    if (hasHeaps) {
      expect(r.stdout).not.toMatch(/does not exist/);
      for (const name of readdirSync('/dev/dma_heap')) expect(r.stdout).toMatch(new RegExp(`^  ${name} `, 'm'));
      if (noAddon) expect(r.stdout).toMatch(/npm rebuild dma-heap/);
    } else {
      expect(r.stdout).toMatch(/kernel heaps: none — \/dev\/dma_heap does not exist/);
    }
    expect(r.stdout).toMatch(noAddon ? /native addon: NOT loaded \(disabled by DMA_HEAP_ADDON=0\)/ : /native addon: loaded/);
  });
});

describe('demo', () => {
  test('allocates, maps, fills and verifies, and says truthfully what this machine has', async () => {
    const r = await cli(['demo']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/mapped, filled and verified 1048576 bytes: OK/);
    if (hasHeaps) expect(r.stdout).not.toMatch(/no \/dev\/dma_heap/);
    else expect(r.stdout).toMatch(/this machine has no \/dev\/dma_heap/);
    if (expects('system') && !noAddon) expect(r.stdout).toMatch(/using: the real kernel, \/dev\/dma_heap\/system/);
  });

  test('--json, and no command at all runs the demo', async () => {
    const r = await json([]);
    expect(r).toMatchObject({ verified: true, buffer: { size: 1 << 20 } });
    expect(r.heap.backend).toBe(hasHeaps && !noAddon && r.kernelHeaps.heaps.some((h: { name: string; accessible: boolean }) => h.name === 'system' && h.accessible) ? 'kernel' : 'software');
  });
});

describe('alloc', () => {
  test('reports the buffer: size rounded to pages, tier, exporter, name, ino', async () => {
    const r = await json(['alloc', '5000', '--name', 'cli0']);
    expect(r).toMatchObject({ pid: expect.any(Number), heap: 'system', fd: expect.any(Number), exporter: 'system', name: 'cli0' });
    expect(r.size % 4096).toBe(0);
    expect(r.size).toBeGreaterThanOrEqual(5000);
    expect(r.tier).toBe(noAddon ? 'js' : r.backend === 'kernel' ? 'dma-heap' : 'memfd');
  });

  test('sizes take units; a bad size or heap fails clearly', async () => {
    expect((await json(['alloc', '64k'])).size).toBe(65536);
    const bad = await cli(['alloc', '12 parsecs']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/not a size/);
    const none = await cli(['alloc']);
    expect(none.code).toBe(2);
    const heap = await cli(['alloc', '4k', '--heap', 'no-such-heap']);
    expect(heap.code).toBe(1);
    expect(heap.stderr).toMatch(/ENOENT/);
  });

  test.each(['SIGTERM', 'SIGINT'] as const)('--hold keeps the buffer (dump sees it) until %s, then releases it and exits 0', async (signal) => {
    const holder = spawn(process.execPath, [CLI, 'alloc', '2M', '--name', 'held0', '--hold', '--json'], { env: process.env });
    try {
      const report = JSON.parse(await firstLine(holder));
      expect(report.pid).toBe(holder.pid);
      const d = await json(['dump', String(holder.pid)]);
      const proc = d.processes.find((p: { pid: number }) => p.pid === holder.pid);
      if (report.tier === 'js') {
        expect(proc.count).toBe(0); // JS memory has no fd: nothing for /proc to show
      } else {
        expect(proc.buffers).toEqual([expect.objectContaining({ fds: [report.fd], size: 2 << 20, exporter: 'system', kind: report.isDmaBuf ? 'dma-buf' : 'software' })]);
        if (report.isDmaBuf) expect(proc.buffers[0]).toMatchObject({ name: 'held0', ino: report.ino });
      }
      let stderr = '';
      holder.stderr!.on('data', (c) => (stderr += c));
      holder.kill(signal);
      expect(await exited(holder)).toEqual({ code: 0, signal: null });
      expect(stderr).toMatch(new RegExp(`${signal}: released`));
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

describe('dump', () => {
  test('a buffer shared by two processes (and mapped) is listed in each, counted once', async () => {
    const env = { ...process.env };
    delete env.DMA_HEAP_ADDON; // the fixture makes real shareable buffers; dump runs as this run does
    const holder = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'share-hold.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      const { pid, child, size, tier } = JSON.parse(await firstLine(holder));
      const d = await json(['dump', String(pid), String(child)]);
      const [p, c] = [pid, child].map((x) => d.processes.find((q: { pid: number }) => q.pid === x));
      expect(p.buffers).toHaveLength(1);
      expect(c.buffers).toHaveLength(1);
      expect(p.buffers[0].key).toBe(c.buffers[0].key);
      expect(p.buffers[0].mapped).toBe(size); // the holder maps it: the mapping is the same buffer
      expect(c.buffers[0]).toMatchObject({ size, fds: [expect.any(Number)] });
      expect(d.total.count).toBe(1);
      expect(d.total.bytes).toBe(size);
      expect(d.shared).toEqual([expect.objectContaining({ size, pids: [pid, child] })]);
      const kind = tier === 'memfd' ? 'software' : 'dma-buf';
      expect(d.exporters).toEqual([expect.objectContaining({ kind, count: 1, bytes: size })]);
      if (kind === 'dma-buf') expect(p.buffers[0].name).toBe('shared0');
      if (kind === 'dma-buf' && debugfsReadable()) {
        // the kernel's own list (debugfs bufinfo) has the buffer, by ino
        expect(d.debugfs.status).toBe('read');
        expect(d.debugfs.buffers).toEqual(expect.arrayContaining([expect.objectContaining({ ino: p.buffers[0].ino, size })]));
      }
      const text = await cli(['dump', String(pid), String(child)]);
      expect(text.stdout).toMatch(new RegExp(`shared: ino ${p.buffers[0].ino} .* by pids ${pid}, ${child}, counted once`));
    } finally {
      holder.kill('SIGTERM');
      await exited(holder);
    }
  });

  const root0 = process.getuid?.() === 0;
  const pid1Foreign = existsSync('/proc/1') && statSync('/proc/1').uid !== process.getuid?.();
  testIf(root0 || pid1Foreign, "pid 1 is this user's own, and not root")(
    'a process this user may not read is reported, not skipped',
    async () => {
      // as root, look as nobody (65534) would
      const r = await cli(['dump', '1', '--json'], root0 ? { uid: 65534, gid: 65534 } : {});
      expect(r.code).toBe(0);
      const d = JSON.parse(r.stdout);
      expect(d.unreadable).toEqual([expect.objectContaining({ pid: 1, error: expect.stringMatching(/^E(ACCES|PERM)$/) })]);
      const text = await cli(['dump', '1'], root0 ? { uid: 65534, gid: 65534 } : {});
      expect(text.stdout).toMatch(/1 process not readable by this user/);
    },
  );

  test('a pid that does not exist is an error (exit 1); a non-pid a usage error', async () => {
    const r = await cli(['dump', '999999999', '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout).unreadable).toEqual([expect.objectContaining({ pid: 999999999, error: 'ENOENT' })]);
    expect((await cli(['dump', 'self'])).code).toBe(2);
  });

  test('all processes: at least this test runner is scanned, and debugfs says why when it is not read', async () => {
    const d = await json(['dump']);
    expect(d.scanned).toBeGreaterThan(1);
    if (debugfsReadable()) {
      expect(d.debugfs.status).toBe('read');
      expect(d.debugfs.buffers).toEqual(expect.any(Array));
    } else {
      expect(d.debugfs.status).toMatch(/^(not mounted|absent|not readable|unreadable)/);
      expect(d.debugfs.buffers).toBeUndefined();
    }
  });
});

describe('bench', () => {
  test('--builtin runs on every heap this machine has, with progress on stderr', async () => {
    const r = await cli(['bench', '--builtin', '--quick', '--sizes', '4k', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    const targets = out.results.map((x: { target: string }) => x.target);
    expect(targets).toContain(`software system (${noAddon ? 'js' : 'memfd'})`);
    if (expects('system') && !noAddon) expect(targets).toContain('kernel system');
    if (expects('udmabuf') && !noAddon) expect(targets).toContain('udmabuf');
    for (const x of out.results) expect(x).toMatchObject({ size: 4096, iterations: expect.any(Number), usPerOp: expect.any(Number) });
    expect(r.stderr).toMatch(new RegExp(`\\[1/${out.results.length}\\] `)); // progress
  });
});
