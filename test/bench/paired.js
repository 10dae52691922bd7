#!/usr/bin/env node
// `npm run bench`: the package against C doing the same syscalls, in ONE process.
// Speed is measured and printed, never asserted: this exits 0 whatever the numbers are.
//
//   node test/bench/paired.js [--rounds 11] [--batch-ms 25] [--sizes 4096,65536,1M,16M]
//                             [--quick] [--no-probe] [--no-lag] [--json FILE]
//                             [--only cells,steps,shareable,pool,children]
//
// 1. Builds test/bench/refmod.c (cc, node's headers) into a temp dir: a bench-only N-API module
//    that runs a batch of C operations per call. Never shipped.
// 2. For every cell (a JS path and its C twin, one size) runs --rounds rounds; each round is one
//    C batch and one JS batch of the same op count, their order alternating round by round.
//    The ratio JS/C is taken per round (thread CPU time, CLOCK_THREAD_CPUTIME_ID, so other
//    processes on the machine do not count; wall time too) and reported as the median of those
//    paired ratios with their spread (quartiles). One more set of rounds times each step.
// 3. A child process under strace counts the syscalls of 100 operations per path between two
//    marker calls, and counts crossings into the addon (a counting wrapper of its exports).
// 4. A child with --expose-gc measures GC per 1,000 buffers and the heap after a 100k-buffer
//    loop that never yields; another the event-loop lag while allocAsync runs 64 MiB
//    allocations back to back.
// 5. allocShareable against heap.alloc of the same tier, paired directly (JS batch against JS
//    batch, alternating), for the target that compares the two.
// 6. Prints every target of issue 11 beside what was measured. --only runs some sections.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { performance, PerformanceObserver, monitorEventLoopDelay } = require('node:perf_hooks');
const { markAsUntransferable } = require('node:worker_threads');

const ROOT = path.join(__dirname, '..', '..');
const FILL = 0xa5;
const KiB = 1024;
const MiB = 1024 * KiB;
const T = { 'dma-heap': 0, udmabuf: 1, memfd: 2 };

function die(msg) {
  process.stderr.write(`dma-heap bench: ${msg}\n`);
  process.exit(1);
}

function parseSize(s) {
  const m = /^(\d+)\s*([KMG])?i?B?$/i.exec(s.trim());
  if (!m) die(`bad size ${s}`);
  const u = (m[2] || '').toUpperCase();
  return Number(m[1]) * (u === 'K' ? KiB : u === 'M' ? MiB : u === 'G' ? 1024 * MiB : 1);
}

/** the comment at the top, for --help: every line before 'use strict' */
const HEADER_LINES = fs.readFileSync(__filename, 'utf8').split('\n').indexOf("'use strict';");
const SECTIONS = ['cells', 'steps', 'shareable', 'pool', 'children'];

function parseArgs(argv) {
  const o = { only: null, noYield: 100000, rounds: 11, batchMs: 25, sizes: [4 * KiB, 64 * KiB, 1 * MiB, 16 * MiB], probe: true, lag: true, json: null, mode: 'main' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => argv[++i] ?? die(`${a} needs a value`);
    if (a === '--rounds') o.rounds = Number(v());
    else if (a === '--batch-ms') o.batchMs = Number(v());
    else if (a === '--sizes') o.sizes = v().split(',').map(parseSize);
    else if (a === '--quick') Object.assign(o, { rounds: 5, batchMs: 8, sizes: [4 * KiB, 1 * MiB], noYield: 20000 });
    else if (a === '--no-yield-buffers') o.noYield = Number(v());
    else if (a === '--no-probe') o.probe = false;
    else if (a === '--no-lag') o.lag = false;
    else if (a === '--json') o.json = path.resolve(v());
    else if (a === '--only') {
      o.only = new Set(v().split(','));
      for (const x of o.only) if (!SECTIONS.includes(x)) die(`--only takes ${SECTIONS.join(', ')}; not ${x}`);
    }
    else if (a === '--child') o.mode = v(); // internal: probe | gc | lag
    else if (a === '--refmod') o.refmod = v(); // internal
    else if (a === '-h' || a === '--help') {
      console.log(fs.readFileSync(__filename, 'utf8').split('\n').slice(1, HEADER_LINES).map((l) => l.replace(/^\/\/ ?/, '')).join('\n'));
      process.exit(0);
    } else die(`unknown option ${a}`);
  }
  return o;
}

// ---- the C module ----

