#!/usr/bin/env node
// `npm run test:kernel`: the jest suite against a real 6.12 kernel, inside the qemu rig
// (test/vm/run.js). Results land in --out DIR (default .test-results/kernel), a folder the
// guest writes through a shared mount. Extra arguments go to jest.
//
// `npm run test:kernel -- --matrix [--rows a,b] [--out DIR]`: every row of the real-kernel
// matrix (ROWS below), each in its own VM with its own DMA_HEAP_EXPECT, jest --json results in
// DIR/<row>/ (default .test-results/kernel/<row>/) and its own summary; builds the project's
// kernels first (test/kernel/build.js, cached). `--list` prints the rows.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const cache = process.env.DMA_HEAP_VM_CACHE || path.join(os.homedir(), '.cache', 'dma-heap-vm');

// What runs where. x86-64 rows run the whole suite; the arm rows run under TCG aarch64 (~5x
// slower than x86-64 TCG), so they run what their kernel proves: the row's promises, the CMA
// heap (conformance, differential, openContiguousHeap), the conformance suite's allocation,
// mapping, ABI, sync/name/info and opening cases on the real system heap, the addon's tests,
// and a shorter differential stream. The armv7 row: the same minus the differential, through
// the kernel's compat_ioctl.
const ARM_TESTS = [
  'test/kernel/', 'test/conformance/alloc.test.ts', 'test/conformance/mapping.test.ts',
  'test/conformance/abi.test.ts', 'test/conformance/sync-name-info.test.ts', 'test/conformance/open.test.ts',
  'test/addon/', 'test/differential.test.ts',
];
const COMPAT_TESTS = [
  'test/kernel/', 'test/conformance/alloc.test.ts', 'test/conformance/mapping.test.ts',
  'test/conformance/abi.test.ts', 'test/conformance/sync-name-info.test.ts', 'test/conformance/open.test.ts',
  'test/addon/',
];
// The self-built x86-64 row is the same 6.12.117 source as Debian's, so what both kernels share
// (the conformance suite on the system heap, the differential) already ran on Debian's row; this
// row runs what only its kernel has: the row's promises, the CMA heap (conformance, differential
// against the kernel's own bitmap, openContiguousHeap), contiguity with vivid's dma-contig
// instance, and the fences on its built-in vgem and vivid.
const X86_SELF_TESTS = ['test/kernel/', 'test/fences/'];
// Tests whose subject is the package's own JS, the same on every kernel, and which cost more under
// TCG than the rest of a row (measured on the Debian row: the README type-check ~445 s, the Python
// peer's floods past jest's 120 s): the host runs them; the VM rows leave them out.
// The CLI's thousands-of-fds suite likewise (its holder's 6,000 allocations and scans: minutes),
// and the install test (npm and a whole tsc build in a copy of the package: no kernel in it).
const HOST_ONLY = ['test/docs/', 'test/layout.test.ts', 'test/skips.test.ts', 'test/adversarial/peer.test.ts', 'test/cli/hostile-scale.test.ts', 'test/install/'];
const ARM64_ADDON = require('./prebuilds/targets').prebuildPath(root, 'arm64'); // prebuilds/linux-arm64/dma-heap.glibc.node

