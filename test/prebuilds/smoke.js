#!/usr/bin/env node
// Smoke test of an installed dma-heap (check.js copies this into a temp project that installed
// the packed tarball). It proves the package loads its addon from prebuilds/ and that the
// addon works on this CPU: the software framework on memfd backing (alloc, map, write, read
// back), then the addon's memfd, mmap, readMapped/writeMapped, socketpair + SCM_RIGHTS and
// poll paths. Prints one line "smoke ok: ..." and exits 0, or throws.
//
//   node smoke.js --prebuild prebuilds/linux-<arch>/<file>   the addon must load from that file
//   node smoke.js --expect-fallback   no addon on purpose: the software framework on JS memory
'use strict';
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');

const started = Date.now();
const expectFallback = process.argv.includes('--expect-fallback');
const prebuildArg = process.argv.indexOf('--prebuild');
let checks = 0;
const ok = (cond, what) => {
  assert.ok(cond, what);
  checks++;
};

for (const k of ['DMA_HEAP_ADDON_PATH', 'DMA_HEAP_ADDON', 'DMA_HEAP_BACKEND', 'DMA_HEAP_PREBUILD', 'PREBUILDS_ONLY', 'npm_config_arch', 'npm_config_platform']) {
  ok(!(k in process.env), `${k} is unset`);
}

const pkgDir = fs.realpathSync(path.dirname(require.resolve('dma-heap/package.json')));
ok(pkgDir.includes(`${path.sep}node_modules${path.sep}`), `dma-heap resolved from an installed copy (${pkgDir})`);

const dh = require('dma-heap');
const status = dh.addonStatus();
// the second entry point, through the installed package's exports map
const { Framework } = require('dma-heap/framework');
ok(typeof Framework === 'function' && !('Framework' in dh), "dma-heap/framework serves Framework, and dma-heap does not");
const pattern = (n, seed) => Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);

function auxvPageSize() {
  // auxv entries are two longs: 4-byte words on 32-bit ABIs (arm), 8-byte ones on 64-bit
  const word = ['arm', 'ia32'].includes(process.arch) ? 4 : 8;
  const read = (b, i) => (word === 8 ? Number(b.readBigUInt64LE(i)) : b.readUInt32LE(i));
  const b = fs.readFileSync('/proc/self/auxv');
  for (let i = 0; i + 2 * word <= b.length; i += 2 * word) {
    const type = read(b, i);
    if (type === 6) return read(b, i + word); // AT_PAGESZ
    if (type === 0) break;
  }
  return null;
}

if (expectFallback) {
  ok(!status.loaded, `addonStatus().loaded is false (got ${JSON.stringify(status)})`);
  ok(typeof status.reason === 'string' && status.reason.length > 0, 'addonStatus().reason says why');
  const heap = dh.openHeap('system', { backend: 'software' });
  ok(heap.backing === 'js', `software framework on JS memory (backing ${heap.backing})`);
  const buf = heap.alloc(3 * 4096 + 1);
  const ab = buf.map();
  new Uint8Array(ab).set(pattern(ab.byteLength, 3));
  ok(Buffer.from(buf.read()).equals(Buffer.from(pattern(ab.byteLength, 3))), 'JS-memory buffer reads back');
  buf.close();
  console.log(`smoke ok (fallback): ${process.arch} node ${process.version}, reason "${status.reason}", ${checks} checks, ${Date.now() - started} ms`);
  process.exit(0);
}

// ---- the addon came from prebuilds/, not build/ and not an override ----
ok(status.loaded, `addonStatus().loaded (reason: ${status.reason})`);
ok(!fs.existsSync(path.join(pkgDir, 'build')), 'no build/ in the installed package');
ok(prebuildArg > 0, 'told which prebuild to expect (--prebuild)');
const expected = path.join(pkgDir, process.argv[prebuildArg + 1]);
ok(fs.existsSync(expected), `${path.relative(pkgDir, expected)} is installed`);
const nodeGypBuild = require(require.resolve('node-gyp-build', { paths: [pkgDir] }));
const chosen = fs.realpathSync(nodeGypBuild.path(pkgDir));
ok(chosen === expected, `node-gyp-build picks ${path.relative(pkgDir, expected)} (got ${chosen})`);
ok(Object.keys(require.cache).some((k) => k.endsWith('.node') && fs.realpathSync(k) === expected), 'the package loaded that very file');
const addon = require(expected);