function nodeHeaders() {
  const cands = [
    process.env.NODE_INCLUDE,
    path.resolve(path.dirname(process.execPath), '..', 'include', 'node'),
    path.join(os.homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node'),
  ].filter(Boolean);
  return cands.find((d) => fs.existsSync(path.join(d, 'node_api.h')));
}

function buildRefmod() {
  const inc = nodeHeaders();
  if (!inc) die("node's headers (node_api.h) were not found: set NODE_INCLUDE, or run `npx node-gyp install`");
  const cc = process.env.CC || 'cc';
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dma-heap-refmod-'));
  const out = path.join(dir, 'refmod.node');
  const args = ['-O2', '-Wall', '-shared', '-fPIC', '-DNODE_GYP_MODULE_NAME=refmod', '-I', inc, '-I', path.join(ROOT, 'include'), '-o', out, path.join(__dirname, 'refmod.c')];
  const r = spawnSync(cc, args, { encoding: 'utf8' });
  if (r.error || r.status !== 0) die(`building test/bench/refmod.c failed (${cc} ${args.join(' ')}):\n${r.stderr || r.error}`);
  return { file: out, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

// ---- the package, with a counting proxy over the addon's exports ----

const crossings = { on: false, n: 0, by: {} };

function addonFile() {
  if (process.env.DMA_HEAP_ADDON === '0') return null;
  try {
    if (process.env.DMA_HEAP_ADDON_PATH) return path.resolve(process.env.DMA_HEAP_ADDON_PATH);
    return require('node-gyp-build').path(ROOT);
  } catch {
    return null;
  }
}

function loadPackage(count) {
  const file = addonFile();
  if (count && file) {
    // every require() of the addon now gets the proxy: the package cannot tell
    const real = require(file);
    const counting = {};
    for (const key of Object.keys(real)) {
      const v = real[key];
      counting[key] =
        typeof v !== 'function'
          ? v
          : function (...args) {
              if (crossings.on) {
                crossings.n++;
                crossings.by[key] = (crossings.by[key] || 0) + 1;
              }
              return v.apply(real, args);
            };
    }
    require.cache[file].exports = counting;
  }
  const dist = path.join(ROOT, 'dist', 'index.js');
  if (!fs.existsSync(dist)) die('dist/ is missing: run `npm run build` first (npm run bench does)');
  return require(dist);
}

// ---- the paths ----

/** Each path: a JS op (alloc, map, fill, unmap+close) and the C tier doing the same syscalls. */
function paths(pkg, env, refmod) {
  const { openHeap, allocShareable } = pkg;
  const { Framework } = require(path.join(ROOT, 'dist', 'framework')); // the software framework's own entry point
  const list = [];
  const per = (id, c, tier, make, note) => list.push({ id, c, tier, make, note });
  if (env.dmaHeap) {
    per('heap.alloc (kernel)', 'dma-heap', 'dma-heap', () => {
      const h = openHeap('system', { backend: 'kernel' });
      return { alloc: (n) => h.alloc(n), done: () => h.close() };
    });
    per('allocShareable dma-heap', 'dma-heap', 'dma-heap', () => ({ alloc: (n) => allocShareable(n, { tiers: ['dma-heap'] }), done() {} }));
  }
  if (env.udmabuf) per('allocShareable udmabuf', 'udmabuf', 'udmabuf', () => ({ alloc: (n) => allocShareable(n, { tiers: ['udmabuf'] }), done() {} }));
  if (env.addon) {
    per('heap.alloc (software, memfd)', 'memfd', 'memfd', () => {
      const h = openHeap('system', { backend: 'software' });
      return { alloc: (n) => h.alloc(n), done: () => h.close() };
    });
    per('allocShareable memfd', 'memfd', 'memfd', () => ({ alloc: (n) => allocShareable(n, { tiers: ['memfd'] }), done() {} }));
  }
  per('heap.alloc (software, js)', null, 'js', () => {
    const h = openHeap('system', { framework: new Framework({ backing: 'js' }) });
    return { alloc: (n) => h.alloc(n), done: () => h.close() };
  }, 'against Buffer.alloc(n).fill()');
  // The floors: what the same op costs with nothing of the package's JS above its memory, to
  // tell the cost of the layers from the cost of the mechanism.
  if (env.addon) {
    const addon = require(addonFile());
    per(FLOOR_MEMFD, 'memfd', 'memfd', () => ({ alloc: (n) => addonFloor(addon, n), done() {} }));
    per(FLOOR_BARE, 'memfd', 'memfd', () => ({ alloc: (n) => bareFloor(refmod, n), done() {} }));
  }
  per(FLOOR_JS, null, 'js', () => ({ alloc: jsMemoryFloor, done() {} }), 'against Buffer.alloc(n).fill()');
  return list;
}

const FLOOR_MEMFD = 'floor: the addon calls alone';
const FLOOR_JS = 'floor: JS-tier memory alone';
const FLOOR_BARE = 'floor: 2 bare N-API calls';

/**
 * The issue's 1.08x prototype shape, in refmod.c: allocate+map, then unmap+close, two calls and
 * an external ArrayBuffer with none of the addon's safety. What any N-API addon pays at least.
 */
const fdSlot = new Int32Array(1);
function bareFloor(refmod, size) {
  const ab = refmod.allocMap(size, fdSlot);
  const fd = fdSlot[0];
  return { bytes: () => new Uint8Array(ab), close: () => refmod.unmapClose(fd, ab) };
}

/** the software memfd path's addon calls with no framework: memfdBuffer, mmap, closeMapped */
function addonFloor(addon, size) {
  const fd = addon.memfdBuffer('dma-heap:system', size, 7 /* F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL */);
  let mapping;
  return {
    bytes: () => new Uint8Array((mapping = addon.mmap(fd, size, 0, true, true))),
    close: () => addon.closeMapped(fd, mapping),
  };
}

/** the JS tier's memory with no framework: an untransferable resizable ArrayBuffer, cut off by
 *  shrinking it to nothing (lib/framework/backing.ts jsMemory and retire) */
function jsMemoryFloor(size) {
  const memory = new ArrayBuffer(size, { maxByteLength: size });
  markAsUntransferable(memory);
  return { bytes: () => new Uint8Array(memory), close: () => memory.resize(0) };
}

function jsBatch(alloc, size, n) {
  for (let i = 0; i < n; i++) {
    const b = alloc(size);
    b.bytes().fill(FILL);
    b.close();
  }
}

function jsPhases(alloc, size, n, ph) {
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const b = alloc(size);
    const t1 = performance.now();
    const bytes = b.bytes();
    const t2 = performance.now();
    bytes.fill(FILL);
    const t3 = performance.now();
    b.close();
    const t4 = performance.now();
    ph[0] += t1 - t0;
    ph[1] += t2 - t1;
    ph[2] += t3 - t2;
    ph[3] += t4 - t3;
  }
}

// ---- statistics ----

function quantile(sorted, q) {
  if (!sorted.length) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}
function summary(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return { median: quantile(s, 0.5), q1: quantile(s, 0.25), q3: quantile(s, 0.75), min: s[0], max: s[s.length - 1], n: s.length };
}
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : '–');
const fmtRatio = (s) => `${f2(s.median)} [${f2(s.q1)}–${f2(s.q3)}]`;
function fmtUs(ns) {
  const us = ns / 1000;
  return us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : us >= 10 ? `${us.toFixed(1)} µs` : `${us.toFixed(2)} µs`;
}
const sizeName = (n) => (n >= MiB ? `${n / MiB} MiB` : `${n / KiB} KiB`);

/**
 * Paired rounds: `c(n)` and `js(n)` each return { wall, cpu } in ns for n ops. The op count is
 * calibrated once so a C batch lasts about batchMs; order alternates each round.
 */
function paired(c, js, o, minN = 3) {
  c(2);
  js(2); // warm
  // the op count: a C batch lasts about batchMs, unless that makes the JS batch far longer
  let n = 1;
  for (;;) {
    const t = c(n);
    if (t.wall >= o.batchMs * 1e6 / 4 || n >= 1 << 20) break;
    n *= 2;
  }
  n = Math.max(minN, n * 4);
  while (n > minN && js(n).wall > 8 * o.batchMs * 1e6) n = Math.max(minN, n >> 2);
  js(Math.max(1, n >> 2)); // JIT warm at the real batch shape
  const cpu = [];
  const wall = [];
  const cNs = [];
  const jsNs = [];
  for (let r = 0; r < o.rounds; r++) {
    let a;
    let b;
    if (r % 2) {
      b = js(n);
      a = c(n);
    } else {
      a = c(n);
      b = js(n);
    }
    cpu.push(b.cpu / a.cpu);
    wall.push(b.wall / a.wall);
    cNs.push(a.cpu / n);
    jsNs.push(b.cpu / n);
  }
  return { n, cpu: summary(cpu), wall: summary(wall), cNs: summary(cNs).median, jsNs: summary(jsNs).median };
}

function timed(refmod, fn) {
  return (n) => {
    const w0 = process.hrtime.bigint();
    const c0 = refmod.cpuNs();
    fn(n);
    const c1 = refmod.cpuNs();
    return { wall: Number(process.hrtime.bigint() - w0), cpu: c1 - c0 };
  };
}

function cRun(refmod, tier, size, dev, phases) {
  return (n) => {
    const r = refmod.run(T[tier], size, n, dev, phases ? 1 : 0);
    return { wall: r[0], cpu: r[1], ph: r.slice(2) };
  };
}

// ---- main: paired cells ----

async function main(o) {
  const ref = buildRefmod();
  const refmod = require(ref.file);
  const pkg = loadPackage(false);
  const env = {
    addon: pkg.addonStatus().loaded,
    dmaHeap: pkg.addonStatus().loaded && canAccess('/dev/dma_heap/system', fs.constants.R_OK),
    udmabuf: pkg.addonStatus().loaded && canAccess('/dev/udmabuf', fs.constants.R_OK | fs.constants.W_OK),
  };
  const devs = {};
  if (env.dmaHeap) devs['dma-heap'] = refmod.openDev('/dev/dma_heap/system');
  if (env.udmabuf) devs.udmabuf = refmod.openDev('/dev/udmabuf');
  const meta = {
    kernel: os.release(),
    node: process.version,
    commit: gitState(),
    cpus: os.cpus().length,
    load: os.loadavg().map((x) => x.toFixed(2)).join(' '),
    env,
    rounds: o.rounds,
    batchMs: o.batchMs,
  };
  console.log(`dma-heap paired bench: Linux ${meta.kernel}, Node ${meta.node}, ${meta.cpus} CPUs, load ${meta.load}, commit ${meta.commit}`);
  console.log(`${o.rounds} rounds per cell, C and JS batches alternating; ratios are JS/C per round on thread CPU time: median [quartiles]\n`);
  const results = { meta, cells: [], steps: [], shareable: [], pool: [], probe: null, gc: null, lag: null };
  const run = (section) => !o.only || o.only.has(section);

  // 1. alloc+map+fill+unmap+close per path and size
  const rows = [];
  for (const p of run('cells') ? paths(pkg, env, refmod) : []) {
    const made = p.make();
    try {
      for (const size of o.sizes) {
        let cell;
        if (p.c) {
          cell = paired(cRun(refmod, p.c, size, devs[p.c] ?? -1, false), timed(refmod, (n) => jsBatch(made.alloc, size, n)), o);
        } else {
          const base = (n) => {
            for (let i = 0; i < n; i++) Buffer.alloc(size).fill(FILL);
          };
          cell = paired(timed(refmod, base), timed(refmod, (n) => jsBatch(made.alloc, size, n)), o);
        }
        const row = { path: p.id, against: p.c ? `C ${p.c}` : 'Buffer.alloc(n).fill', size, ...cell };
        rows.push(row);
        results.cells.push(row);
        console.log(
          `${p.id.padEnd(30)} ${sizeName(size).padStart(7)}  ${row.against.padEnd(22)} ${fmtUs(cell.cNs).padStart(9)} ${fmtUs(cell.jsNs).padStart(9)}  cpu ${fmtRatio(cell.cpu)}  wall ${fmtRatio(cell.wall)}  (${cell.n}/batch)`,
        );
      }
    } finally {
      made.done();
    }
  }

  // 2. per step, memfd or kernel heap.alloc against C (wall clock around each step)
  if (run('steps')) console.log('\nper step (wall, median of rounds): C / JS µs and JS/C');
  for (const p of run('steps') ? paths(pkg, env, refmod).filter((x) => x.c) : []) {
    const made = p.make();
    try {
      for (const size of o.sizes) {
        const ratios = [[], [], [], []];
        const cs = [[], [], [], []];
        const js = [[], [], [], []];
        let n = 0;
        const c = cRun(refmod, p.c, size, devs[p.c] ?? -1, true);
        c(2);
        jsPhases(made.alloc, size, 4, [0, 0, 0, 0]);
        for (n = 1; c(n).wall < (o.batchMs * 1e6) / 2 && n < 1 << 18; n *= 2);
        for (let r = 0; r < Math.max(3, o.rounds >> 1); r++) {
          const a = c(n).ph;
          const ph = [0, 0, 0, 0];
          jsPhases(made.alloc, size, n, ph);
          for (let k = 0; k < 4; k++) {
            ratios[k].push((ph[k] * 1e6) / a[k]);
            cs[k].push(a[k] / n);
            js[k].push((ph[k] * 1e6) / n);
          }
        }
        const names = ['alloc', 'map', 'fill', 'unmap+close'];
        const step = { path: p.id, size, steps: {} };
        const parts = names.map((nm, k) => {
          const s = { c_ns: summary(cs[k]).median, js_ns: summary(js[k]).median, ratio: summary(ratios[k]) };
          step.steps[nm] = s;
          return `${nm} ${fmtUs(s.c_ns)} / ${fmtUs(s.js_ns)} (${f2(s.ratio.median)})`;
        });
        results.steps.push(step);
        console.log(`${p.id.padEnd(30)} ${sizeName(size).padStart(7)}  ${parts.join(', ')}`);
      }
    } finally {
      made.done();
    }
  }

  // 3. allocShareable against heap.alloc, paired directly
  if (run('shareable')) shareablePairs(pkg, env, refmod, o, results);

  // 4. pools: a JS pool vs a C ring vs alloc-per-frame (the heap.alloc path)
  if (run('pool')) console.log('\nper frame: BufferPool (acquire, fill, release) against a C ring of the same buffers and against alloc-per-frame');
  const poolHeapOpts = env.dmaHeap ? { backend: 'kernel' } : env.addon ? { backend: 'software' } : { framework: new (require(path.join(ROOT, 'dist', 'framework')).Framework)({ backing: 'js' }) };
  const ringTier = env.dmaHeap ? 'dma-heap' : 'memfd';
  const { createPool } = require(path.join(ROOT, 'dist', 'pool.js'));
  const heap = pkg.openHeap('system', poolHeapOpts);
  for (const size of run('pool') ? o.sizes : []) {
    for (const zero of [false, true]) {
      if (zero && size > 1 * MiB) continue;
      const pool = createPool(heap, { size, count: 4, zeroOnRelease: zero });
      const frame = (n) => {
        for (let i = 0; i < n; i++) {
          const b = pool.acquire();
          b.bytes().fill(FILL);
          b.release();
        }
      };
      let cell;
      if (env.addon) cell = paired((n) => ((r) => ({ wall: r[0], cpu: r[1] }))(refmod.ring(T[ringTier], size, 4, n, devs[ringTier] ?? -1, zero ? 1 : 0)), timed(refmod, frame), o);
      const perFrame = zero ? null : paired(timed(refmod, frame), timed(refmod, (n) => jsBatch((s) => heap.alloc(s), size, n)), o);
      pool.close();
      const row = { size, zeroOnRelease: zero, vsCRing: cell ?? null, allocPerFrameVsPool: perFrame };
      results.pool.push(row);
      console.log(
        `pool${zero ? ' zeroOnRelease' : ''} ${sizeName(size).padStart(7)}: ${cell ? `C ring ${fmtUs(cell.cNs)}, pool ${fmtUs(cell.jsNs)}, pool/C ring ${fmtRatio(cell.cpu)}` : '(no C ring without the addon)'}` +
          (perFrame ? `; alloc-per-frame ${fmtUs(perFrame.jsNs)} = ${f2(perFrame.cpu.median)}× the pool` : ''),
      );
    }
  }
  heap.close();
  for (const fd of Object.values(devs)) refmod.closeFd(fd);

  // 5. children: syscalls and crossings, GC, event-loop lag
  if (run('children')) {
    if (o.probe) results.probe = probeChild(ref.file, env);
    results.gc = child(ref.file, 'gc', ['--expose-gc'], ['--no-yield-buffers', String(o.noYield)]);
    if (o.lag) results.lag = child(ref.file, 'lag', []);
  }
  printChildren(results);
  printTargets(results, env);
  if (o.json) {
    fs.mkdirSync(path.dirname(o.json), { recursive: true });
    fs.writeFileSync(o.json, JSON.stringify(results, null, 1));
    console.log(`\nwrote ${o.json}`);
  }
  ref.cleanup();
}

/**
 * allocShareable against heap.alloc of the heap it allocates from, paired: each round one batch
 * of each (alloc, map, fill, close), their order alternating, the ratio taken per round on
 * thread CPU time. Dividing the two JS/C medians of the cells above instead compares batches
 * run seconds apart, of different op counts (each cell calibrates its own), under whatever
 * load each met: that quotient moved ±0.07 from run to run with neither path changed.
 *
 * - 'tier forced': allocShareable(n, { tiers: [tier] }), the tier heap.alloc's heap is: the
 *   same mechanism on both sides, so the ratio is allocShareable's own layer (the target).
 * - 'default': allocShareable(n), as most callers write it. Where a stronger tier is missing
 *   (no /dev/dma_heap, no /dev/udmabuf) it looks for it again on every call (a device can
 *   appear: modprobe) before the tier that serves: printed, not held to the target.
 */
function shareablePairs(pkg, env, refmod, o, results) {
  const tier = env.dmaHeap ? 'dma-heap' : env.addon ? 'memfd' : null;
  if (!tier) return;
  const heap = pkg.openHeap('system', { backend: env.dmaHeap ? 'kernel' : 'software' });
  const forced = { tiers: [tier] };
  const kinds = [
    ['tier forced', (n) => pkg.allocShareable(n, forced)],
    ['default', (n) => pkg.allocShareable(n)],
  ];
  console.log(`\nallocShareable against heap.alloc (${heap.backend}, ${heap.backing}), paired: allocShareable/heap.alloc per round, thread CPU time`);
  try {
    for (const [kind, share] of kinds) {
      const served = share(4096);
      const same = served.tier === tier;
      served.close();
      for (const size of o.sizes) {
        const cell = paired(timed(refmod, (n) => jsBatch((s) => heap.alloc(s), size, n)), timed(refmod, (n) => jsBatch(share, size, n)), o);
        const row = { kind, tier: served.tier, size, ...cell };
        results.shareable.push(row);
        console.log(
          `allocShareable ${kind.padEnd(11)} (${served.tier}${same ? '' : `, not ${tier}`}) ${sizeName(size).padStart(7)}  heap.alloc ${fmtUs(cell.cNs).padStart(9)}  allocShareable ${fmtUs(cell.jsNs).padStart(9)}  cpu ${fmtRatio(cell.cpu)}  wall ${fmtRatio(cell.wall)}  (${cell.n}/batch)`,
        );
      }
    }
  } finally {
    heap.close();
  }
}

function canAccess(p, mode) {
  try {
    fs.accessSync(p, mode);
    return true;
  } catch {
    return false;
  }
}

function gitState() {
  const r = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  if (r.error || r.status !== 0) return 'unknown';
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'lib', 'src'], { cwd: ROOT, encoding: 'utf8' }).stdout.trim();
  return `${r.stdout.trim()}${dirty ? '+dirty' : ''}`;
}