const ROWS = [
  {
    name: 'debian-6.12-x86_64',
    about: "Debian trixie's own linux-image-amd64 (6.12), the distribution kernel users run: system heap, udmabuf, vgem and vivid as modules",
    kernel: 'debian', modules: 'vgem,vivid',
    // under TCG every op costs 20-40x the host's: a 5,000-op differential and 2,000 stress
    // cycles per worker still cover every rule, at half the row's time
    expect: 'system,udmabuf,vgem,vivid', env: { DMA_HEAP_DIFF_OPS: '5000', DMA_HEAP_STRESS_CYCLES: '2000' }, timeout: 2700,
  },
  {
    name: 'x86_64-6.12',
    about: 'self-built x86-64 6.12: system and CMA heaps (cma=64M), udmabuf, vgem, vivid (instance 0 dma-contig), sw_sync, all built in',
    kernel: 'x86_64-6.12', append: ['cma=64M', 'vivid.n_devs=2', 'vivid.allocators=1,0'],
    expect: 'system,udmabuf,cma,vgem,vivid,vivid-contig,sw_sync,pagesize=4096',
    tests: X86_SELF_TESTS, timeout: 2400,
  },
  {
    name: 'arm64-6.12-4k',
    about: 'self-built arm64 6.12, 4 KiB pages: the arm64 prebuild under the official arm64 Node, system and CMA heaps',
    kernel: 'arm64-6.12-4k', userland: 'arm64', append: ['cma=64M'], addon: ARM64_ADDON, tests: ARM_TESTS,
    expect: 'system,udmabuf,cma,sw_sync,pagesize=4096', env: { DMA_HEAP_DIFF_OPS: '2000' }, timeout: 2400,
  },
  {
    name: 'arm64-7-16k',
    about: "self-built arm64 from Debian's newest source (7.x), 16 KiB pages: default_cma_region with the legacy alias, " +
      'two device-tree CMA regions as heaps, cgroup memory accounting (dma_heap.mem_accounting=1), ' +
      'a protected heap loaded as a module while the tests run',
    // dtb: the device tree with reusable regions video-memory (32 MiB) and camera-memory (16 MiB),
    // test/vm/dtb.js; the kernel loads modules and the rig ships test/kernel/modules/ to it
    kernel: 'arm64-7-16k', userland: 'arm64', append: ['cma=64M', 'dma_heap.mem_accounting=1'], dtb: 'cma-regions',
    addon: ARM64_ADDON, tests: ARM_TESTS,
    expect: 'system,udmabuf,cma,cma-alias,cma-regions,mem-accounting,heap-module,sw_sync,pagesize=16384',
    env: { DMA_HEAP_DIFF_OPS: '2000' }, timeout: 2400,
  },
  {
    name: 'armv7-compat-6.12',
    about: 'the armv7 (32-bit) userland and addon on the arm64 6.12 kernel: every ioctl through compat_ioctl',
    kernel: 'arm64-6.12-4k', userland: 'armv7', append: ['cma=64M'], addon: 'armv7', tests: COMPAT_TESTS,
    expect: 'system,udmabuf,cma,compat32,pagesize=4096', timeout: 2400,
  },
];

function parse(argv) {
  const o = { out: null, matrix: false, rows: null, list: false, jest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--out') o.out = path.resolve(argv[++i]);
    else if (a === '--matrix') o.matrix = true;
    else if (a === '--rows') o.rows = argv[++i].split(',');
    else if (a === '--list') o.list = true;
    else o.jest.push(a);
  }
  o.out = o.out || path.resolve(path.join('.test-results', 'kernel'));
  return o;
}

const rig = path.join(__dirname, 'vm', 'run.js');
const runner = path.join(__dirname, 'run.js');