// ---- page size: sysconf, never 4096 assumed ----
const page = addon.pageSize();
const auxv = auxvPageSize();
ok(page === auxv, `addon.pageSize() ${page} === AT_PAGESZ ${auxv}`);

// ---- the software dma-heap framework on memfd backing ----
{
  const heap = dh.openHeap('system', { backend: 'software' });
  ok(heap.backend === 'software', 'backend software');
  ok(heap.backing === 'memfd', `backing memfd (got ${heap.backing})`);
  const buf = heap.alloc(3 * page + 1, { name: 'smoke' });
  ok(buf.size === 4 * page, `size rounded to pages: ${buf.size} === 4 * ${page}`);
  ok(buf.tier === 'memfd', `tier memfd (got ${buf.tier})`);
  const ab = buf.map();
  ok(ab.byteLength === buf.size, 'map() covers the buffer');
  buf.cpuAccess('write', () => new Uint8Array(ab).set(pattern(buf.size, 1)));
  ok(Buffer.from(buf.read()).equals(Buffer.from(pattern(buf.size, 1))), 'read() returns what the mapping wrote');
  const patch = pattern(100, 99);
  buf.write(patch, page - 50); // straddles a page boundary
  ok(Buffer.from(new Uint8Array(ab, page - 50, 100)).equals(Buffer.from(patch)), 'write() shows through the mapping');
  ok(buf.info().size === buf.size, 'info() from fdinfo');
  buf.close();
  ok(ab.byteLength === 0, 'close() detaches the mapping');
}

// ---- the addon directly: memfd, mmap, readMapped/writeMapped, socketpair + SCM_RIGHTS, poll ----
const MFD_CLOEXEC = 1;
const MFD_ALLOW_SEALING = 2;
const fd = addon.memfdCreate('dma-heap-smoke', MFD_CLOEXEC | MFD_ALLOW_SEALING);
addon.ftruncate(fd, 2 * page + 10);
const map = addon.mmap(fd, 3 * page, 0, true); // the last page is partial: allowed
ok(map.byteLength === 3 * page, 'mmap of 3 pages over a file of 2 pages + 10 bytes');
new Uint8Array(map).set(pattern(2 * page + 10, 5));
let err;
try {
  addon.mmap(fd, 4 * page, 0, true);
} catch (e) {
  err = e;
}
ok(err && err.code === 'EINVAL' && err.syscall === 'mmap', `a page wholly past EOF is refused (EINVAL), got ${err && err.code}`);
const dst = new Uint8Array(17);
addon.readMapped(fd, page + 3, dst); // unaligned offset: the addon aligns down to its page size
ok(Buffer.from(dst).equals(Buffer.from(pattern(2 * page + 10, 5).subarray(page + 3, page + 20))), 'readMapped at an unaligned offset');
addon.writeMapped(fd, 2 * page + 1, Uint8Array.of(1, 2, 3));
ok(new Uint8Array(map, 2 * page + 1, 3).join() === '1,2,3', 'writeMapped shows through mmap');

const [a, b] = addon.socketpair(addon.abi.SOCK_SEQPACKET);
const sent = addon.sendFds(a, Buffer.from('dma-buf'), [fd]);
ok(sent === 7, 'sendFds sent the payload');

const poller = new Promise((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error('poll: no readable event in 10 s')), 10000);
  const p = addon.poll(b, 1, (e, events) => {
    clearTimeout(timer);
    p.stop();
    if (e) reject(e);
    else resolve(events);
  });
});

poller
  .then((events) => {
    ok(events & 1, 'poll reports readable');
    const msg = addon.recvFds(b, 64, 4);
    ok(msg.payload.toString() === 'dma-buf' && msg.fds.length === 1 && !msg.truncated, 'recvFds got the payload and one fd');
    const theirs = addon.mmap(msg.fds[0], 2 * page, 0, true);
    ok(Buffer.from(theirs).equals(Buffer.from(map, 0, 2 * page)), 'the received fd maps the same memory');
    addon.munmap(theirs);
    addon.munmap(map);
    ok(map.byteLength === 0, 'munmap detaches');
    for (const f of [msg.fds[0], a, b, fd]) addon.close(f);
    console.log(
      `smoke ok: ${process.arch} node ${process.version}, page ${page}, addon ${path.relative(pkgDir, expected)}, ` +
        `${checks} checks, ${Date.now() - started} ms`,
    );
  })
  .catch((e) => {
    console.error(e);
    process.exit(1);
  });
