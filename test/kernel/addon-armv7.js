'use strict';
// The 32-bit armv7 addon for the compat row (armv7 userland on the arm64 kernel): the package's
// own prebuilds/linux-arm/dma-heap.armv7.glibc.node when `npm run prebuilds` made one, else a cross build
// (prebuildify, arm-linux-gnueabihf-g++) cached under DMA_HEAP_VM_CACHE/addon/ by a hash of the
// addon's sources. Returns the .node file's path.
const fs = require('fs');
const os = require('os');
const path = require('path');
const crypto = require('crypto');
const { spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..', '..');
const NAME = 'dma-heap.node';
const T = 'arm-linux-gnueabihf';

function sourcesHash() {
  const h = crypto.createHash('sha256');
  const add = (p) => {
    const st = fs.statSync(p);
    if (st.isDirectory()) for (const e of fs.readdirSync(p).sort()) add(path.join(p, e));
    else h.update(path.relative(root, p)).update(fs.readFileSync(p));
  };
  ['binding.gyp', 'src', 'include'].forEach((p) => add(path.join(root, p)));
  return h.digest('hex').slice(0, 12);
}

function armv7Addon(cache) {
  const shipped = require('../prebuilds/targets').prebuildPath(root, 'arm');
  if (fs.existsSync(shipped)) return shipped;
  const out = path.join(cache, 'addon', `linux-arm-${sourcesHash()}`);
  const file = path.join(out, 'prebuilds', 'linux-arm', NAME);
  if (fs.existsSync(file)) return file;
  const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'dma-heap-armv7-'));
  try {
    for (const f of ['binding.gyp', 'package.json']) fs.copyFileSync(path.join(root, f), path.join(stage, f));
    for (const d of ['src', 'include']) fs.cpSync(path.join(root, d), path.join(stage, d), { recursive: true });
    fs.symlinkSync(path.join(root, 'node_modules'), path.join(stage, 'node_modules'), 'dir');
    const env = { ...process.env, CC: `${T}-gcc`, CXX: `${T}-g++`, LINK: `${T}-g++`, AR: `${T}-ar`, PREBUILD_STRIP_BIN: `${T}-strip`, npm_config_loglevel: 'warn' };
    delete env.npm_config_arch;
    const prefix = path.dirname(path.dirname(process.execPath));
    if (fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h'))) env.npm_config_nodedir = prefix;
    process.stderr.write(`dma-heap-vm: cross-building the armv7 addon (${T}-g++) ...\n`);
    const r = spawnSync(process.execPath, [path.join(root, 'node_modules', 'prebuildify', 'bin.js'), '--napi', '--strip',
      '--arch', 'arm', '--target', process.versions.node, '--cwd', stage, '--out', out], { cwd: stage, env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`armv7 addon build failed (is g++-${T} installed?):\n${(r.stdout + r.stderr).slice(-3000)}`);
  } finally {
    fs.rmSync(stage, { recursive: true, force: true });
  }
  const b = fs.readFileSync(file);
  // ELF32, little-endian, EM_ARM (40)
  if (b[4] !== 1 || b[5] !== 1 || b.readUInt16LE(18) !== 40) throw new Error(`${file} is not a 32-bit arm ELF`);
  return file;
}

module.exports = { armv7Addon };
if (require.main === module) {
  console.log(armv7Addon(process.env.DMA_HEAP_VM_CACHE || path.join(os.homedir(), '.cache', 'dma-heap-vm')));
}
