#!/usr/bin/env node
// `npm run bench`: how much the JS path costs over the same system calls made from C.
// Speed is measured and printed, never asserted: this exits 0 whatever the numbers are.
//
//   node test/bench/run.js [--runs 3] [--min-time 0.3] [--min-iters 5] [--sizes 4096,65536,...]
//                          [--only dma-heap,udmabuf,memfd,js] [--no-phases] [--no-async] [--no-extras]
//                          [--inflight 1,2,4,8] [--async-sizes 1M,16M] [--no-syscalls] [--max-iters N]
//                          [--quick] [--ref BIN] [--json FILE]
//   node test/vm/run.js -- node test/bench/run.js      # in the real-kernel VM: all three tiers
//
// 1. Compiles test/bench/ref.c with `cc -O2` (CC overrides; --ref BIN skips the build) into a
//    temp dir: the C reference doing exactly the package's syscalls per operation.
// 2. Runs --runs rounds, each the C reference for every tier this machine has, then the same
//    loop in JS through the public API (dist/), interleaved so drift hits both alike.
// 3. One more round with per-step timing (alloc, map, fill, close) in both.
// 4. allocAsync with N in flight vs the sync path, at 1 MiB and 16 MiB.
// 5. What the JS path's extra calls cost one by one (C: /proc/meminfo, lseek, fstat, heap open;
//    JS: os.totalmem(), openHeap+close, FinalizationRegistry).
// 6. With strace installed: the system calls of one operation, C vs each JS path.
// Prints tables; --json FILE also writes every number.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { performance, PerformanceObserver } = require('node:perf_hooks');
const { fewRunsWarning, shownRatio } = require('./ratio');

const ROOT = path.join(__dirname, '..', '..');
const FILL = 0xa5;
const KiB = 1024;
const MiB = 1024 * 1024;

// ---- options ----

