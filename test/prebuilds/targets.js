// The prebuilds the package ships, one place for build.js, check.js and the prepack check.
// File names carry node-gyp-build's tags: `glibc` (skipped where LIBC=musl or on Alpine) and,
// for 32-bit ARM, `armv7` (skipped by an armv6 Node).
'use strict';
const fs = require('node:fs');
const path = require('node:path');

/** The glibc floor: no prebuild may need a GLIBC_ symbol version above this, nor any
 *  GLIBCXX_/CXXABI_ one (libstdc++ is linked in). Node 20's own Linux builds need 2.28. */
const GLIBC_FLOOR = '2.28';

const PREBUILDS = {
  x64: { file: 'dma-heap.glibc.node', libc: 'glibc', elfClass: 64, machine: 62, machineName: 'x86-64', gnu: 'x86_64-linux-gnu' },
  arm64: { file: 'dma-heap.glibc.node', libc: 'glibc', elfClass: 64, machine: 183, machineName: 'aarch64', gnu: 'aarch64-linux-gnu' },
  arm: { file: 'dma-heap.armv7.glibc.node', libc: 'glibc', armv: '7', elfClass: 32, machine: 40, machineName: 'ARM (armv7, EABI5 hard-float)', gnu: 'arm-linux-gnueabihf' },
};

/** path of an arch's prebuild inside a package directory */
function prebuildPath(pkgDir, arch) {
  return path.join(pkgDir, 'prebuilds', `linux-${arch}`, PREBUILDS[arch].file);
}

const ELF = { SHT_SYMTAB: 2, ET_DYN: 3, EF_ARM_EABI_MASK: 0xff000000, EF_ARM_EABI_VER5: 0x05000000, EF_ARM_ABI_FLOAT_HARD: 0x400 };

/** Read an ELF header (32 or 64-bit, little-endian): class, type, machine, flags, and whether
 *  a .symtab is left. */
function readElf(file) {
  const b = fs.readFileSync(file);
  if (b.length < 52 || b.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file}: not an ELF file`);
  const cls = b[4] === 2 ? 64 : 32;
  const le = b[5] === 1;
  if (!le) return { cls, le };
  const w = cls === 64;
  const type = b.readUInt16LE(16);
  const machine = b.readUInt16LE(18);
  const flags = b.readUInt32LE(w ? 0x30 : 0x24);
  const shoff = w ? Number(b.readBigUInt64LE(0x28)) : b.readUInt32LE(0x20);
  const shentsize = b.readUInt16LE(w ? 0x3a : 0x2e);
  const shnum = b.readUInt16LE(w ? 0x3c : 0x30);
  let symtab = false;
  for (let i = 0; i < shnum; i++) {
    if (b.readUInt32LE(shoff + i * shentsize + 4) === ELF.SHT_SYMTAB) symtab = true;
  }
  return { cls, le, type, machine, flags, stripped: !symtab, size: b.length };
}

/** what is wrong with an arch's prebuild, from its ELF header: [] if nothing */
function elfProblems(arch, e) {
  const spec = PREBUILDS[arch];
  const problems = [];
  if (e.cls !== spec.elfClass || !e.le) problems.push(`ELF${e.cls} ${e.le ? 'LE' : 'BE'}, want ELF${spec.elfClass} LE`);
  if (e.type !== ELF.ET_DYN) problems.push(`e_type ${e.type}, want ET_DYN (shared object)`);
  if (e.machine !== spec.machine) problems.push(`e_machine ${e.machine}, want ${spec.machine} (${spec.machineName})`);
  if (arch === 'arm' && (e.flags & ELF.EF_ARM_EABI_MASK) >>> 0 !== ELF.EF_ARM_EABI_VER5) problems.push(`e_flags 0x${e.flags.toString(16)}: not EABI5`);
  if (arch === 'arm' && !(e.flags & ELF.EF_ARM_ABI_FLOAT_HARD)) problems.push(`e_flags 0x${e.flags.toString(16)}: not hard-float`);
  if (!e.stripped) problems.push('not stripped (.symtab present)');
  return problems;
}

module.exports = { GLIBC_FLOOR, PREBUILDS, prebuildPath, readElf, elfProblems };
