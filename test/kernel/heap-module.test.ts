// Heaps that appear after start-up, and protected heaps (Linux 6.18+ tee_heap: `protected,*`),
// on the arm64-7-16k row (DMA_HEAP_EXPECT=heap-module). The row's kernel loads modules and the rig
// ships test/kernel/modules/dma_heap_protected.ko (built against that kernel, not loaded at boot):
// it registers `protected,secure-video` with tee_heap's exact dma_buf_ops (no mmap, no
// begin/end_cpu_access) over ordinary pages, so the real dma-buf core answers for a protected
// buffer (tee_heap itself needs OP-TEE in a secure world, which qemu's rig does not have).
//
// One file for both hazards, in this order: a module loads once per boot, and the appearance must
// be watched before anything else loads it. Measured on 7.3.4 (16 KiB pages), through the addon:
//   mmap(MAP_SHARED, PROT_READ|PROT_WRITE) of a protected buffer → EINVAL (no .mmap: dma_buf_mmap_internal);
//   DMA_BUF_IOCTL_SYNC START|RW and END|RW → 0 (the core waits for fences, no exporter hook);
//   fdinfo exp_name → `tee` (tee_heap's KBUILD_MODNAME), not the heap's name.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { listHeaps, openHeap, watchHeaps, type HeapEntry } from '../../lib';
import * as uapi from '../../lib/uapi';
import { A, page, thrown } from '../addon/helpers';
import { PROTECTED_HEAP, describeWith, heapModulePath } from '../helpers/expect';
import { describeProtectedHeap } from '../helpers/protected-suite';

const run = promisify(execFile);
const DEV = `/dev/dma_heap/${PROTECTED_HEAP}`;

describeWith('heap-module')('a heap registered after start-up: the protected test heap module', () => {
  test('watchHeaps() reports the heap insmod registers, with its kind, within 10 s', async () => {
    expect(existsSync(DEV)).toBe(false); // nothing loads the module at boot
    expect(listHeaps({ backend: 'kernel' }).map((h) => h.name)).not.toContain(PROTECTED_HEAP);
    using watcher = watchHeaps({ backend: 'kernel' });
    let timer: NodeJS.Timeout | undefined;
    const added = new Promise<HeapEntry>((resolve, reject) => {
      watcher.on('added', (h: HeapEntry) => { if (h.name === PROTECTED_HEAP) resolve(h); });
      timer = setTimeout(() => reject(new Error(`no 'added' event for ${PROTECTED_HEAP} within 10 s of insmod`)), 10_000);
    });
    try {
      await run('insmod', [heapModulePath()!]);
      const h = await added;
      expect(h).toMatchObject({ name: PROTECTED_HEAP, path: DEV, kind: 'protected', accessible: true });
    } finally {
      clearTimeout(timer);
    }
    expect(readFileSync('/proc/modules', 'utf8')).toMatch(/^dma_heap_protected /m);
    expect(listHeaps({ backend: 'kernel' }).find((h) => h.name === PROTECTED_HEAP)).toMatchObject({ kind: 'protected', accounted: false });
  });

  test('the watcher stops on close(): no event after it, and the process can exit', () => {
    const watcher = watchHeaps({ backend: 'kernel' });
    const seen: string[] = [];
    watcher.on('added', (h: HeapEntry) => seen.push(h.name));
    watcher.close();
    watcher.close(); // twice is harmless
    expect(seen).toEqual([]);
  });
});

describeWith('heap-module')('protected buffers: allocatable and shareable, never CPU-visible', () => {
  beforeAll(async () => {
    if (!existsSync(DEV)) await run('insmod', [heapModulePath()!]); // when run alone (-t)
  });

  test('the kernel itself: mmap is EINVAL, DMA_BUF_IOCTL_SYNC answers 0, the exporter is tee', () => {
    const heapFd = A.open(DEV, uapi.O_RDONLY | uapi.O_CLOEXEC);
    const fd = A.heapAlloc(heapFd, A.abi.DMA_HEAP_IOCTL_ALLOC, 2 * page, uapi.O_RDWR | uapi.O_CLOEXEC);
    try {
      // (the addon maps MAP_SHARED, PROT_READ|PROT_WRITE: a read-only mapping it refuses itself)
      expect(thrown(() => A.mmap(fd, 2 * page, 0, true))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
      const arg = new Uint8Array(8);
      const flags = new DataView(arg.buffer);
      flags.setBigUint64(0, uapi.DMA_BUF_SYNC_START | uapi.DMA_BUF_SYNC_RW, true);
      expect(A.ioctl(fd, uapi.DMA_BUF_IOCTL_SYNC, arg)).toBe(0);
      flags.setBigUint64(0, uapi.DMA_BUF_SYNC_END | uapi.DMA_BUF_SYNC_RW, true);
      expect(A.ioctl(fd, uapi.DMA_BUF_IOCTL_SYNC, arg)).toBe(0);
      const info = readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8');
      expect(info).toMatch(/^exp_name:\s+tee$/m);
      expect(info).toMatch(new RegExp(`^size:\\s+${2 * page}$`, 'm'));
    } finally {
      A.close(fd);
      A.close(heapFd);
    }
  });
});

// The package on it: the same suite the software framework's protected heap passes
// (test/conformance/protected.test.ts), here answered by the real dma-buf core.
describeWith('heap-module')('the package on the real protected heap', () => {
  beforeAll(async () => {
    if (!existsSync(DEV)) await run('insmod', [heapModulePath()!]); // when run alone (-t)
  });
  describeProtectedHeap('real kernel (tee_heap-shaped module)', () => openHeap(PROTECTED_HEAP, { backend: 'kernel' }));
});
