/**
 * The real kernel judges the software framework: the same seeded stream of random
 * ioctls goes to /dev/dma_heap/system and to the framework (mainline profile), and
 * result codes and returned bytes must agree (fd numbers aside). Replay a failure
 * with DMA_HEAP_DIFF_SEED=<the seed printed in the test name>.
 */
import os from 'node:os';
import { Framework, SoftwareFence, SoftwareFenceSource, type KernelRelease, type ProtectedHeapId } from '../lib/framework';
import { listHeaps } from '../lib';
import { readHeapFacts } from '../lib/heap-kind';
import { openHeap } from '../lib/heap';
import { loadAddon } from '../lib/native/load';
import { Vgem } from './devices/devices';
import { runFenceScenarios } from './fences/scenarios';
import { describeWith } from './helpers/expect';
import type { Kernel } from '../lib/kernel';
import { nativeKernel } from '../lib/chooser';
import {
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SET_NAME_A,
  DMA_BUF_SET_NAME_B,
  DMA_HEAP_IOCTL_ALLOC,
  IOC,
  IOC_IN,
  IOC_OUT,
  O_CLOEXEC,
  O_RDONLY,
  O_RDWR,
  O_WRONLY,
  U64_MAX,
  decodeAllocationData,
  encodeAllocationData,
  encodeU64,
  iocDecode,
  pageAlign,
} from '../lib/uapi';
import { kernelAvailable, openFds as fds } from './helpers/backends';
import { testIf } from './helpers/skip';

/** the framework release that follows the running kernel: 6.17+ names the default CMA area
 *  default_cma_region and has the 7.x heaps; before, the 6.12 profile */
const KERNEL = os.release();
const RELEASE: KernelRelease = (() => {
  const [major, minor] = KERNEL.split('.').map(Number);
  return major > 6 || (major === 6 && minor >= 17) ? '7.3' : '6.12';
})();

const seed = Number(process.env.DMA_HEAP_DIFF_SEED ?? Math.floor(Math.random() * 2 ** 31));
const HEAP_OPS = Number(process.env.DMA_HEAP_DIFF_OPS ?? 10000);
const BUF_OPS = 2000;
/** allocations really made stay at or under this: a real kernel OOM-kills on huge ones */
const SAFE_LEN = 1n << 20n;

