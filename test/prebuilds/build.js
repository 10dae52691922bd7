#!/usr/bin/env node
// `npm run prebuilds`: prebuildify the addon (N-API, stripped) for linux-x64, linux-arm64 and
// linux-arm (armv7 hard-float), the last two cross-compiled with Debian's
// g++-aarch64-linux-gnu and g++-arm-linux-gnueabihf, then check each file's ELF header
// (class, machine, shared object, stripped; ARM: EABI5 hard-float) and its glibc needs.
//
//   node test/prebuilds/build.js [--arch x64,arm64,arm] [--verbose]
//
// Each file is tagged so node-gyp-build picks it only where it runs:
//   prebuilds/linux-x64/dma-heap.glibc.node
//   prebuilds/linux-arm64/dma-heap.glibc.node
//   prebuilds/linux-arm/dma-heap.armv7.glibc.node
// (`glibc`: with LIBC=musl, or on Alpine, node-gyp-build skips them; `armv7`: an armv6 Node
// skips it). binding.gyp links libstdc++/libgcc statically on glibc hosts and keeps every
// libc symbol at or below GLIBC_2.28 (src/glibc_compat.cc); check.js verifies that.
//
// Each arch builds in a staged copy of the sources (binding.gyp, src/, include/, package.json)
// so node-gyp's `rebuild` neither wipes build/ (where `npm test` finds the addon) nor mixes
// objects of two arches. The equivalent by hand, from the package root:
//
//   prebuildify --napi --strip --tag-libc --arch x64 --target <node version>
//   CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ \
//   AR=aarch64-linux-gnu-ar PREBUILD_STRIP_BIN=aarch64-linux-gnu-strip \
//   prebuildify --napi --strip --tag-libc --arch arm64 --target <node version>
//   CC=arm-linux-gnueabihf-gcc ... PREBUILD_ARMV=7 \
//   prebuildify --napi --strip --tag-libc --tag-armv --arch arm --target <node version>
//
// prebuildify passes node-gyp `rebuild --arch=<arch> --target=<v> --devdir=... --release`;
// node-gyp writes target_arch into config.gypi and make uses $CC/$CXX/$LINK/$AR.
// Headers: N-API's are the same on every arch, so the host's (nodedir) serve all builds.
// Debian's arm-linux-gnueabihf-gcc defaults to -march=armv7-a+fp -mfloat-abi=hard -mthumb,
// the ABI of Node's official linux-armv7l build.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const { GLIBC_FLOOR, PREBUILDS, prebuildPath, readElf, elfProblems } = require('./targets');
const symbols = require('./symbols');

const APT = { arm64: 'g++-aarch64-linux-gnu', arm: 'g++-arm-linux-gnueabihf', x64: 'g++-x86-64-linux-gnu' };

/** The newest GLIBC_/GLIBCXX_ version the file needs (readelf, if binutils is there). */
function versionNeeds(file) {
  const r = spawnSync('readelf', ['--version-info', '--wide', file], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  const newest = (prefix) => {
    const vs = [...r.stdout.matchAll(new RegExp(`Name: ${prefix}_([0-9.]+)`, 'g'))].map((m) => m[1]);
    const key = (v) => v.split('.').map((n) => n.padStart(4, '0')).join('.');
    return vs.sort((a, b) => (key(a) < key(b) ? 1 : -1))[0] || null;
  };
  return { glibc: newest('GLIBC'), glibcxx: newest('GLIBCXX'), cxxabi: newest('CXXABI') };
}

function which(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' }).status === 0;
}

/** Headers for node-gyp without a download: npm's nodedir, else the running node's prefix. */
function nodedir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = path.dirname(path.dirname(process.execPath));
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? prefix : null;
}

function stage(arch) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `dma-heap-prebuild-${arch}-`));
  for (const f of ['binding.gyp', 'package.json']) fs.copyFileSync(path.join(root, f), path.join(dir, f));
  for (const d of ['src', 'include']) fs.cpSync(path.join(root, d), path.join(dir, d), { recursive: true });
  // binding.gyp asks node for node-addon-api's include dir; prebuildify finds node-gyp in .bin
  fs.symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
  return dir;
}