function child(refmodFile, mode, nodeFlags, extra = []) {
  const r = spawnSync(process.execPath, [...nodeFlags, __filename, '--child', mode, '--refmod', refmodFile, ...extra], { encoding: 'utf8', maxBuffer: 64 * MiB });
  const line = (r.stdout || '').split('\n').find((l) => l.startsWith('{'));
  if (!line) return { error: `child ${mode} failed: ${r.stderr || r.error}` };
  return JSON.parse(line);
}

/** the probe child under strace: syscalls between markers, main thread only */
function probeChild(refmodFile) {
  const out = path.join(os.tmpdir(), `dma-heap-strace-${process.pid}.txt`);
  const which = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  const haveStrace = !which.error && which.status === 0;
  const cmd = haveStrace ? 'strace' : process.execPath;
  const args = haveStrace
    ? ['-f', '-qq', '-o', out, process.execPath, __filename, '--child', 'probe', '--refmod', refmodFile]
    : [__filename, '--child', 'probe', '--refmod', refmodFile];
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 * MiB });
  const line = (r.stdout || '').split('\n').find((l) => l.startsWith('{'));
  if (!line) return { error: `probe failed: ${r.stderr || r.error}` };
  const res = JSON.parse(line);
  if (haveStrace) {
    res.syscalls = countSyscalls(fs.readFileSync(out, 'utf8'), res.ops);
    fs.rmSync(out, { force: true });
  } else {
    res.syscalls = null;
    res.syscallsWhy = 'strace is not installed';
  }
  return res;
}

