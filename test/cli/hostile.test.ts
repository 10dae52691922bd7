import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

/*
 * The CLI against hostile input, spawned as users run it (`npm test` builds dist/ first): a
 * reader that goes away, buffer and process names that would drive a terminal or hide a
 * buffer, processes that exit mid-scan or hold thousands of fds, arguments it must refuse.
 * Runs wherever a heap exists: a real kernel's system heap, else the software framework's.
 */

const root = path.resolve(__dirname, '..', '..');
// eslint-disable-next-line @typescript-eslint/no-var-requires
const pkg = require(path.join(root, 'package.json')) as { bin: Record<string, string> };
const CLI = path.join(root, pkg.bin['dma-heap']);
/** what a shell reports for a writer SIGPIPE killed; the CLI exits with it on EPIPE (lib/cli.ts) */
const BROKEN_PIPE = 141;

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/**
 * Run the CLI. `close`: when to close our end of its stdout, 'start' (before it can have
 * written: node takes far longer to start than this takes to close) or 'first-chunk'.
 */
function cli(args: string[], options: { close?: 'start' | 'first-chunk'; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
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

describe('a reader that goes away ends the CLI quietly, with the status of a SIGPIPE', () => {
  test.each([[['--help']], [['--version']], [['list']], [['list', '--json']], [['dump']], [['dump', '--json']], [['dump', '1', '--json']], [['demo', '--json']], [['alloc', '4k']]])(
    'stdout closed before it writes: %j',
    async (args) => {
      const r = await cli(args, { close: 'start' });
      expect(r).toMatchObject({ code: BROKEN_PIPE, signal: null, stderr: '' });
    },
  );
});

/** Start the hostile holder (fixtures/hostile-hold.js) and resolve with what it holds. */
/** the fd limit the holder runs with where this process may raise it */
const FD_LIMIT = 8192;
/** what the CLI may write before a reader that takes one chunk and leaves is gone: the pipe
 *  (64 KiB by default), the chunk read (up to 64 KiB), and as much again, with room */
const PIPE_HOLDS = 192 * 1024;

async function holder(spec: { names?: string[]; comm?: string; dups?: number; buffers?: number }): Promise<{ child: ChildProcess; pid: number; kernel: boolean; dups: number; buffers: number }> {
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

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await gone;
}

/** Human output a terminal may safely show: no control byte but '\n', no DEL, no C1, no bidi control. */
function expectInert(out: Buffer): void {
  const bad = [...out].filter((b) => (b < 0x20 && b !== 0x0a) || b === 0x7f || b === 0x9b);
  expect(bad).toEqual([]);
  expect(out.toString('utf8')).not.toMatch(/[\u0080-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
}

function expectNoCrash(r: Run): void {
  expect(r.signal).toBeNull();
  expect(r.stderr).not.toMatch(/^\s+at /m); // a stack trace
  expect(r.stderr).not.toMatch(/Error\b/);
}

describe('names that would drive a terminal or hide a buffer', () => {
  // each at most 31 bytes (DMA_BUF_NAME_LEN), so a real kernel takes it too
  const NAMES = [
    'esc\x1b[31mred',
    '\x1b]0;pwned\x07',
    'back\bspace',
    'cr\rhidden',
    'nl\nhidden',
    '\n',
    'bidi\u202eevil',
    'iso\u2066x\u2069',
    'back\\slash',
    'back\\x1b',
    'del\x7f',
    'csi\u009b2J',
    ' padded ',
    'tab\t',
  ];
  const COMM = '\x1b[2J\x07evil\u202e'; // 12 bytes: comm keeps 15
  let h: Awaited<ReturnType<typeof holder>>;
  beforeAll(async () => {
    h = await holder({ names: NAMES, comm: COMM });
  });
  afterAll(() => stop(h.child));

  test('--json: every buffer counted, each name exactly as set, and no raw control byte in the JSON', async () => {
    const r = await cli(['dump', String(h.pid), '--json']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expectInert(r.stdout);
    const d = JSON.parse(r.stdout.toString());
    const p = d.processes[0];
    expect(p.comm).toBe(COMM);
    const exporters = p.buffers.filter((b: { kind: string }) => b.kind === 'software').map((b: { exporter: string }) => b.exporter);
    for (const name of NAMES) expect(exporters).toContain(name); // the memfds dma-heap:<name>
    if (h.kernel) {
      const names = p.buffers.filter((b: { kind: string }) => b.kind === 'dma-buf').map((b: { name?: string }) => b.name);
      expect(names.sort()).toEqual([...NAMES].sort());
    }
    // per name: the heap's buffer (a dma-buf, or a framework memfd) and the memfd
    expect(d.total.count).toBe(2 * NAMES.length);
    expect(p.count).toBe(d.total.count);
  });

  test('the text: every name shown escaped, visibly, distinctly; nothing a terminal acts on', async () => {
    const r = await cli(['dump', String(h.pid)]);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expectInert(r.stdout);
    const text = r.stdout.toString();
    for (const shown of ['esc\\x1b[31mred', '\\x1b]0;pwned\\x07', 'back\\x08space', 'cr\\rhidden', 'nl\\nhidden', 'bidi\\u202eevil', 'iso\\u2066x\\u2069', 'back\\\\slash', 'back\\\\x1b', 'del\\x7f', 'csi\\u009b2J', 'tab\\t']) {
      expect(text).toContain(shown);
    }
    expect(text).toContain(`\\x1b[2J\\x07evil\\u202e (pid ${h.pid}): ${2 * NAMES.length} buffers`);
    expect(text).toMatch(new RegExp(h.kernel ? `total: ${NAMES.length} dma-bufs` : `; ${2 * NAMES.length} software framework buffers`));
  });

  test('a scan of every process finds them too', async () => {
    const r = await cli(['dump', '--json']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const p = JSON.parse(r.stdout.toString()).processes.find((q: { pid: number }) => q.pid === h.pid);
    expect(p.count).toBe(2 * NAMES.length);
    expectInert((await cli(['dump'])).stdout);
  });
});

describe('a process with thousands of fds, and a reader that leaves mid-output', () => {
  let h: Awaited<ReturnType<typeof holder>>;
  beforeAll(async () => {
    h = await holder({ dups: 3000, buffers: 3000 });
  });
  afterAll(() => stop(h.child));

  test('every fd and every buffer is counted', async () => {
    expect(h.dups + h.buffers).toBeGreaterThan(500); // else the fd limit (ulimit -n) is absurdly low
    const r = await cli(['dump', String(h.pid), '--json']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const p = JSON.parse(r.stdout.toString()).processes[0];
    expect(p.count).toBe(1 + h.buffers);
    expect(p.buffers.find((b: { fds: number[] }) => b.fds.length > 1).fds).toHaveLength(1 + h.dups);
  });

  test.each([[['dump']], [['dump', '--json']]])('%j: stdout closed after its first chunk, a quiet exit 141', async (args) => {
    // only output larger than a pipe holds can meet a closed reader: say so if the limit kept it small
    const whole = await cli([...args, String(h.pid)]);
    expect(whole.stdout.length).toBeGreaterThan(PIPE_HOLDS);
    const r = await cli([...args, String(h.pid)], { close: 'first-chunk' });
    expect(r).toMatchObject({ code: BROKEN_PIPE, signal: null, stderr: '' });
  });
});

test('processes exiting mid-scan (some holding buffers) never crash dump', async () => {
  const dist = JSON.stringify(path.join(root, 'dist'));
  const env = { ...process.env };
  delete env.DMA_HEAP_ADDON;
  // forks that live for a moment, and node processes that allocate a buffer and exit
  const forks = spawn('sh', ['-c', 'while :; do for i in 1 2 3 4; do ( : ) & done; wait; done'], { stdio: 'ignore' });
  let churning = true;
  const holders = (async () => {
    while (churning) {
      await Promise.all(
        Array.from({ length: 6 }, () =>
          new Promise((resolve) =>
            spawn(process.execPath, ['-e', `require(${dist}).openHeap('system').alloc(4096); setTimeout(() => {}, 20)`], { env, stdio: 'ignore' }).once('exit', resolve),
          ),
        ),
      );
    }
  })();
  try {
    for (let i = 0; i < 4; i++) {
      const args = i % 2 ? ['dump'] : ['dump', '--json'];
      const r = await cli(args);
      expectNoCrash(r);
      expect(r).toMatchObject({ code: 0, stderr: '' });
      if (i % 2 === 0) expect(() => JSON.parse(r.stdout.toString())).not.toThrow();
    }
  } finally {
    churning = false;
    forks.kill('SIGKILL');
    await holders;
  }
});

describe('mistakes in how it is called: exit 2, the usage line, no stack trace, nothing on stdout', () => {
  test.each([
    [['list', '--frobnicate']],
    [['dump', '-x']],
    [['--frobnicate']],
    [['list', '--json=1']],
    [['alloc', '4k', '--heap']],
    [['alloc', '4k', '--name', 'n'.repeat(32)]],
    [['alloc', '4k', '--name', 'é'.repeat(16)]],
    [['alloc', '4k', '--heap', '../x']],
    [['alloc', '4k', '--heap', 'a/b']],
    [['alloc', '4k', '--backend', 'gpu']],
    [['alloc', '12 parsecs']],
    [['dump', 'self']],
    [['dump', '-1']],
    [['dump', '99999999999999999999']],
  ])('%j, with and without --json', async (args) => {
    for (const a of [args, [...args, '--json']]) {
      const r = await cli(a);
      expectNoCrash(r);
      expect(r.code).toBe(2);
      expect(r.stdout.toString()).toBe('');
      expect(r.stderr).toMatch(/\nusage: dma-heap \S+/);
    }
  });

  test('an unknown command, and one with control bytes in it: exit 2, shown escaped', async () => {
    const r = await cli(['fr\x1b[2Job\u202e']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('unknown command "fr\\x1b[2Job\\u202e"');
    expectInert(Buffer.from(r.stderr));
  });

  test('a real failure stays exit 1, with stdout empty under --json', async () => {
    const r = await cli(['alloc', '4k', '--heap', 'no-such-heap', '--json']);
    expectNoCrash(r);
    expect(r).toMatchObject({ code: 1, stdout: Buffer.alloc(0) });
    expect(r.stderr).toMatch(/ENOENT/);
  });
});

describe('--json: stdout is one JSON document, on every path that writes it', () => {
  test.each([[[]], [['demo']], [['list']], [['dump']], [['dump', String(process.pid)]], [['alloc', '4k']], [['alloc', '4k', '--name', 'x\x1b\u009b\u202e\\']], [['--help']], [['dump', '--help']], [['help', 'alloc']], [['--version']]])(
    '%j --json',
    async (args) => {
      const r = await cli([...args, '--json']);
      expect(r).toMatchObject({ code: 0, stderr: '' });
      expectInert(r.stdout);
      expect(() => JSON.parse(r.stdout.toString())).not.toThrow();
    },
  );

  test('alloc --json keeps the raw name: parsed back, it is the name given', async () => {
    const name = 'x\x1b\u009b\u202e\\ ';
    const r = await cli(['alloc', '4k', '--name', name, '--json']);
    expect(JSON.parse(r.stdout.toString()).name).toBe(name);
  });

  test('a pid given twice is one process, not two sharing every buffer', async () => {
    const r = await cli(['dump', String(process.pid), String(process.pid), '--json']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const d = JSON.parse(r.stdout.toString());
    expect(d.processes.map((p: { pid: number }) => p.pid)).toEqual([process.pid]);
    expect(d.scanned).toBe(1);
    expect(d.shared).toEqual([]);
  });

  test('a pid that does not exist: exit 1, the JSON report says so; the text says it plainly', async () => {
    const r = await cli(['dump', '999999999', '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout.toString()).unreadable).toEqual([{ pid: 999999999, comm: '?', error: 'ENOENT' }]);
    const t = await cli(['dump', '999999999']);
    expect(t.code).toBe(1);
    expect(t.stdout.toString()).toMatch(/^no such process: 999999999$/m);
  });
});