function build(arch) {
  const spec = PREBUILDS[arch];
  if (!spec) throw new Error(`unknown arch ${arch} (have: ${Object.keys(PREBUILDS).join(', ')})`);
  const env = { ...process.env };
  const cross = arch !== os.arch();
  if (cross) {
    const t = spec.gnu;
    for (const tool of [`${t}-gcc`, `${t}-g++`, `${t}-strip`]) {
      if (!which(tool)) throw new Error(`${tool} not found: apt-get install ${APT[arch] || `g++-${t}`}`);
    }
    Object.assign(env, {
      CC: `${t}-gcc`,
      CXX: `${t}-g++`,
      LINK: `${t}-g++`,
      AR: `${t}-ar`,
      PREBUILD_STRIP_BIN: `${t}-strip`,
    });
  }
  // prebuildify can't detect the ARM version when cross-compiling: say it
  if (spec.armv) env.PREBUILD_ARMV = spec.armv;
  env.PREBUILD_LIBC = spec.libc;
  const nd = nodedir();
  if (nd) env.npm_config_nodedir = nd;
  // an inherited npm_config_arch (npm run with --arch) would fight --arch
  delete env.npm_config_arch;
  // node-gyp's "gyp info" lines only with --verbose; compiler output and errors always show
  env.npm_config_loglevel = process.argv.includes('--verbose') ? 'verbose' : 'warn';

  // a stale file with other tags (or none) must not linger beside the new one
  const dir = path.dirname(prebuildPath(root, arch));
  if (fs.existsSync(dir)) for (const f of fs.readdirSync(dir)) if (f.endsWith('.node')) fs.rmSync(path.join(dir, f));

  const cwd = stage(arch);
  const prebuildify = path.join(root, 'node_modules', 'prebuildify', 'bin.js');
  const tags = ['--tag-libc', ...(spec.armv ? ['--tag-armv'] : [])];
  const args = [prebuildify, '--napi', '--strip', ...tags, '--arch', arch, '--target', process.versions.node, '--cwd', cwd, '--out', root];
  const shown = (cross ? `CC=${env.CC} CXX=${env.CXX} LINK=${env.LINK} AR=${env.AR} PREBUILD_STRIP_BIN=${env.PREBUILD_STRIP_BIN} ` : '') + (spec.armv ? `PREBUILD_ARMV=${spec.armv} ` : '');
  console.log(`\n=== ${arch}: ${shown}prebuildify ${args.slice(1).join(' ')}${nd ? ` (nodedir ${nd})` : ''}`);
  const started = Date.now();
  const r = spawnSync(process.execPath, args, { cwd, env, stdio: 'inherit' });
  fs.rmSync(cwd, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`prebuildify (${arch}) exited with ${r.status ?? r.signal}`);
  const secs = ((Date.now() - started) / 1000).toFixed(1);

  const file = prebuildPath(root, arch);
  if (!fs.existsSync(file)) throw new Error(`prebuildify made no ${path.relative(root, file)} (made: ${fs.readdirSync(dir).join(', ')})`);
  const e = readElf(file);
  const problems = elfProblems(arch, e);
  if (problems.length) throw new Error(`${path.relative(root, file)}: ${problems.join('; ')}`);
  const needs = versionNeeds(file);
  const fileOut = which('file') ? spawnSync('file', ['-b', file], { encoding: 'utf8' }).stdout.trim() : null;
  console.log(`${path.relative(root, file)}: ${spec.machineName}, ${e.size} bytes, stripped, built in ${secs}s`);
  if (needs) console.log(`  needs GLIBC_${needs.glibc}${needs.glibcxx ? `, GLIBCXX_${needs.glibcxx}` : ''}${needs.cxxabi ? `, CXXABI_${needs.cxxabi}` : ''} (check.js holds it to the floor)`);
  const b = symbols.breaches(file, GLIBC_FLOOR);
  if (b.breaches.length) throw new Error(`${path.relative(root, file)} breaks the GLIBC_${GLIBC_FLOOR} / no-libstdc++ promise: ${b.breaches.join('; ')}`);
  if (fileOut) console.log(`  file: ${fileOut}`);
}

function main() {
  if (process.platform !== 'linux') throw new Error('prebuilds are built on Linux');
  const i = process.argv.indexOf('--arch');
  const arches = i >= 0 ? process.argv[i + 1].split(',') : Object.keys(PREBUILDS);
  for (const arch of arches) build(arch);
}

try {
  main();
} catch (err) {
  console.error(`prebuilds: ${err.message}`);
  process.exit(1);
}