/** mulberry32: small, seeded, good enough to spread cases */
function prng(s: number): () => number {
  let a = s >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Types whose commands the VFS answers before any driver sees them (FIBMAP/FIGETBSZ,
 * FIOCLEX/FIONBIO/..., FIFREEZE/FITHAW, FICLONE/FIDEDUPERANGE, FS_IOC_GETFSUUID): not the
 * dma-heap framework's to model, so the streams leave them out.
 */
const VFS_TYPES = new Set([0x00, 'T'.charCodeAt(0), 'X'.charCodeAt(0), 0x94, 0x15]);

type Outcome = { ok: true; ret: number; bytes: string } | { ok: false; code: string };

describe('differential: the software framework against the real kernel', () => {
  const rand = prng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
  const chance = (p: number) => rand() < p;
  const u32 = () => int(2 ** 32);
  const u64 = () => (BigInt(u32()) << 32n) | BigInt(u32());
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));

  function heapCase(page: number): { cmd: number; arg: Uint8Array | null } {
    for (;;) {
      const dir = chance(0.6) ? 3 : int(4);
      const magic = chance(0.85) ? 'H'.charCodeAt(0) : int(256);
      const nr = chance(0.75) ? 0 : chance(0.5) ? pick([1, 2]) : int(256);
      const size = chance(0.55) ? 24 : chance(0.5) ? pick([0, 4, 8, 12, 16, 20, 32, 48, 64]) : int(chance(0.9) ? 129 : 16384);
      const cmd = IOC(dir, magic, nr, size);
      if (VFS_TYPES.has(magic)) continue;
      if (chance(0.02)) return { cmd, arg: null };
      const length = chance(0.75) ? size : int(72);
      const len = pick([
        0n,
        1n,
        BigInt(page - 1),
        BigInt(page),
        BigInt(page + 1),
        BigInt(int(Number(SAFE_LEN)) + 1),
        SAFE_LEN,
        U64_MAX,
        U64_MAX - BigInt(page) + 2n,
        U64_MAX - BigInt(int(page - 1)),
      ]);
      const fd = chance(0.85) ? 0 : u32();
      const fdFlags = chance(0.85)
        ? pick([O_RDWR | O_CLOEXEC, O_RDONLY | O_CLOEXEC, O_WRONLY, O_RDWR, O_RDONLY, 3, O_CLOEXEC, 3 | O_CLOEXEC])
        : u32();
      const heapFlags = chance(0.9) ? 0n : chance(0.5) ? 1n << BigInt(int(64)) : u64();
      const arg = bytes(length);
      encodeAllocationData({ len, fd, fdFlags, heapFlags }, arg);
      // What length would the kernel really allocate? The addon zero-extends a short arg to
      // _IOC_SIZE, and only an IN command copies anything in.
      const inSize = (cmd & IOC_IN) !== 0 ? size : 0;
      const seen = new Uint8Array(Math.max(24, size));
      seen.set(arg.subarray(0, Math.min(arg.length, inSize)));
      const aligned = pageAlign(decodeAllocationData(seen).len, page);
      if (nr !== 0 || aligned === 0n || aligned <= SAFE_LEN) return { cmd, arg };
    }
  }

  /** run one ioctl; close whatever fd it made, reported or not */
  function run(k: Kernel, fd: number, cmd: number, arg: Uint8Array | null): { out: Outcome; made?: { size: number; info: string } } {
    const before = fds();
    let out: Outcome;
    try {
      const ret = k.ioctl(fd, cmd, arg);
      out = { ok: true, ret, bytes: '' };
    } catch (err) {
      return { out: { ok: false, code: (err as { code: string }).code } };
    }
    const made = [...fds()].filter((x) => !before.has(x));
    let info: { size: number; info: string } | undefined;
    for (const m of made) {
      info = { size: k.seekEnd(m), info: k.fdinfo(m).replace(/^(pos|mnt_id|ino|count):.*\n/gm, '') };
      k.close(m);
    }
    if (arg) {
      const copy = arg.slice();
      // The fd number the kernel reported differs between kernels: blank it, also the part
      // of it that a short copy-out (out_size 9..11) or a short arg holds.
      if ((cmd & IOC_OUT) !== 0 && made.length) copy.fill(0, 8, Math.min(12, iocDecode(cmd).size));
      out.bytes = Buffer.from(copy).toString('hex');
    }
    return { out, made: info };
  }

  testIf(kernelAvailable, 'needs /dev/dma_heap/system')(`the framework's heaps for release ${RELEASE} are the kernel's (${KERNEL}): names, kinds, accounting`, () => {
    const real = listHeaps({ backend: 'kernel' });
    const facts = readHeapFacts();
    // the kernel's CMA areas besides the default one are device-tree regions; its protected
    // heaps (a TEE, or the 7.x row's module once loaded) are tee_heap's
    const regions = [...facts.cmaAreas].filter((n) => n !== 'reserved').sort().map((name) => ({ name, size: 1 << 20 }));
    const protectedHeaps = real.filter((h) => h.kind === 'protected').map((h) => h.name.slice('protected,'.length) as ProtectedHeapId);
    const sim = new Framework({
      profile: 'mainline',
      release: RELEASE,
      cma: { size: real.some((h) => h.name === 'reserved') ? 1 << 20 : 0, ...(regions.length ? { regions } : {}) },
      ...(RELEASE === '7.3' ? { memAccounting: facts.memAccounting, protectedHeaps } : {}),
    });
    const shape = (hs: typeof real) => hs.filter((h) => h.kind !== 'other').map((h) => `${h.name} ${h.kind}${h.accounted ? ' accounted' : ''}`);
    console.log(`kernel ${KERNEL} (framework release ${RELEASE}): ${shape(real).join(', ')}`);
    expect(shape(listHeaps({ framework: sim }))).toEqual(shape(real));
    sim.dispose();
  });

  testIf(kernelAvailable, 'needs /dev/dma_heap/system')(`${HEAP_OPS} random heap ioctls agree with ${KERNEL} (release ${RELEASE}, seed ${seed})`, () => {
    const real = nativeKernel()!;
    const sim = new Framework({ profile: 'mainline', release: RELEASE });
    const rfd = real.openHeap('system');
    const sfd = sim.kernel.openHeap('system');
    const divergences: string[] = [];
    const counts = new Map<string, number>();
    try {
      for (let i = 0; i < HEAP_OPS; i++) {
        const { cmd, arg } = heapCase(real.pageSize);
        const a = run(real, rfd, cmd, arg && arg.slice());
        const b = run(sim.kernel, sfd, cmd, arg && arg.slice());
        const key = a.out.ok ? 'ok' : a.out.code;
        counts.set(key, (counts.get(key) ?? 0) + 1);
        if (JSON.stringify(a) !== JSON.stringify(b)) {
          divergences.push(`#${i} cmd 0x${cmd.toString(16)} arg ${arg ? Buffer.from(arg).toString('hex') : 'NULL'}\n  kernel ${JSON.stringify(a)}\n  software ${JSON.stringify(b)}`);
        }
      }
    } finally {
      real.close(rfd);
      sim.kernel.close(sfd);
    }
    console.log(`kernel ${KERNEL} (framework release ${RELEASE}), seed ${seed}: outcomes ${JSON.stringify(Object.fromEntries(counts))}`);
    expect(divergences.slice(0, 10)).toEqual([]);
    // The stream must exercise both sides of the rules, not just one error.
    expect(counts.get('ok')).toBeGreaterThan(HEAP_OPS / 20);
    expect(counts.get('EINVAL')).toBeGreaterThan(HEAP_OPS / 20);
  });

  testIf(kernelAvailable, 'needs /dev/dma_heap/system')(`${BUF_OPS} random dma-buf ioctls agree with ${KERNEL} (release ${RELEASE}, seed ${seed})`, () => {
    const real = nativeKernel()!;
    const sim = new Framework({ profile: 'mainline', release: RELEASE });
    const alloc = (k: Kernel) => {
      const h = k.openHeap('system');
      const arg = encodeAllocationData({ len: 8192n, fd: 0, fdFlags: O_RDWR | O_CLOEXEC, heapFlags: 0n });
      k.ioctl(h, DMA_HEAP_IOCTL_ALLOC, arg);
      k.close(h);
      return decodeAllocationData(arg).fd;
    };
    const rfd = alloc(real);
    const sfd = alloc(sim.kernel);
    const name = (k: Kernel, fd: number) => /^name:.*$/m.exec(k.fdinfo(fd))?.[0] ?? null;
    const divergences: string[] = [];
    try {
      for (let i = 0; i < BUF_OPS; i++) {
        let cmd: number;
        let arg: Uint8Array;
        const kind = int(4);
        if (kind === 0) {
          cmd = DMA_BUF_IOCTL_SYNC;
          arg = encodeU64(chance(0.7) ? BigInt(int(8)) : chance(0.5) ? 1n << BigInt(int(64)) : u64());
        } else if (kind === 1) {
          cmd = pick([DMA_BUF_SET_NAME_A, DMA_BUF_SET_NAME_B]);
          const n = int(40);
          arg = new Uint8Array(n + (chance(0.9) ? 1 : 0));
          for (let j = 0; j < n; j++) arg[j] = 0x21 + int(94); // printable ASCII: fdinfo is text
        } else if (kind === 2) {
          // 'b' commands by other sizes and directions; nr 2 and 3 (EXPORT/IMPORT_SYNC_FILE, 6.0+) are not modelled
          cmd = IOC(int(4), 'b', int(2), pick([0, 4, 8, 16, int(64)]));
          arg = bytes(16);
        } else {
          cmd = IOC(int(4), int(256), int(256), int(64));
          const { type } = iocDecode(cmd);
          if (type === 'b'.charCodeAt(0) || VFS_TYPES.has(type)) continue;
          arg = bytes(64);
        }
        const a = run(real, rfd, cmd, arg.slice());
        const b = run(sim.kernel, sfd, cmd, arg.slice());
        const na = name(real, rfd);
        const nb = name(sim.kernel, sfd);
        if (JSON.stringify([a.out.ok ? 'ok' : a.out, na]) !== JSON.stringify([b.out.ok ? 'ok' : b.out, nb])) {
          divergences.push(`#${i} cmd 0x${cmd.toString(16)} arg ${Buffer.from(arg).toString('hex')}\n  kernel ${JSON.stringify([a, na])}\n  software ${JSON.stringify([b, nb])}`);
        }
      }
    } finally {
      real.close(rfd);
      sim.kernel.close(sfd);
    }
    expect(divergences.slice(0, 10)).toEqual([]);
  });
});

