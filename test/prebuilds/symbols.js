// What a shared object needs from the system, read with binutils' readelf (any arch):
// NEEDED libraries and versioned symbol references (.gnu.version_r), judged against the
// prebuilds' promise: glibc >= GLIBC_FLOOR and nothing from libstdc++ or libgcc_s.
//
//   node test/prebuilds/symbols.js FILE...      prints each file's needs; exits 1 on a breach
'use strict';
const { spawnSync } = require('node:child_process');
const { GLIBC_FLOOR } = require('./targets');

// the C library's own objects: present wherever glibc is
const SYSTEM_LIBS = /^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|ld-linux[-.\w]*\.so\.\d+)$/;

const key = (v) => v.split('.').map((n) => n.padStart(4, '0')).join('.');
const newer = (a, b) => key(a) > key(b);

function readelf(args, file) {
  const r = spawnSync('readelf', [...args, '--wide', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.error || r.status !== 0) throw new Error(`readelf ${args.join(' ')} ${file}: ${r.error ? r.error.message : r.stderr.trim()} (apt-get install binutils)`);
  return r.stdout;
}

/** { needed, versions: [{ file, name }], symbols: { 'GLIBC_2.28': ['fcntl64'] }, glibc } */
function needs(file) {
  const needed = [...readelf(['--dynamic'], file).matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
  const versions = [];
  let lib = null;
  const vr = readelf(['--version-info'], file);
  const section = vr.slice(vr.indexOf("'.gnu.version_r'") >>> 0);
  for (const line of (vr.includes("'.gnu.version_r'") ? section : '').split('\n')) {
    const f = /File: (\S+)/.exec(line);
    if (f) lib = f[1];
    const n = /Name: (\S+)/.exec(line);
    if (n && !f) versions.push({ file: lib, name: n[1] });
  }
  const symbols = {};
  for (const m of readelf(['--dyn-syms'], file).matchAll(/\sUND\s+(\S+?)@(\w+_[\d.]+)/g)) {
    (symbols[m[2]] ||= []).push(m[1]);
  }
  const glibcs = versions.filter((v) => v.name.startsWith('GLIBC_') && /^[\d.]+$/.test(v.name.slice(6))).map((v) => v.name.slice(6));
  const glibc = glibcs.sort((a, b) => (newer(a, b) ? -1 : 1))[0] || null;
  return { needed, versions, symbols, glibc };
}

/** breaches of the promise: [] when the file keeps it */
function breaches(file, floor = GLIBC_FLOOR) {
  const n = needs(file);
  const out = [];
  for (const lib of n.needed) if (!SYSTEM_LIBS.test(lib)) out.push(`NEEDED ${lib}`);
  for (const v of n.versions) {
    const syms = n.symbols[v.name] || [];
    const what = syms.length ? ` (${syms.slice(0, 4).join(', ')}${syms.length > 4 ? `, +${syms.length - 4}` : ''})` : '';
    if (v.name.startsWith('GLIBC_') && /^[\d.]+$/.test(v.name.slice(6)) && newer(v.name.slice(6), floor)) out.push(`${v.name} > GLIBC_${floor}${what}`);
    else if (/^(GLIBCXX|CXXABI|GCC)_/.test(v.name)) out.push(`${v.name} from ${v.file}${what}`);
    else if (!/^GLIBC_/.test(v.name)) out.push(`unexpected version ${v.name} from ${v.file}${what}`);
  }
  return { ...n, breaches: out };
}

module.exports = { needs, breaches, SYSTEM_LIBS };

if (require.main === module) {
  let bad = 0;
  for (const file of process.argv.slice(2)) {
    const b = breaches(file);
    console.log(`${file}: needs ${b.needed.join(' ')}; newest GLIBC_${b.glibc}; ${b.breaches.length ? `BREACHES: ${b.breaches.join('; ')}` : `within GLIBC_${GLIBC_FLOOR}, no libstdc++/libgcc_s`}`);
    if (b.breaches.length) bad++;
  }
  process.exit(bad ? 1 : 0);
}