function parseArgs(argv) {
  const o = {
    runs: 3,
    minTime: 0.3,
    minIters: 5,
    maxIters: 1000000,
    sizes: [4 * KiB, 64 * KiB, 1 * MiB, 16 * MiB],
    only: null,
    phases: true,
    async: true,
    extras: true,
    syscalls: true,
    inflight: [1, 2, 4, 8],
    asyncSizes: [1 * MiB, 16 * MiB],
    ref: null,
    json: null,
  };
  const list = (v) => v.split(',').map((s) => s.trim()).filter(Boolean);
  const num = (a, v) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) die(2, `${a} needs a positive number, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => (i + 1 < argv.length ? argv[++i] : die(2, `${a} needs a value`));
    if (a === '--runs') o.runs = Math.floor(num(a, val()));
    else if (a === '--min-time') o.minTime = num(a, val());
    else if (a === '--min-iters') o.minIters = Math.floor(num(a, val()));
    else if (a === '--max-iters') o.maxIters = Math.floor(num(a, val()));
    else if (a === '--sizes') o.sizes = list(val()).map((s) => parseSize(a, s));
    else if (a === '--async-sizes') o.asyncSizes = list(val()).map((s) => parseSize(a, s));
    else if (a === '--only') o.only = list(val());
    else if (a === '--inflight') o.inflight = list(val()).map((s) => Math.floor(num(a, s)));
    else if (a === '--no-phases') o.phases = false;
    else if (a === '--no-async') o.async = false;
    else if (a === '--no-extras') o.extras = false;
    else if (a === '--no-syscalls') o.syscalls = false;
    else if (a === '--ref') o.ref = path.resolve(val());
    else if (a === '--json') o.json = path.resolve(val());
    else if (a === '--quick') Object.assign(o, { runs: 1, minTime: 0.05, minIters: 2 });
    else if (a === '-h' || a === '--help') {
      console.log(fs.readFileSync(__filename, 'utf8').split('\n').slice(1, 20).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
      process.exit(0);
    } else die(2, `unknown option ${a} (see --help)`);
  }
  return o;
}

function parseSize(a, s) {
  const m = /^(\d+)\s*([KMG]i?B?|k)?$/i.exec(s);
  if (!m) die(2, `${a}: bad size ${s}`);
  const unit = (m[2] || '').toUpperCase()[0];
  return Number(m[1]) * (unit === 'K' ? KiB : unit === 'M' ? MiB : unit === 'G' ? 1024 * MiB : 1);
}

function die(code, msg) {
  process.stderr.write(`dma-heap bench: ${msg}\n`);
  process.exit(code);
}

// ---- the C reference ----

function buildRef(o) {
  if (o.ref) {
    if (!fs.existsSync(o.ref)) die(1, `--ref ${o.ref}: no such file`);
    return { bin: o.ref, cleanup() {} };
  }
  const cc = process.env.CC || 'cc';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dma-heap-bench-'));
  const bin = path.join(dir, 'ref');
  const args = ['-O2', '-Wall', '-I', path.join(ROOT, 'include'), '-o', bin, path.join(__dirname, 'ref.c')];
  const r = spawnSync(cc, args, { encoding: 'utf8' });
  if (r.error && r.error.code === 'ENOENT') {
    fs.rmSync(dir, { recursive: true, force: true });
    die(1, `no C compiler: '${cc}' was not found. Install one (Debian: apt-get install gcc), set CC, or pass --ref BIN (a ref built from test/bench/ref.c)`);
  }
  if (r.error || r.status !== 0) {
    fs.rmSync(dir, { recursive: true, force: true });
    die(1, `compiling test/bench/ref.c failed: ${cc} ${args.join(' ')}\n${r.stderr || r.error}`);
  }
  return { bin, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

function runRef(bin, o, tiers, phases, extras = false) {
  const args = [
    '--tiers', tiers.join(','),
    '--sizes', o.sizes.join(','),
    '--min-time', String(o.minTime),
    '--min-iters', String(o.minIters),
    '--max-iters', String(o.maxIters),
    '--warmup-time', String(o.minTime / 10),
  ];
  if (phases) args.push('--phases');
  if (extras) args.push('--extras');
  const r = spawnSync(bin, args, { encoding: 'utf8', maxBuffer: 16 * MiB });
  if (r.error || r.status !== 0) die(1, `the C reference failed (${bin} ${args.join(' ')}):\n${r.stderr || r.error}`);
  return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((c) => c.type === (extras ? 'extra' : 'cell'));
}

// ---- the JS side ----

function loadPackage() {
  const dist = path.join(ROOT, 'dist', 'index.js');
  if (!fs.existsSync(dist)) die(1, `${path.relative(process.cwd(), dist)} is missing: run 'npm run build' first (npm run bench does)`);
  return require(dist);
}

/** the commit measured, and whether lib/ or src/ differ from it (then dist/ may too) */
function gitState() {
  const git = (args) => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' });
  const head = git(['rev-parse', '--short', 'HEAD']);
  if (head.error || head.status !== 0) return null;
  const dirty = git(['status', '--porcelain', '--', 'lib', 'src', 'include']).stdout.trim() !== '';
  return `${head.stdout.trim()}${dirty ? ' + uncommitted lib/src changes' : ''}`;
}

function canAccess(p, mode) {
  try {
    fs.accessSync(p, mode);
    return true;
  } catch {
    return false;
  }
}

/**
 * The JS paths measured, each against the C tier doing the same syscalls. setup() returns the
 * per-op allocation (a DmaBuf of `size` bytes) and a teardown; `tier` is what buf.tier must say.
 */
function jsVariants(pkg, env) {
  const { openHeap, allocShareable } = pkg;
  const { Framework } = require(path.join(ROOT, 'dist', 'framework')); // the software framework's own entry point
  const heapAlloc = (open) => () => {
    const heap = open();
    return { alloc: (size) => heap.alloc(size), teardown: () => heap.close() };
  };
  const shareable = (tier) => () => ({ alloc: (size) => allocShareable(size, { tiers: [tier] }), teardown() {} });
  return [
    {
      id: 'dma-heap/heap.alloc', tier: 'dma-heap', c: 'dma-heap',
      api: "openHeap('system', {backend:'kernel'}) once; heap.alloc(size)",
      why: env.dmaHeap ? null : 'no accessible /dev/dma_heap/system',
      setup: heapAlloc(() => openHeap('system', { backend: 'kernel' })),
    },
    {
      id: 'dma-heap/allocShareable', tier: 'dma-heap', c: 'dma-heap',
      api: "allocShareable(size, {tiers:['dma-heap']}): opens and closes the heap per call",
      why: env.dmaHeap ? null : 'no accessible /dev/dma_heap/system',
      setup: shareable('dma-heap'),
    },
    {
      id: 'udmabuf/allocShareable', tier: 'udmabuf', c: 'udmabuf',
      api: "allocShareable(size, {tiers:['udmabuf']})",
      why: env.udmabuf ? null : 'no accessible /dev/udmabuf',
      setup: shareable('udmabuf'),
    },
    {
      id: 'memfd/allocShareable', tier: 'memfd', c: 'memfd',
      api: "allocShareable(size, {tiers:['memfd']}): the software framework's system heap (memfd-backed), opened per call",
      why: env.addon ? null : 'the native addon is not loaded',
      setup: shareable('memfd'),
    },
    {
      id: 'memfd/software heap.alloc', tier: 'memfd', c: 'memfd',
      api: "openHeap('system', {backend:'software'}) once (memfd backing); heap.alloc(size)",
      why: env.addon ? null : 'the native addon is not loaded',
      setup: heapAlloc(() => openHeap('system', { backend: 'software' })),
    },
    {
      id: 'js/software heap.alloc', tier: 'js', c: 'memfd',
      api: "openHeap('system', {framework: new Framework({backing:'js'})}) once; heap.alloc(size) (C column: memfd, for scale only)",
      why: null,
      setup: heapAlloc(() => openHeap('system', { framework: new Framework({ backing: 'js' }) })),
    },
  ];
}

/** GC activity, read per cell: count and milliseconds of collections. */
class GcWatch {
  constructor() {
    this.count = 0;
    this.ms = 0;
    this.obs = new PerformanceObserver((list) => this.add(list.getEntries()));
    this.obs.observe({ entryTypes: ['gc'] });
  }
  add(entries) {
    for (const e of entries) {
      this.count++;
      this.ms += e.duration;
    }
  }
  async snapshot() {
    // gc entries are delivered on a later turn of the event loop
    await new Promise((r) => setImmediate(r));
    this.add(this.obs.takeRecords ? this.obs.takeRecords() : []);
    return { count: this.count, ms: this.ms };
  }
  stop() {
    this.obs.disconnect();
  }
}

function jsCell(alloc, size, o, phases) {
  const one = () => {
    const buf = alloc(size);
    buf.bytes().fill(FILL);
    buf.close();
  };
  const warmStart = performance.now();
  for (let w = 0; w < 3 || performance.now() - warmStart < (o.minTime * 1000) / 10; w++) one();

  const ph = { alloc: 0, map: 0, fill: 0, close: 0 };
  let iters = 0;
  let elapsed;
  const start = performance.now();
  do {
    if (phases) {
      const t0 = performance.now();
      const buf = alloc(size);
      const t1 = performance.now();
      const bytes = buf.bytes();
      const t2 = performance.now();
      bytes.fill(FILL);
      const t3 = performance.now();
      buf.close();
      const t4 = performance.now();
      ph.alloc += t1 - t0;
      ph.map += t2 - t1;
      ph.fill += t3 - t2;
      ph.close += t4 - t3;
    } else {
      one();
    }
    iters++;
    elapsed = performance.now() - start;
  } while (iters < o.maxIters && (iters < o.minIters || elapsed < o.minTime * 1000));
  const cell = { iters, seconds: elapsed / 1000, us_per_op: (elapsed * 1000) / iters };
  if (phases) cell.phases_us = Object.fromEntries(Object.entries(ph).map(([k, v]) => [k, (v * 1000) / iters]));
  return cell;
}

async function runJs(variants, o, phases, gc) {
  const out = [];
  for (const v of variants) {
    const s = v.setup();
    try {
      for (const size of o.sizes) {
        const before = await gc.snapshot();
        const cell = jsCell(s.alloc, size, o, phases);
        const after = await gc.snapshot();
        // warm-up ops are included in the GC count: per op is approximate
        cell.gc = { count: after.count - before.count, ms: +(after.ms - before.ms).toFixed(3) };
        out.push({ id: v.id, size, ...cell });
      }
    } finally {
      s.teardown();
    }
  }
  return out;
}

/** Check each variant once: it must serve the tier it claims (else it is skipped, with why). */
function probeVariants(variants) {
  for (const v of variants) {
    if (v.why) continue;
    try {
      const s = v.setup();
      try {
        const buf = s.alloc(4096);
        const tier = buf.tier;
        buf.close();
        if (tier !== v.tier) v.why = `served by tier ${tier}, not ${v.tier}`;
      } finally {
        s.teardown();
      }
    } catch (err) {
      v.why = `${err.code || ''} ${err.message}`.trim();
    }
  }
}

// ---- allocAsync: throughput with N in flight vs the sync loop ----

async function asyncCell(heap, size, inflight, o) {
  const one = (buf) => {
    buf.bytes().fill(FILL);
    buf.close();
  };
  for (let w = 0; w < 3; w++) one(await heap.allocAsync(size)); // warm-up
  let done = 0;
  let started = 0;
  const start = performance.now();
  const minMs = o.minTime * 1000;
  await new Promise((resolve, reject) => {
    let failed = false;
    const launch = () => {
      started++;
      heap.allocAsync(size).then(
        (buf) => {
          one(buf);
          done++;
          if (failed) return;
          if (done + (started - done) < o.maxIters && (done < o.minIters || performance.now() - start < minMs)) launch();
          else if (done === started) resolve();
        },
        (err) => {
          failed = true;
          reject(err);
        },
      );
    };
    for (let i = 0; i < inflight; i++) launch();
  });
  const elapsed = performance.now() - start;
  return { iters: done, seconds: elapsed / 1000, us_per_op: (elapsed * 1000) / done };
}

async function runAsync(pkg, env, o) {
  const kernel = env.dmaHeap;
  const heap = kernel ? pkg.openHeap('system', { backend: 'kernel' }) : pkg.openHeap('system', { backend: 'software' });
  const label = kernel ? 'dma-heap (kernel system heap)' : 'memfd (software framework system heap: ioctlAsync is a setImmediate, no thread pool)';
  const rows = [];
  try {
    for (const size of o.asyncSizes) {
      const sync = jsCell((s) => heap.alloc(s), size, o, false);
      rows.push({ size, mode: 'sync', inflight: 1, ...sync });
      for (const n of o.inflight) rows.push({ size, mode: 'allocAsync', inflight: n, ...(await asyncCell(heap, size, n, o)) });
    }
  } finally {
    heap.close();
  }
  return { label, backend: heap.backend, threadpool: Number(process.env.UV_THREADPOOL_SIZE) || 4, rows };
}

// ---- the JS path's extra calls, one by one ----

function perCall(fn, o) {
  for (let w = 0; w < 100; w++) fn();
  let iters = 0;
  let elapsed;
  const start = performance.now();
  do {
    for (let k = 0; k < 16; k++) fn();
    iters += 16;
    elapsed = performance.now() - start;
  } while (elapsed < (o.minTime * 1000) / 3);
  return (elapsed * 1000) / iters;
}

function jsExtras(pkg, env, o) {
  const rows = [];
  rows.push({ name: 'os.totalmem()', on: '-', us_per_call: perCall(() => os.totalmem(), o) });
  const registry = new FinalizationRegistry(() => {});
  rows.push({
    name: 'FinalizationRegistry register+unregister',
    on: '-',
    us_per_call: perCall(() => {
      const token = {};
      registry.register({}, 0, token);
      registry.unregister(token);
    }, o),
  });
  if (env.dmaHeap) {
    rows.push({ name: "openHeap('system', kernel) + close", on: 'dma-heap', us_per_call: perCall(() => pkg.openHeap('system', { backend: 'kernel' }).close(), o) });
  }
  if (env.addon) {
    rows.push({ name: "openHeap('system', software) + close", on: 'memfd', us_per_call: perCall(() => pkg.openHeap('system', { backend: 'software' }).close(), o) });
  }
  return rows;
}

// ---- --syscalls: one operation under strace, C vs JS ----

const MARK = '/dma-heap-bench-mark';

/** The child: warm up one JS path, then one operation between two marker calls. */
function syscallChild(id, size) {
  const pkg = loadPackage();
  const v = jsVariants(pkg, { addon: true, dmaHeap: true, udmabuf: true }).find((x) => x.id === id);
  const s = v.setup();
  const one = () => {
    const buf = s.alloc(size);
    buf.bytes().fill(FILL);
    buf.close();
  };
  for (let i = 0; i < 50; i++) one();
  const mark = (what) => {
    try {
      fs.accessSync(`${MARK}/${what}/${id}`);
    } catch {}
  };
  mark('start');
  one();
  mark('end');
  s.teardown();
}

/** strace's lines between the markers, for the marking thread only, as "name(path)" keys. */
function parseTrace(file, tag) {
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  const start = lines.findIndex((l) => l.includes(`${MARK}/start/${tag}"`));
  const end = lines.findIndex((l) => l.includes(`${MARK}/end/${tag}"`));
  if (start < 0 || end < 0) return null;
  const pid = lines[start].split(/\s+/)[0];
  const calls = [];
  for (const l of lines.slice(start + 1, end)) {
    const m = /^(\d+)\s+(?:<\.\.\. )?(\w+)(?:\(| resumed>)/.exec(l);
    if (!m || m[1] !== pid || m[2] === 'futex') continue;
    const pathArg = /^\d+\s+\w+\((?:AT_FDCWD, )?"([^"]*)"/.exec(l);
    calls.push(pathArg ? `${m[2]}(${pathArg[1].replace(/\/\d+$/, '/N')})` : m[2]);
  }
  return calls;
}