/** per marked stretch: the syscalls of the thread that made the markers, per op, by name */
function countSyscalls(text, ops) {
  const out = {};
  let cur = null;
  let tid = null;
  for (const l of text.split('\n')) {
    const m = /^(\d+)\s+(\w+)\((.*)$/.exec(l);
    if (!m) continue;
    const mark = /"\/dma-heap-bench-mark\/(start|end)\/([^"]+)"/.exec(m[3]);
    if (m[2] === 'access' && mark) {
      if (mark[1] === 'start') {
        cur = mark[2];
        tid = m[1];
        out[cur] = {};
      } else cur = null;
      continue;
    }
    if (cur && m[1] === tid) out[cur][m[2]] = (out[cur][m[2]] || 0) + 1;
  }
  const per = {};
  for (const [k, v] of Object.entries(out)) {
    const total = Object.values(v).reduce((a, b) => a + b, 0);
    per[k] = { perOp: +(total / ops).toFixed(2), by: Object.fromEntries(Object.entries(v).map(([s, c]) => [s, +(c / ops).toFixed(2)])) };
  }
  return per;
}

// ---- child modes ----

async function childProbe(o) {
  const refmod = require(o.refmod);
  const pkg = loadPackage(true);
  const env = { addon: pkg.addonStatus().loaded, dmaHeap: canAccess('/dev/dma_heap/system', fs.constants.R_OK), udmabuf: canAccess('/dev/udmabuf', fs.constants.W_OK) };
  env.dmaHeap &&= env.addon;
  env.udmabuf &&= env.addon;
  const OPS = 100;
  const WARM_OPS = 2000;
  const size = 64 * KiB;
  const res = { ops: OPS, size, crossings: {} };
  const devs = {};
  if (env.dmaHeap) devs['dma-heap'] = refmod.openDev('/dev/dma_heap/system');
  if (env.udmabuf) devs.udmabuf = refmod.openDev('/dev/udmabuf');
  for (const tier of Object.keys(T)) {
    if (tier === 'memfd' ? !env.addon : !(tier in devs)) continue;
    refmod.run(T[tier], size, 5, devs[tier] ?? -1, 0);
    refmod.mark(`start/C ${tier}`);
    refmod.run(T[tier], size, OPS, devs[tier] ?? -1, 0);
    refmod.mark(`end/C ${tier}`);
  }
  for (const p of paths(pkg, env, refmod)) {
    const made = p.make();
    // Warm: V8 sizes its young generation over the first scavenges (mmap, madvise, mprotect
    // of heap pages); with 5 ops the first path measured paid for that and the others did not.
    jsBatch(made.alloc, size, WARM_OPS);
    crossings.n = 0;
    crossings.by = {};
    crossings.on = true;
    if (env.addon) refmod.mark(`start/${p.id}`);
    jsBatch(made.alloc, size, OPS);
    if (env.addon) refmod.mark(`end/${p.id}`);
    crossings.on = false;
    res.crossings[p.id] = { perOp: crossings.n / OPS, by: Object.fromEntries(Object.entries(crossings.by).map(([k, v]) => [k, v / OPS])) };
    made.done();
  }
  // the pool's frame: acquire, fill, release
  const heapOpts = env.dmaHeap ? { backend: 'kernel' } : env.addon ? { backend: 'software' } : { framework: new (require(path.join(ROOT, 'dist', 'framework')).Framework)({ backing: 'js' }) };
  const heap = pkg.openHeap('system', heapOpts);
  const { createPool } = require(path.join(ROOT, 'dist', 'pool.js'));
  const pool = createPool(heap, { size, count: 4 });
  crossings.n = 0;
  crossings.on = true;
  if (env.addon) refmod.mark('start/pool frame');
  for (let i = 0; i < OPS; i++) {
    const b = pool.acquire();
    b.bytes().fill(FILL);
    b.release();
  }
  if (env.addon) refmod.mark('end/pool frame');
  crossings.on = false;
  res.crossings['pool frame'] = { perOp: crossings.n / OPS, by: {} };
  pool.close();
  heap.close();
  // fromFd: how many fdinfo reads and crossings one adoption takes
  if (env.addon) {
    const h = pkg.openHeap('system', heapOpts);
    const b = h.alloc(size);
    crossings.n = 0;
    crossings.by = {};
    crossings.on = true;
    refmod.mark('start/fromFd');
    for (let i = 0; i < OPS; i++) pkg.DmaBuf.fromFd(b.fd).close();
    refmod.mark('end/fromFd');
    crossings.on = false;
    res.crossings.fromFd = { perOp: crossings.n / OPS, by: Object.fromEntries(Object.entries(crossings.by).map(([k, v]) => [k, v / OPS])) };
    b.close();
    h.close();
  }
  console.log(JSON.stringify(res));
}

