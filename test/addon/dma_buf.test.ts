/** src/dma_buf.cc: mmap, munmap, mappings the GC frees, readMapped/writeMapped. */
import fs from 'node:fs';
import { addonStatus } from '../../lib/native/load';
import * as uapi from '../../lib/uapi';
import { A, addonSuite, fdFlags, gcUntil, isOpen, mapsOf, memfd, O_CLOEXEC_OCTAL, page, SEEK_END, thrown } from './helpers';

addonSuite('addon: dma_buf', () => {
  describe('(c) mmap', () => {
    test('write through one mapping, read through another (MAP_SHARED)', () => {
      const { fd, name } = memfd(2 * page);
      const a = new Uint8Array(A.mmap(fd, 2 * page, 0, true));
      const b = new Uint8Array(A.mmap(fd, 2 * page, 0, true));
      expect(mapsOf(name)).toBe(2);
      a[0] = 0x11;
      a[2 * page - 1] = 0x22;
      expect(b[0]).toBe(0x11);
      expect(b[2 * page - 1]).toBe(0x22);
      A.munmap(a.buffer as ArrayBuffer);
      A.munmap(b.buffer as ArrayBuffer);
      expect(mapsOf(name)).toBe(0);
      A.close(fd);
    });

    test('a mapping at a page offset sees that page', () => {
      const { fd } = memfd(3 * page);
      A.writeMapped(fd, 2 * page, new Uint8Array(page).fill(3));
      const tail = new Uint8Array(A.mmap(fd, page, 2 * page, true));
      expect(tail.length).toBe(page);
      expect(tail[0]).toBe(3);
      expect(tail[page - 1]).toBe(3);
      A.munmap(tail.buffer as ArrayBuffer);
      A.close(fd);
    });

    test('a mapping stays valid after its fd is closed', () => {
      const { fd, name } = memfd(page);
      const view = new Uint8Array(A.mmap(fd, page, 0, true));
      A.close(fd);
      view[7] = 0x77;
      expect(view[7]).toBe(0x77);
      expect(mapsOf(name)).toBe(1);
      A.munmap(view.buffer as ArrayBuffer);
      expect(mapsOf(name)).toBe(0);
    });

    test('bad ranges fail with EINVAL (never a SIGBUS past the end of a memfd)', () => {
      const { fd, name } = memfd(page + 1); // the partial last page is mappable
      A.munmap(A.mmap(fd, 2 * page, 0, true));
      expect(thrown(() => A.mmap(fd, 3 * page, 0, true))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
      expect(thrown(() => A.mmap(fd, page, 2 * page, true))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
      expect(thrown(() => A.mmap(fd, page, 1, true))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
      expect(thrown(() => A.mmap(fd, 0, 0, true))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
      expect(thrown(() => A.mmap(-1, page, 0, true))).toMatchObject({ code: 'EBADF', syscall: 'mmap' });
      expect(mapsOf(name)).toBe(0);
      A.close(fd);
    });

    test('a read-only fd: EACCES for a writable mapping; a read-only one is never an ArrayBuffer', () => {
      const { fd, name } = memfd(page);
      A.writeMapped(fd, 0, new Uint8Array([7]));
      const ro = A.open(`/proc/self/fd/${fd}`, A.abi.O_RDONLY | A.abi.O_CLOEXEC);
      expect(thrown(() => A.mmap(ro, page, 0, true))).toMatchObject({ code: 'EACCES', syscall: 'mmap' });
      // V8 has no read-only ArrayBuffer: a JS write to PROT_READ pages would kill the process.
      expect(thrown(() => A.mmap(ro, page, 0, false))).toMatchObject({ name: 'TypeError', code: 'ERR_DMA_HEAP_READ_ONLY_MAPPING' });
      expect(mapsOf(name)).toBe(0);
      const back = new Uint8Array(1);
      A.readMapped(ro, 0, back);
      expect(back[0]).toBe(7);
      A.close(ro);
      A.close(fd);
    });

    test('fd ownership is per process: a number another thread closed and reused survives the first owner’s exit', async () => {
      const { Worker } = await import('node:worker_threads');
      // The very file this thread loaded: another build would keep its own ownership table.
      const file = addonStatus().file!;
      const worker = new Worker(
        `const a = require(${JSON.stringify(file)}); require('worker_threads').parentPort.postMessage(a.memfdCreate('worker-made', 1)); setInterval(() => {}, 1000);`,
        { eval: true },
      );
      const fd: number = await new Promise((resolve) => worker.once('message', resolve));
      A.close(fd); // this thread frees the worker's number...
      const mine = A.memfdCreate('main-made', 1); // ...and the kernel hands it out again
      expect(mine).toBe(fd);
      await worker.terminate();
      expect(fs.readlinkSync(`/proc/self/fd/${mine}`)).toMatch(/main-made/);
      A.close(mine);
    });
  });

  describe('(d) munmap', () => {
    test('detaches every view: length 0, throwing accessors throw TypeError; twice is a no-op', () => {
      const { fd, name } = memfd(page);
      const buffer = A.mmap(fd, page, 0, true);
      const view = new Uint8Array(buffer);
      const sub = view.subarray(16, 32);
      const dv = new DataView(buffer);
      view.fill(5);
      A.munmap(buffer);
      expect(mapsOf(name)).toBe(0);
      expect(buffer.byteLength).toBe(0);
      expect(view.length).toBe(0);
      expect(sub.length).toBe(0);
      expect(view[0]).toBeUndefined(); // element access on a detached view reads nothing
      expect(thrown(() => view.fill(1))).toMatchObject({ name: 'TypeError' });
      expect(thrown(() => view.set([1]))).toMatchObject({ name: 'TypeError' });
      expect(thrown(() => dv.getUint8(0))).toMatchObject({ name: 'TypeError' });
      expect(thrown(() => new Uint8Array(buffer, 0, 1))).toMatchObject({ name: 'TypeError' });
      A.munmap(buffer); // no-op
      A.close(fd);
    });

    test('anything but an mmap() ArrayBuffer is a TypeError', () => {
      const { fd } = memfd(page);
      const view = new Uint8Array(A.mmap(fd, page, 0, true));
      expect(thrown(() => A.munmap(new ArrayBuffer(8)))).toMatchObject({ name: 'TypeError' });
      const detached = new ArrayBuffer(8);
      structuredClone(detached, { transfer: [detached] });
      expect(thrown(() => A.munmap(detached))).toMatchObject({ name: 'TypeError' });
      expect(thrown(() => A.munmap(view as unknown as ArrayBuffer))).toMatchObject({ name: 'TypeError' });
      expect(thrown(() => A.munmap(Buffer.alloc(8).buffer as ArrayBuffer))).toMatchObject({ name: 'TypeError' });
      expect(view.length).toBe(page);
      A.munmap(view.buffer as ArrayBuffer);
      A.close(fd);
    });
  });

  describe('(e) garbage collection', () => {
    test('a forgotten mapping is unmapped by GC', async () => {
      const { fd, name } = memfd(page);
      (() => {
        new Uint8Array(A.mmap(fd, page, 0, true)).fill(9);
      })();
      expect(mapsOf(name)).toBe(1);
      expect(await gcUntil(() => mapsOf(name) === 0)).toBe(true);
      A.close(fd);
    });

    test('exactly once: a late finalizer never unmaps a newer mapping at the same address', async () => {
      const { fd, name } = memfd(page);
      let keep: Uint8Array | undefined;
      (() => {
        const old = A.mmap(fd, page, 0, true);
        A.munmap(old); // its finalizer is still to come
        keep = new Uint8Array(A.mmap(fd, page, 0, true)); // likely the very same address
      })();
      keep![0] = 1;
      await gcUntil(() => false, 5);
      expect(mapsOf(name)).toBe(1);
      keep![1] = 2; // would SIGSEGV had the old finalizer unmapped it
      expect(keep![0] + keep![1]).toBe(3);
      A.munmap(keep!.buffer as ArrayBuffer);
      expect(mapsOf(name)).toBe(0);
      A.close(fd);
    });

    test('mapped bytes count as external memory (GC pressure) until unmapped', () => {
      const size = 16 << 20;
      const { fd } = memfd(size);
      const before = process.memoryUsage().external;
      const buffer = A.mmap(fd, size, 0, true);
      const mapped = process.memoryUsage().external;
      expect(mapped - before).toBeGreaterThanOrEqual(size);
      A.munmap(buffer);
      expect(process.memoryUsage().external - before).toBeLessThan(size / 2);
      A.close(fd);
    });
  });

  describe('(h) readMapped / writeMapped', () => {
    test('round trip at an unaligned offset, seen by a mapping too', () => {
      const { fd, name } = memfd(3 * page);
      const data = Uint8Array.from({ length: page + 100 }, (_, i) => i & 0xff);
      A.writeMapped(fd, page - 50, data);
      const back = new Uint8Array(data.length);
      A.readMapped(fd, page - 50, back);
      expect(back).toEqual(data);
      const view = new Uint8Array(A.mmap(fd, 3 * page, 0, true));
      expect(view.subarray(page - 50, page - 50 + data.length)).toEqual(data);
      A.munmap(view.buffer as ArrayBuffer);
      expect(mapsOf(name)).toBe(0); // the transient mappings are gone
      A.close(fd);
    });

    test('empty is a no-op; past the end EINVAL; read-only fd EACCES on write', () => {
      const { fd } = memfd(page);
      A.readMapped(-1, 0, new Uint8Array(0));
      expect(thrown(() => A.readMapped(fd, page, new Uint8Array(page + 1)))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
      expect(thrown(() => A.writeMapped(fd, 2 * page, new Uint8Array(1)))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
      const ro = A.open(`/proc/self/fd/${fd}`, A.abi.O_RDONLY | A.abi.O_CLOEXEC);
      expect(thrown(() => A.writeMapped(ro, 0, new Uint8Array(1)))).toMatchObject({ code: 'EACCES', syscall: 'mmap' });
      A.readMapped(ro, 0, new Uint8Array(1));
      A.close(ro);
      A.close(fd);
    });

    test('lseek(SEEK_END) is the size; dup honours cloexec', () => {
      const { fd } = memfd(5 * page);
      expect(A.lseek(fd, 0, SEEK_END)).toBe(5 * page);
      const d1 = A.dup(fd, true);
      const d2 = A.dup(fd, false);
      expect(fdFlags(d1) & O_CLOEXEC_OCTAL).toBe(O_CLOEXEC_OCTAL);
      expect(fdFlags(d2) & O_CLOEXEC_OCTAL).toBe(0);
      expect(fs.fstatSync(d1).ino).toBe(fs.fstatSync(fd).ino);
      A.close(d1);
      A.close(d2);
      A.close(fd);
    });

    test('memfd seals', () => {
      const { fd } = memfd(page);
      A.addSeals(fd, uapi.F_SEAL_SHRINK);
      expect(thrown(() => A.ftruncate(fd, 0))).toMatchObject({ code: 'EPERM', syscall: 'ftruncate' });
      A.ftruncate(fd, 2 * page); // growing is still allowed
      A.close(fd);
    });
  });

  describe('(i) closeMapped / closeMappedAsync', () => {
    test('mmap with sizeKnown maps without checking; closeMapped detaches, unmaps and closes', () => {
      const fd = A.memfdBuffer('dma-heap:fast', 2 * page, 2 /* F_SEAL_SHRINK */);
      const ab = A.mmap(fd, 2 * page, 0, true, true);
      new Uint8Array(ab).fill(7);
      const view = new Uint8Array(ab, page);
      A.closeMapped(fd, ab);
      expect(ab.byteLength).toBe(0);
      expect(view.length).toBe(0);
      expect(isOpen(fd)).toBe(false);
      expect(() => A.closeMapped(fd)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'close' }));
    });

    test('closeMapped refuses an ArrayBuffer mmap did not make, before closing anything', () => {
      const { fd } = memfd(page);
      expect(() => A.closeMapped(fd, new ArrayBuffer(8))).toThrow(expect.objectContaining({ name: 'TypeError' }));
      expect(isOpen(fd)).toBe(true);
      A.closeMapped(fd);
      expect(isOpen(fd)).toBe(false);
    });

    test('closeMappedAsync detaches the mapping before it returns and closes the fd on the pool', async () => {
      const { fd, name } = memfd(4 * page);
      const view = new Uint8Array(A.mmap(fd, 4 * page, 0, true));
      view.fill(5);
      const closing = A.closeMappedAsync(fd, view.buffer as ArrayBuffer);
      expect(view.length).toBe(0);
      expect(mapsOf(name)).toBe(0);
      await expect(closing).resolves.toBeUndefined();
      expect(isOpen(fd)).toBe(false);
    });

    test('an ArrayBuffer not from mmap is refused before anything is closed', () => {
      const { fd } = memfd(page);
      const e = thrown(() => A.closeMappedAsync(fd, new ArrayBuffer(page)));
      expect(e).toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' });
      expect(isOpen(fd)).toBe(true);
      A.close(fd);
    });

    test('a close the kernel refuses rejects with its errno', async () => {
      const { fd } = memfd(page);
      A.close(fd);
      await expect(A.closeMappedAsync(fd)).rejects.toMatchObject({ code: 'EBADF', syscall: 'close' });
    });
  });
});