function multisetDiff(a, b) {
  const counts = new Map();
  for (const x of a) counts.set(x, (counts.get(x) || 0) + 1);
  for (const x of b) counts.set(x, (counts.get(x) || 0) - 1);
  const plus = [];
  const minus = [];
  for (const [k, n] of counts) {
    if (n > 0) plus.push(n > 1 ? `${n}x ${k}` : k);
    if (n < 0) minus.push(-n > 1 ? `${-n}x ${k}` : k);
  }
  return { plus, minus };
}

function runSyscalls(refBin, tiers, live) {
  const probe = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  if (probe.error) {
    console.log('--syscalls: strace is not installed (Debian: apt-get install strace); skipped\n');
    return null;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dma-heap-strace-'));
  const size = 64 * KiB;
  const out = { size, c: {}, js: {} };
  try {
    const cFile = path.join(dir, 'c');
    spawnSync('strace', ['-f', '-qq', '-o', cFile, refBin, '--trace-one', '--tiers', tiers.join(','), '--sizes', String(size)], { encoding: 'utf8' });
    for (const t of tiers) out.c[t] = parseTrace(cFile, t);
    for (const v of live) {
      const file = path.join(dir, v.id.replace(/\W/g, '_'));
      spawnSync('strace', ['-f', '-qq', '-o', file, process.execPath, __filename, '--syscall-child', v.id, String(size)], { encoding: 'utf8' });
      out.js[v.id] = parseTrace(file, v.id);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const rows = live.map((v) => {
    const c = out.c[v.c] || [];
    const js = out.js[v.id];
    if (!js) return [v.tier, v.id.split('/')[1], String(c.length), '?', 'trace failed'];
    const d = multisetDiff(js, c);
    return [v.tier, v.id.split('/')[1], String(c.length), String(js.length), [...d.plus.map((x) => `+${x}`), ...d.minus.map((x) => `-${x}`)].join(', ')];
  });
  console.log(`system calls of one ${sizeLabel(size)} operation (strace; futex left out)`);
  console.log(table(['tier', 'JS path', 'C', 'JS', 'JS has in addition (+) / fewer (-)'], rows, 'llrrl'));
  console.log();
  return out;
}

// ---- statistics and printing ----

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** (max - min) / median, as a percentage */
const spread = (xs) => (xs.length > 1 ? ((Math.max(...xs) - Math.min(...xs)) / median(xs)) * 100 : 0);

function sizeLabel(n) {
  if (n % MiB === 0) return `${n / MiB} MiB`;
  if (n % KiB === 0) return `${n / KiB} KiB`;
  return `${n} B`;
}

function fmtUs(us) {
  if (us >= 10000) return us.toFixed(0);
  if (us >= 100) return us.toFixed(1);
  return us.toFixed(2);
}

/** align: one letter per column, l or r; default: two left, the rest right */
function table(headers, rows, align = 'll') {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const left = (i) => (align[i] || 'r') === 'l';
  const line = (cells) => cells.map((c, i) => (left(i) ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ').trimEnd();
  return [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

// ---- main ----

async function main() {
  if (process.argv[2] === '--syscall-child') return syscallChild(process.argv[3], Number(process.argv[4]));
  const o = parseArgs(process.argv.slice(2));
  const pkg = loadPackage();
  const addon = pkg.addonStatus();
  const env = {
    addon: addon.loaded,
    dmaHeap: addon.loaded && canAccess('/dev/dma_heap/system', fs.constants.R_OK),
    udmabuf: addon.loaded && canAccess('/dev/udmabuf', fs.constants.R_OK | fs.constants.W_OK),
    inVm: process.env.DMA_HEAP_IN_VM === '1',
  };
  // the C reference runs wherever the device is, addon or not
  const cTierSet = new Set(['memfd']);
  if (canAccess('/dev/dma_heap/system', fs.constants.R_OK)) cTierSet.add('dma-heap');
  if (canAccess('/dev/udmabuf', fs.constants.R_OK | fs.constants.W_OK)) cTierSet.add('udmabuf');

  const ref = buildRef(o); // first: no compiler fails before any measuring
  let variants = jsVariants(pkg, env);
  if (o.only) variants = variants.filter((v) => o.only.includes(v.tier));
  probeVariants(variants);
  const live = variants.filter((v) => !v.why);
  const tiers = ['dma-heap', 'udmabuf', 'memfd'].filter((t) => cTierSet.has(t) && (!o.only || o.only.includes(t) || (t === 'memfd' && o.only.includes('js'))));

  const meta = {
    date: new Date().toISOString(),
    commit: gitState(),
    node: process.version,
    kernel: os.release(),
    cpu: os.cpus()[0]?.model,
    cpus: os.cpus().length,
    loadavg_start: os.loadavg(),
    inVm: env.inVm,
    addon,
    cTiers: tiers,
    options: { runs: o.runs, minTime: o.minTime, minIters: o.minIters, sizes: o.sizes },
    skipped: variants.filter((v) => v.why).map((v) => ({ id: v.id, why: v.why })),
  };
  console.log(`dma-heap bench: Node ${process.version}, Linux ${os.release()}${env.inVm ? ' (qemu TCG VM: compare ratios, not times)' : ''}, ${meta.cpus} CPUs, addon ${addon.loaded ? 'loaded' : `not loaded (${addon.reason})`}`);
  if (meta.commit) console.log(`commit ${meta.commit}; dist/ built ${fs.statSync(path.join(ROOT, 'dist', 'index.js')).mtime.toISOString()}`);
  console.log(`C tiers: ${tiers.join(', ')}; JS paths: ${live.map((v) => v.id).join(', ') || 'none'}`);
  for (const s of meta.skipped) console.log(`  skipped ${s.id}: ${s.why}`);
  console.log(`${o.runs} run(s), each cell >= ${o.minTime} s and >= ${o.minIters} ops after warm-up\n`);

  const gc = new GcWatch();
  const cRuns = [];
  const jsRuns = [];
  const results = { meta, cells: [], phases: [], async: null, extras: null };
  try {
    for (let r = 0; r < o.runs; r++) {
      process.stderr.write(`run ${r + 1}/${o.runs}: C...`);
      cRuns.push(tiers.length ? runRef(ref.bin, o, tiers, false) : []);
      process.stderr.write(' JS...');
      jsRuns.push(await runJs(live, o, false, gc));
      process.stderr.write(' done\n');
    }

    // headline table: medians over runs
    const rows = [];
    for (const v of live) {
      for (const size of o.sizes) {
        const cs = cRuns.map((run) => run.find((c) => c.tier === v.c && c.size === size)).filter(Boolean);
        const js = jsRuns.map((run) => run.find((c) => c.id === v.id && c.size === size)).filter(Boolean);
        const cUs = cs.map((c) => c.us_per_op);
        const jsUs = js.map((c) => c.us_per_op);
        const cMed = cUs.length ? median(cUs) : NaN;
        const jsMed = median(jsUs);
        const gcCount = js.reduce((n, c) => n + c.gc.count, 0);
        const gcMs = js.reduce((n, c) => n + c.gc.ms, 0);
        const ops = js.reduce((n, c) => n + c.iters, 0);
        const cell = {
          id: v.id, tier: v.tier, api: v.api, size, c_tier: v.c,
          c_us: cMed, js_us: jsMed, ratio: jsMed / cMed, ratio_best: Math.min(...jsUs) / Math.min(...cUs),
          c_runs_us: cUs, js_runs_us: jsUs, c_spread_pct: spread(cUs), js_spread_pct: spread(jsUs),
          js_iters: js.map((c) => c.iters), c_iters: cs.map((c) => c.iters),
          gc_per_1000_ops: (gcCount * 1000) / ops, gc_ms_per_op: gcMs / ops,
        };
        results.cells.push(cell);
        rows.push([
          v.tier, v.id.split('/')[1], sizeLabel(size), fmtUs(cMed), fmtUs(jsMed),
          shownRatio(cell.ratio, v.tier),
          shownRatio(cell.ratio_best, v.tier),
          `±${(cell.c_spread_pct / 2).toFixed(0)}% / ±${(cell.js_spread_pct / 2).toFixed(0)}%`,
          cell.gc_per_1000_ops.toFixed(1),
        ]);
      }
    }
    const warning = fewRunsWarning(o.runs);
    if (warning) console.log(warning);
    console.log(table(['tier', 'JS path', 'size', 'C µs/op', 'JS µs/op', 'JS/C', 'best', 'spread C/JS', 'GCs/1k ops'], rows));
    console.log('(medians of the runs; best = fastest JS run / fastest C run; spread = half the max-min range over the median;');
    console.log(' GCs counted over warm-up and runs; js tier: the C column is memfd, for scale only)\n');

    if (o.phases) {
      process.stderr.write('per-step run: C... ');
      const cPh = tiers.length ? runRef(ref.bin, o, tiers, true) : [];
      process.stderr.write('JS... ');
      const jsPh = await runJs(live, o, true, gc);
      process.stderr.write('done\n');
      const prow = [];
      for (const v of live) {
        for (const size of o.sizes) {
          const c = cPh.find((x) => x.tier === v.c && x.size === size);
          const j = jsPh.find((x) => x.id === v.id && x.size === size);
          if (!j) continue;
          results.phases.push({ id: v.id, size, c: c?.phases_us, js: j.phases_us });
          const pair = (k) => `${c ? fmtUs(c.phases_us[k]) : '-'} / ${fmtUs(j.phases_us[k])}`;
          prow.push([v.tier, v.id.split('/')[1], sizeLabel(size), pair('alloc'), pair('map'), pair('fill'), pair('close')]);
        }
      }
      console.log(table(['tier', 'JS path', 'size', 'alloc C/JS µs', 'map C/JS µs', 'fill C/JS µs', 'unmap+close C/JS µs'], prow));
      console.log('(one run with a clock read around each step; alloc = ioctl or memfd calls, + DmaBuf in JS; map = mmap, + ArrayBuffer in JS)\n');
    }

    if (o.async && env.addon) {
      process.stderr.write('allocAsync... ');
      results.async = await runAsync(pkg, env, o);
      process.stderr.write('done\n');
      const a = results.async;
      const arow = a.rows.map((r) => {
        const sync = a.rows.find((x) => x.size === r.size && x.mode === 'sync');
        return [sizeLabel(r.size), r.mode, r.mode === 'sync' ? '-' : String(r.inflight), fmtUs(r.us_per_op), (1e6 / r.us_per_op).toFixed(1), (sync.us_per_op / r.us_per_op).toFixed(2)];
      });
      console.log(`allocAsync vs alloc on ${a.label}; libuv pool ${a.threadpool} threads; op = alloc, fill, close`);
      console.log(table(['size', 'path', 'in flight', 'µs/op (wall)', 'ops/s', 'x sync'], arow));
      console.log();
    }

    if (o.extras) {
      process.stderr.write('extra calls... ');
      const cx = runRef(ref.bin, { ...o, minTime: o.minTime / 3 }, tiers, false, true);
      const jx = jsExtras(pkg, env, o);
      process.stderr.write('done\n');
      results.extras = { c: cx, js: jx };
      const xrow = [...cx.map((x) => ['C', x.name, x.on, fmtUs(x.us_per_call)]), ...jx.map((x) => ['JS', x.name, x.on, fmtUs(x.us_per_call)])];
      console.log('what the extra calls cost, one at a time');
      console.log(table(['impl', 'call', 'on', 'µs/call'], xrow, 'lll'));
      console.log();
    }

    if (o.syscalls) results.syscalls = runSyscalls(ref.bin, tiers, live);
  } finally {
    gc.stop();
    ref.cleanup();
  }

  meta.loadavg_end = os.loadavg();
  console.log(`load average: ${meta.loadavg_start.map((x) => x.toFixed(2)).join(' ')} at start, ${meta.loadavg_end.map((x) => x.toFixed(2)).join(' ')} at end (other work on the machine widens the spread)`);
  if (o.json) {
    fs.mkdirSync(path.dirname(o.json), { recursive: true });
    fs.writeFileSync(o.json, JSON.stringify({ ...results, c_raw: cRuns, js_raw: jsRuns }, null, 2) + '\n');
    console.log(`results: ${o.json}`);
  }
}

main().catch((err) => {
  process.stderr.write(`dma-heap bench: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