/** one VM run of the jest suite; returns the results summary */
function runRow(row, out, jestArgs) {
  fs.mkdirSync(out, { recursive: true });
  const env = { ...process.env, DMA_HEAP_EXPECT: row.expect, ...(row.env || {}) };
  if (row.addon === 'armv7') env.DMA_HEAP_ADDON_PATH = require('./kernel/addon-armv7.js').armv7Addon(cache);
  else if (row.addon) {
    if (!fs.existsSync(row.addon)) {
      console.log(`${row.addon} is missing: building the arm64 prebuild (npm run prebuilds -- --arch arm64)`);
      const b = spawnSync(process.execPath, [path.join(__dirname, 'prebuilds', 'build.js'), '--arch', 'arm64'], { stdio: 'inherit' });
      if (b.status !== 0) return { error: 'the arm64 prebuild failed' };
    }
    env.DMA_HEAP_ADDON_PATH = row.addon;
  }
  const vmArgs = ['--timeout', String(row.timeout || 1500), '--out', out];
  if (row.kernel !== 'debian') vmArgs.push('--kernel', row.kernel);
  if (row.userland) vmArgs.push('--userland', row.userland);
  if (row.modules) vmArgs.push('--modules', row.modules);
  if (row.dtb) vmArgs.push('--dtb', row.dtb);
  for (const a of row.append || []) vmArgs.push('--append', a);
  // a foreign userland's node is the one at /usr/bin/node inside (the layer shadows the host's)
  const node = row.userland ? '/usr/bin/node' : process.execPath;
  const t0 = Date.now();
  // last: jest's array options swallow the positional paths that follow them
  const ignore = ['--testPathIgnorePatterns', ...HOST_ONLY];
  const r = spawnSync(process.execPath, [rig, ...vmArgs, '--', node, runner, '--kernel', '--out', out, ...(row.tests || []), ...jestArgs, ...ignore],
    { stdio: 'inherit', env });
  const secs = Math.round((Date.now() - t0) / 1000);
  let res = null;
  try { res = JSON.parse(fs.readFileSync(path.join(out, 'kernel.json'), 'utf8')); } catch {}
  return { status: r.status, secs, res };
}

function main() {
  const o = parse(process.argv.slice(2));
  if (o.list) {
    for (const r of ROWS) console.log(`${r.name.padEnd(20)} DMA_HEAP_EXPECT=${r.expect}\n${' '.repeat(21)}${r.about}\n${' '.repeat(21)}tests: ${(r.tests || ['all']).join(' ')}`);
    return 0;
  }
  if (!o.matrix) {
    // the single default run, as before the matrix: Debian's kernel, the whole suite
    fs.mkdirSync(o.out, { recursive: true });
    const r = spawnSync(process.execPath,
      [rig, '--timeout', '1500', '--out', o.out, '--modules', 'vgem,vivid', '--', process.execPath, runner, '--kernel', '--out', o.out, ...o.jest],
      { stdio: 'inherit' });
    return r.status ?? 1;
  }
  const rows = o.rows ? o.rows.map((n) => ROWS.find((r) => r.name === n) || (console.error(`no row ${n}`), process.exit(2))) : ROWS;
  // Build (or find cached) every kernel first, so a build failure names itself and the rows'
  // times are test times.
  const kernels = [...new Set(rows.map((r) => r.kernel).filter((k) => k !== 'debian'))];
  if (kernels.length) {
    console.log(`\n=== kernels: ${kernels.join(', ')} (cached under ${cache}) ===`);
    const t0 = Date.now();
    const b = spawnSync(process.execPath, [path.join(__dirname, 'kernel', 'build.js'), ...kernels], { stdio: 'inherit' });
    console.log(`kernels ready in ${Math.round((Date.now() - t0) / 1000)} s`);
    if (b.status !== 0) return 1;
  }
  const summary = [];
  let status = 0;
  for (const row of rows) {
    console.log(`\n=== row ${row.name}: ${row.about}\n    DMA_HEAP_EXPECT=${row.expect}; tests: ${(row.tests || ['all']).join(' ')} ===`);
    const r = runRow(row, path.join(o.out, row.name), o.jest);
    const line = r.res
      ? `${r.res.numPassedTests} passed, ${r.res.numFailedTests + r.res.numRuntimeErrorTestSuites} failed, ${r.res.numPendingTests} skipped`
      : `no results (${r.error || `exit ${r.status}`})`;
    const ok = r.status === 0 && r.res && r.res.success;
    if (!ok) status = 1;
    summary.push(`${ok ? 'ok  ' : 'FAIL'} ${row.name.padEnd(20)} ${line} (${r.secs ?? 0} s)`);
    console.log(`=== row ${row.name}: ${line} (${r.secs ?? 0} s) ===`);
  }
  console.log(`\n=== kernel matrix ===\n${summary.join('\n')}`);
  return status;
}

process.exit(main());
