#!/usr/bin/env node
// `npm run prebuilds`: prebuildify the addon (N-API, stripped) into prebuilds/linux-x64 and
// prebuilds/linux-arm64 (cross-compiled with Debian's g++-aarch64-linux-gnu), then check
// each file's ELF header: 64-bit little-endian shared object for the right machine, stripped.
//
//   node test/prebuilds/build.js [--arch x64,arm64] [--verbose]
//
// Each arch builds in a staged copy of the sources (binding.gyp, src/, include/, package.json)
// so node-gyp's `rebuild` neither wipes build/ (where `npm test` finds the addon) nor mixes
// x64 and arm64 objects. The equivalent by hand, from the package root:
//
//   prebuildify --napi --strip --arch x64   --target <node version>
//   CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ \
//   AR=aarch64-linux-gnu-ar PREBUILD_STRIP_BIN=aarch64-linux-gnu-strip \
//   prebuildify --napi --strip --arch arm64 --target <node version>
//
// prebuildify passes node-gyp `rebuild --arch=<arch> --target=<v> --devdir=... --release`;
// node-gyp writes target_arch=arm64 into config.gypi and make uses $CC/$CXX/$LINK/$AR.
// Headers: N-API's are the same on every arch, so the host's (nodedir) serve both builds.
'use strict';
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const NAME = `${require(path.join(root, 'package.json')).name}.node`;

const ARCHES = {
  x64: { machine: 62, machineName: 'x86-64', gnu: 'x86_64-linux-gnu' },
  arm64: { machine: 183, machineName: 'aarch64', gnu: 'aarch64-linux-gnu' },
};
const APT = { arm64: 'g++-aarch64-linux-gnu', x64: 'g++-x86-64-linux-gnu' };

const ELF = { EM: 18, SHOFF: 0x28, SHENTSIZE: 0x3a, SHNUM: 0x3c, SHT_SYMTAB: 2, ET_DYN: 3 };

/** Read an ELF64 header: class, byte order, type, machine, and whether a .symtab is left. */
function readElf(file) {
  const b = fs.readFileSync(file);
  if (b.length < 64 || b.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file}: not an ELF file`);
  const cls = b[4] === 2 ? 64 : 32;
  const le = b[5] === 1;
  if (cls !== 64 || !le) return { cls, le };
  const type = b.readUInt16LE(16);
  const machine = b.readUInt16LE(ELF.EM);
  const shoff = Number(b.readBigUInt64LE(ELF.SHOFF));
  const shentsize = b.readUInt16LE(ELF.SHENTSIZE);
  const shnum = b.readUInt16LE(ELF.SHNUM);
  let symtab = false;
  for (let i = 0; i < shnum; i++) {
    if (b.readUInt32LE(shoff + i * shentsize + 4) === ELF.SHT_SYMTAB) symtab = true;
  }
  return { cls, le, type, machine, stripped: !symtab, size: b.length };
}

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
  const spec = ARCHES[arch];
  if (!spec) throw new Error(`unknown arch ${arch} (have: ${Object.keys(ARCHES).join(', ')})`);
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
  const nd = nodedir();
  if (nd) env.npm_config_nodedir = nd;
  // an inherited npm_config_arch (npm run with --arch) would fight --arch
  delete env.npm_config_arch;
  // node-gyp's "gyp info" lines only with --verbose; compiler output and errors always show
  env.npm_config_loglevel = process.argv.includes('--verbose') ? 'verbose' : 'warn';

  const cwd = stage(arch);
  const prebuildify = path.join(root, 'node_modules', 'prebuildify', 'bin.js');
  const args = [prebuildify, '--napi', '--strip', '--arch', arch, '--target', process.versions.node, '--cwd', cwd, '--out', root];
  const shown = cross ? `CC=${env.CC} CXX=${env.CXX} LINK=${env.LINK} AR=${env.AR} PREBUILD_STRIP_BIN=${env.PREBUILD_STRIP_BIN} ` : '';
  console.log(`\n=== ${arch}: ${shown}prebuildify ${args.slice(1).join(' ')}${nd ? ` (nodedir ${nd})` : ''}`);
  const started = Date.now();
  const r = spawnSync(process.execPath, args, { cwd, env, stdio: 'inherit' });
  fs.rmSync(cwd, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`prebuildify (${arch}) exited with ${r.status ?? r.signal}`);
  const secs = ((Date.now() - started) / 1000).toFixed(1);

  const file = path.join(root, 'prebuilds', `linux-${arch}`, NAME);
  const e = readElf(file);
  const problems = [];
  if (e.cls !== 64 || !e.le) problems.push(`ELF${e.cls} ${e.le ? 'LE' : 'BE'}, want ELF64 LE`);
  if (e.type !== ELF.ET_DYN) problems.push(`e_type ${e.type}, want ET_DYN (shared object)`);
  if (e.machine !== spec.machine) problems.push(`e_machine ${e.machine}, want ${spec.machine} (${spec.machineName})`);
  if (!e.stripped) problems.push('not stripped (.symtab present)');
  if (problems.length) throw new Error(`${path.relative(root, file)}: ${problems.join('; ')}`);
  const needs = versionNeeds(file);
  const fileOut = which('file') ? spawnSync('file', ['-b', file], { encoding: 'utf8' }).stdout.trim() : null;
  console.log(`${path.relative(root, file)}: ${spec.machineName}, ${e.size} bytes, stripped, built in ${secs}s`);
  if (needs) console.log(`  needs GLIBC_${needs.glibc}, GLIBCXX_${needs.glibcxx}, CXXABI_${needs.cxxabi}`);
  if (fileOut) console.log(`  file: ${fileOut}`);
}

function main() {
  if (process.platform !== 'linux') throw new Error('prebuilds are built on Linux');
  const i = process.argv.indexOf('--arch');
  const arches = i >= 0 ? process.argv[i + 1].split(',') : Object.keys(ARCHES);
  for (const arch of arches) build(arch);
}

try {
  main();
} catch (err) {
  console.error(`prebuilds: ${err.message}`);
  process.exit(1);
}