/**
 * The GCs while `batch` (1,000 buffers) runs n/1000 times, yielding between batches. Observers
 * get their entries on a later turn: the warm-up's GCs and the forced one before t0 would
 * arrive in the window, so only entries that started after t0 count.
 */
async function gcDuring(n, batch) {
  global.gc();
  await new Promise((r) => setImmediate(r));
  const gcs = [];
  const obs = new PerformanceObserver((l) => gcs.push(...l.getEntries()));
  obs.observe({ entryTypes: ['gc'] });
  const t0 = performance.now();
  for (let i = 0; i < n / 1000; i++) {
    batch();
    await new Promise((r) => setImmediate(r));
  }
  const elapsed = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 50));
  obs.disconnect();
  const inside = gcs.filter((e) => e.startTime >= t0 && e.startTime < t0 + elapsed);
  const gcMs = inside.reduce((a, e) => a + e.duration, 0);
  return { buffers: n, gcCount: inside.length, gcMs: +gcMs.toFixed(2), gcMsPer1000: +((gcMs * 1000) / n).toFixed(3), msPer1000: +((elapsed * 1000) / n).toFixed(2) };
}

async function childGc(o) {
  const pkg = loadPackage(false);
  const env = { addon: pkg.addonStatus().loaded, dmaHeap: canAccess('/dev/dma_heap/system', fs.constants.R_OK) && pkg.addonStatus().loaded };
  const opts = env.dmaHeap ? { backend: 'kernel' } : { backend: 'software' };
  const heap = pkg.openHeap('system', opts);
  const res = { backend: heap.backend, backing: heap.backing };
  // GC time per 1,000 buffers: 20,000 alloc/map/fill/close at 4 KiB, yielding every 1,000
  const N = 20000;
  jsBatch((n) => heap.alloc(n), 4096, 2000);
  res.loop = await gcDuring(N, () => jsBatch((n) => heap.alloc(n), 4096, 1000));
  if (env.addon && !env.dmaHeap) {
    // the same loop on the addon calls alone: the GC an external ArrayBuffer per mapping costs
    const addon = require(addonFile());
    res.floorGcMsPer1000 = (await gcDuring(N, () => jsBatch((n) => addonFloor(addon, n), 4096, 1000))).gcMsPer1000;
  }
  // a loop that never yields: 100k buffers, then a forced GC before any turn of the event loop
  global.gc();
  const before = process.memoryUsage().heapUsed;
  jsBatch((n) => heap.alloc(n), 4096, o.noYield);
  global.gc();
  const after = process.memoryUsage().heapUsed;
  res.noYield = { buffers: o.noYield, heapBeforeMB: +(before / MiB).toFixed(1), heapAfterGcMB: +(after / MiB).toFixed(1), retainedMB: +((after - before) / MiB).toFixed(1) };
  heap.close();
  console.log(JSON.stringify(res));
}