/**
 * Fences: the same scenarios (a device attaching read and write fences, sync_files exported,
 * imported, signalled) on the real kernel with vgem playing the device and on the framework
 * with its SoftwareFenceSource: poll masks and sync_file status, fence counts and kinds agree.
 * Needs a vgem device: rows declaring it fail without one (test/helpers/expect.ts).
 */
describeWith('system', 'vgem')('differential: fences on the framework against the kernel with vgem', () => {
  test('poll masks and sync_file states agree step by step', async () => {
    const vgem = await Vgem.open(loadAddon()!);
    const handles = new Map<number, number>();
    let kernelRecord: Record<string, string>;
    const heap = openHeap('system', { backend: 'kernel' });
    try {
      kernelRecord = await runFenceScenarios(() => heap.alloc(65536), {
        attach: async (buf, access) => {
          if (!handles.has(buf.fd)) handles.set(buf.fd, await vgem.import(buf.fd));
          return vgem.attach(handles.get(buf.fd)!, access);
        },
        signal: (f) => vgem.signal(f as number),
      });
    } finally {
      heap.close();
      await vgem.closed();
    }
    const fw = new Framework();
    const source = new SoftwareFenceSource(fw);
    const softwareHeap = openHeap('system', { framework: fw });
    try {
      const software = await runFenceScenarios(() => softwareHeap.alloc(65536), {
        attach: async (buf, access) => source.attach(buf, access),
        signal: async (f) => (f as SoftwareFence).signal(),
      });
      expect(software).toEqual(kernelRecord);
    } finally {
      softwareHeap.close();
      fw.dispose();
    }
  });
});
