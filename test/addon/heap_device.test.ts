/** src/heap_device.cc: ioctl and its scratch memory. */
import os from 'node:os';
import * as uapi from '../../lib/uapi';
import { holdThreadPool } from '../helpers/threadpool';
import { A, addonSuite, FIONREAD, memfd, page, thrown } from './helpers';

addonSuite('addon: heap_device', () => {
  describe('(g) ioctl', () => {
    test('a too-short arg: the kernel writes into scratch, only arg.length bytes come back', async () => {
      const [a, b] = A.socketpair(A.abi.SOCK_STREAM);
      A.sendFds(a, new Uint8Array(258), []);
      const backing = new Uint8Array(8).fill(0xaa);
      const arg = backing.subarray(2, 3); // 1 byte; FIONREAD writes 4
      expect(A.ioctl(b, FIONREAD, arg)).toBe(0);
      expect([...backing]).toEqual([0xaa, 0xaa, 0x02, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa]);
      backing.fill(0xaa);
      expect(await A.ioctlAsync(b, FIONREAD, arg)).toBe(0);
      expect([...backing]).toEqual([0xaa, 0xaa, 0x02, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa]);
      const full = new Uint8Array(4);
      A.ioctl(b, FIONREAD, full);
      expect(new DataView(full.buffer).getInt32(0, true)).toBe(258);
      A.close(a);
      A.close(b);
    });

    test('a null arg passes NULL: EFAULT', () => {
      const [a, b] = A.socketpair(A.abi.SOCK_STREAM);
      expect(thrown(() => A.ioctl(a, FIONREAD, null))).toMatchObject({ code: 'EFAULT', syscall: 'ioctl' });
      A.close(a);
      A.close(b);
    });

    test('the dma-heap ALLOC number on a memfd: ENOTTY, arg untouched; async rejects alike', async () => {
      const { fd } = memfd(page);
      const arg = uapi.encodeAllocationData({ len: 4096n, fd: 0, fdFlags: uapi.O_RDWR | uapi.O_CLOEXEC, heapFlags: 0n });
      const copy = Uint8Array.from(arg);
      const expected = { code: 'ENOTTY', errno: -os.constants.errno.ENOTTY, syscall: 'ioctl' };
      expect(thrown(() => A.ioctl(fd, A.abi.DMA_HEAP_IOCTL_ALLOC, arg))).toMatchObject(expected);
      expect(thrown(() => A.ioctl(fd, A.abi.DMA_HEAP_IOCTL_ALLOC, arg.subarray(0, 1)))).toMatchObject(expected);
      expect(thrown(() => A.ioctl(fd, A.abi.DMA_HEAP_IOCTL_ALLOC | 0, arg))).toMatchObject(expected); // signed form
      await expect(A.ioctlAsync(fd, A.abi.DMA_HEAP_IOCTL_ALLOC, arg)).rejects.toMatchObject(expected);
      expect(arg).toEqual(copy);
      A.close(fd);
    });

    test('ioctlAsync works on the file its fd named when called: closing the fd and reusing the number before the pool thread runs changes nothing', async () => {
      const [a, b] = A.socketpair(A.abi.SOCK_STREAM);
      A.sendFds(a, new Uint8Array(258), []);
      const pool = await holdThreadPool();
      try {
        const arg = new Uint8Array(4);
        const pending = A.ioctlAsync(b, FIONREAD, arg);
        A.close(b);
        const [c, d] = A.socketpair(A.abi.SOCK_STREAM); // the lowest free numbers: b's among them
        expect([c, d]).toContain(b);
        A.sendFds(c === b ? d : c, new Uint8Array(7), []);
        await pool.release();
        expect(await pending).toBe(0);
        expect(new DataView(arg.buffer).getInt32(0, true)).toBe(258); // the first pair's count, not 7
        A.close(c);
        A.close(d);
      } finally {
        await pool.release();
      }
      A.close(a);
    });

    test('ioctlAsync settles later, off the event loop, and survives its arg being detached', async () => {
      const [a, b] = A.socketpair(A.abi.SOCK_STREAM);
      A.sendFds(a, new Uint8Array(3), []);
      let settled = false;
      const p = A.ioctlAsync(b, FIONREAD, new Uint8Array(4)).then((r) => {
        settled = true;
        return r;
      });
      await Promise.resolve();
      expect(settled).toBe(false);
      expect(await p).toBe(0);

      const { fd } = memfd(page);
      const buffer = A.mmap(fd, page, 0, true);
      const arg = new Uint8Array(buffer, 0, 4);
      const pending = A.ioctlAsync(b, FIONREAD, arg);
      A.munmap(buffer); // the copy-back must notice, not write into unmapped memory
      expect(await pending).toBe(0);
      expect(arg.length).toBe(0);
      A.close(fd);
      A.close(a);
      A.close(b);
    });
  });

  describe('(g2) heapAlloc', () => {
    test('heapAlloc refuses a number that is not an ALLOC ioctl before any syscall', () => {
      const { fd } = memfd(page);
      try {
        expect(() => A.heapAlloc(fd, FIONREAD, page, 2)).toThrow(expect.objectContaining({ name: 'TypeError' }));
      } finally {
        A.close(fd);
      }
    });

    // (qemu-user forwards no dma-heap ioctl: test/prebuilds/check.js skips this name there)
    test('heapAlloc with the dma-heap ALLOC number on a memfd: the kernel’s ENOTTY, as any non-heap fd', () => {
      const { fd } = memfd(page);
      try {
        expect(() => A.heapAlloc(fd, A.abi.DMA_HEAP_IOCTL_ALLOC, page, 2)).toThrow(expect.objectContaining({ code: 'ENOTTY', syscall: 'ioctl' }));
      } finally {
        A.close(fd);
      }
    });
  });
});