async function childLag() {
  const pkg = loadPackage(false);
  const kernel = pkg.addonStatus().loaded && canAccess('/dev/dma_heap/system', fs.constants.R_OK);
  const heap = pkg.openHeap('system', { backend: kernel ? 'kernel' : 'software' });
  const size = 64 * MiB;
  (await heap.allocAsync(size)).close();
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const t0 = performance.now();
  let n = 0;
  let closeMax = 0;
  // closeAsync: the kernel frees the pages in the last close, which runs on the libuv pool
  // (close() would free them on this thread: the lag then is close()'s, reported beside)
  while (performance.now() - t0 < 3000 || n < 5) {
    const b = await heap.allocAsync(size);
    await b.closeAsync();
    n++;
  }
  h.disable();
  const elapsed = performance.now() - t0;
  for (let i = 0; i < 5; i++) {
    const b = await heap.allocAsync(size);
    const c0 = performance.now();
    b.close();
    closeMax = Math.max(closeMax, performance.now() - c0);
  }
  heap.close();
  console.log(
    JSON.stringify({
      backend: kernel ? 'kernel' : 'software',
      size,
      allocations: n,
      msPerAlloc: +(elapsed / n).toFixed(2),
      p50ms: +(h.percentile(50) / 1e6).toFixed(2),
      p99ms: +(h.percentile(99) / 1e6).toFixed(2),
      maxMs: +(h.max / 1e6).toFixed(2),
      closeMaxMs: +closeMax.toFixed(2),
    }),
  );
}

