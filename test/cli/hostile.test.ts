import { spawn } from 'node:child_process';
import path from 'node:path';
import { BROKEN_PIPE, cli, expectInert, expectNoCrash, holder, root, stop } from './hostile-helpers';

/*
 * The CLI against hostile input, spawned as users run it (`npm test` builds dist/ first): a
 * reader that goes away, buffer and process names that would drive a terminal or hide a
 * buffer, processes that exit mid-scan, arguments it must refuse. (Thousands of fds:
 * hostile-scale.test.ts, on the host only.)
 * Runs wherever a heap exists: a real kernel's system heap, else the software framework's.
 */

describe('a reader that goes away ends the CLI quietly, with the status of a SIGPIPE', () => {
  test.each([[['--help']], [['--version']], [['list']], [['list', '--json']], [['dump']], [['dump', '--json']], [['dump', '1', '--json']], [['demo', '--json']], [['alloc', '4k']]])(
    'stdout closed before it writes: %j',
    async (args) => {
      const r = await cli(args, { close: 'start' });
      expect(r).toMatchObject({ code: BROKEN_PIPE, signal: null, stderr: '' });
    },
  );
});

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

test('NODE_DEBUG=dma-heap shows a heap name with control bytes escaped: stderr is often a terminal', async () => {
  const { execFile } = await import('node:child_process');
  const script = `const { openHeap } = require(${JSON.stringify(path.join(root, 'dist'))});
for (const name of ${JSON.stringify(['esc[31mred', 'csi2J', 'bidi‮evil', 'bel'])}) {
  try { openHeap(name).close(); } catch {}
}`;
  const stderr = await new Promise<Buffer>((resolve, reject) =>
    execFile(process.execPath, ['-e', script], { env: { ...process.env, NODE_DEBUG: 'dma-heap', DMA_HEAP_BACKEND: 'auto' }, encoding: 'buffer' }, (err, _out, errOut) =>
      err ? reject(err) : resolve(errOut),
    ),
  );
  expect(stderr.toString()).toContain('heap esc\\x1b[31mred: the software framework serves it');
  expectInert(stderr);
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

  test('a DMA_HEAP_BACKEND that is no backend: exit 2 from every command, not ignored by some', async () => {
    for (const args of [['list'], ['alloc', '4096'], ['demo'], ['dump', String(process.pid)]]) {
      const r = await cli(args, { env: { ...process.env, DMA_HEAP_BACKEND: 'bogus\x1b[2J' } });
      expect({ args, code: r.code, stdout: r.stdout.toString() }).toEqual({ args, code: 2, stdout: '' });
      expect(r.stderr).toContain("DMA_HEAP_BACKEND' must be 'auto', 'kernel' or 'software'");
      expectInert(Buffer.from(r.stderr));
      expectNoCrash(r);
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