// ---- reports ----

function printChildren(r) {
  const p = r.probe;
  if (p && !p.error) {
    console.log(`\nper ${sizeName(p.size)} op (strace, main thread between markers; addon crossings by a counting proxy):`);
    for (const [k, v] of Object.entries(p.syscalls || {})) {
      const x = p.crossings[k];
      const by = Object.entries(v.by).map(([s, c]) => `${s}${c !== 1 ? `×${c}` : ''}`).join(' ');
      console.log(`  ${k.padEnd(30)} ${String(v.perOp).padStart(5)} syscalls${x ? `, ${x.perOp} crossings` : ''}: ${by}`);
    }
    for (const [k, x] of Object.entries(p.crossings)) {
      if (!p.syscalls || !p.syscalls[k]) console.log(`  ${k.padEnd(30)} ${x.perOp} crossings`);
    }
  } else if (p) console.log(`\nprobe: ${p.error}`);
  if (r.gc && !r.gc.error) {
    console.log(`\nGC (${r.gc.backend}/${r.gc.backing}, 4 KiB): ${r.gc.loop.gcMsPer1000} ms GC per 1,000 buffers (${r.gc.loop.gcCount} GCs, ${r.gc.loop.msPer1000} ms per 1,000 in all)`);
    if (r.gc.floorGcMsPer1000 !== undefined) console.log(`  the same loop on the addon calls alone (${FLOOR_MEMFD}): ${r.gc.floorGcMsPer1000} ms GC per 1,000 buffers`);
    console.log(`  ${r.gc.noYield.buffers} buffers without yielding, then gc(): heap ${r.gc.noYield.heapBeforeMB} → ${r.gc.noYield.heapAfterGcMB} MB`);
  } else if (r.gc) console.log(`\nGC: ${r.gc.error}`);
  if (r.lag && !r.lag.error) {
    console.log(`\nevent-loop lag while allocAsync makes ${sizeName(r.lag.size)} buffers back to back, closed with closeAsync (${r.lag.backend}, ${r.lag.allocations} allocations, ${r.lag.msPerAlloc} ms each): p50 ${r.lag.p50ms} ms, p99 ${r.lag.p99ms} ms, max ${r.lag.maxMs} ms; a synchronous close() instead takes up to ${r.lag.closeMaxMs} ms`);
  } else if (r.lag) console.log(`\nlag: ${r.lag.error}`);
}

function printTargets(r, env) {
  const rows = [];
  const cell = (pathId, size) => r.cells.find((c) => c.path === pathId && c.size === size);
  const big = r.cells.length ? Math.max(...r.cells.map((c) => c.size)) : 0;
  const heapPath = env.dmaHeap ? 'heap.alloc (kernel)' : 'heap.alloc (software, memfd)';
  const sharePath = env.dmaHeap ? 'allocShareable dma-heap' : 'allocShareable memfd';
  const add = (what, target, measured, met) => rows.push({ what, target, measured, met });
  const ratioRow = (what, c, max) => c && add(what, `≤ ${max}×`, fmtRatio(c.cpu), c.cpu.median <= max);
  ratioRow(`${heapPath} 4 KiB vs C`, cell(heapPath, 4096), 1.15);
  for (const s of [1 * MiB, 16 * MiB]) ratioRow(`${heapPath} ${sizeName(s)} vs C`, cell(heapPath, s), 1.03);
  for (const s of [4096, 1 * MiB]) {
    // paired directly (shareablePairs), not the quotient of two cells measured apart
    const x = r.shareable.find((c) => c.kind === 'tier forced' && c.size === s);
    if (x) add(`${sharePath} / heap.alloc ${sizeName(s)}, paired`, '≤ 1.05×', fmtRatio(x.cpu), x.cpu.median <= 1.05);
    const d = r.shareable.find((c) => c.kind === 'default' && c.size === s);
    if (d) add(`  allocShareable() default (${d.tier}) / heap.alloc ${sizeName(s)}`, '(info)', fmtRatio(d.cpu), true);
  }
  const floorRow = (what, c) => c && add(what, '(floor)', fmtRatio(c.cpu), true);
  // Met when each syscall C's loop makes is made as often (refmod's own clock_gettime aside).
  // Calls C's loop never makes are V8's: the GC's futex and madvise, its heap pages' mmap and
  // mprotect; they scale with the garbage per buffer, and are printed, not counted against.
  const addSyscalls = (path, c, j) => {
    const names = Object.keys(c.by).filter((n) => n !== 'clock_gettime');
    const same = names.every((n) => Math.abs((j.by[n] ?? 0) - c.by[n]) < 0.05);
    const own = names.reduce((a, n) => a + (j.by[n] ?? 0), 0);
    const extra = Object.entries(j.by).filter(([n]) => !names.includes(n)).map(([n, v]) => `${n}×${v}`);
    const cOwn = names.reduce((a, n) => a + c.by[n], 0);
    add(`syscalls per buffer, ${path}`, `= C (${+cOwn.toFixed(2)})`, `${+own.toFixed(2)}${extra.length ? ` (+ V8: ${extra.join(' ')})` : ''}`, same);
  };
  if (!env.dmaHeap) floorRow(`  ${FLOOR_MEMFD} 4 KiB vs C`, cell(FLOOR_MEMFD, 4096));
  if (!env.dmaHeap) floorRow(`  ${FLOOR_BARE} 4 KiB vs C`, cell(FLOOR_BARE, 4096));
  ratioRow('js tier 4 KiB vs Buffer.alloc().fill', cell('heap.alloc (software, js)', 4096), 3);
  floorRow(`  ${FLOOR_JS} 4 KiB vs Buffer.alloc().fill`, cell(FLOOR_JS, 4096));
  for (const s of [1 * MiB, 16 * MiB]) {
    ratioRow(`js tier ${sizeName(s)} vs Buffer.alloc().fill`, cell('heap.alloc (software, js)', s), 1.1);
    floorRow(`  ${FLOOR_JS} ${sizeName(s)} vs Buffer.alloc().fill`, cell(FLOOR_JS, s));
  }
  const pool1 = r.pool.find((p) => p.size === 1 * MiB && !p.zeroOnRelease);
  if (pool1 && pool1.vsCRing) ratioRow('pool frame 1 MiB vs C ring', { cpu: pool1.vsCRing.cpu }, 1.1);
  const p = r.probe;
  if (p && p.syscalls) {
    const cName = env.dmaHeap ? 'C dma-heap' : 'C memfd';
    const c = p.syscalls[cName];
    const j = p.syscalls[heapPath];
    if (c && j) addSyscalls(heapPath, c, j);
    const s = p.syscalls[sharePath];
    if (c && s) addSyscalls(sharePath, c, s);
  }
  if (p && p.crossings && p.crossings[heapPath]) add(`addon crossings per buffer, ${heapPath}`, '≤ 3', String(p.crossings[heapPath].perOp), p.crossings[heapPath].perOp <= 3);
  if (p && p.crossings && p.crossings.fromFd && p.syscalls?.fromFd) {
    // the software framework answers fdinfo itself (no open); the real kernel's is one openat
    const opens = p.syscalls.fromFd.by.openat ?? 0;
    add('fromFd: fdinfo reads / crossings', '≤ 1 fdinfo read', `${opens} opens, ${p.crossings.fromFd.perOp} crossings`, opens <= 1);
  }
  if (r.gc && r.gc.loop) add('GC per 1,000 buffers', '≤ 1 ms', `${r.gc.loop.gcMsPer1000} ms`, r.gc.loop.gcMsPer1000 <= 1);
  if (r.gc && r.gc.floorGcMsPer1000 !== undefined) add(`  ${FLOOR_MEMFD}: GC per 1,000 buffers`, '(floor)', `${r.gc.floorGcMsPer1000} ms`, true);
  if (r.gc && r.gc.noYield) add(`heap after ${r.gc.noYield.buffers} non-yielding buffers + gc()`, r.gc.noYield.buffers === 100000 ? '< 8 MB' : '< 8 MB @100k', `${r.gc.noYield.heapAfterGcMB} MB`, r.gc.noYield.heapAfterGcMB < 8);
  if (r.lag && r.lag.p99ms !== undefined) add(`event-loop lag p99, allocAsync 64 MiB (${r.lag.backend})`, '< 5 ms', `${r.lag.p99ms} ms`, r.lag.p99ms < 5);
  console.log('\ntargets (issue 11) beside what this run measured:');
  for (const x of rows) console.log(`  ${x.target === '(floor)' || x.target === '(info)' ? '       ' : x.met ? 'met    ' : 'NOT met'}  ${x.what.padEnd(52)} target ${x.target.padEnd(12)} measured ${x.measured}`);
  r.targets = rows;
}

const o = parseArgs(process.argv.slice(2));
const run = { main: () => main(o), probe: () => childProbe(o), gc: () => childGc(o), lag: () => childLag(o) }[o.mode];
if (!run) die(`unknown child mode ${o.mode}`);
run().catch((err) => {
  console.error(err);
  process.exit(1);
});
