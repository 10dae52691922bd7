/**
 * The addon's one-crossing calls for the per-buffer hot path: memfdBuffer (memfd_create,
 * ftruncate, F_ADD_SEALS), heapAlloc (DMA_HEAP_IOCTL_ALLOC with the struct on the stack),
 * mmap's sizeKnown (no fstat) and closeMapped (munmap + close). Without the addon there is
 * nothing to test, and the suite says so.
 */
import fs from 'node:fs';
import { loadAddon } from '../lib/native/load';

const addon = process.env.DMA_HEAP_ADDON === '0' ? null : loadAddon();
const withAddon = addon ? describe : (_name: string, _fn: () => void) => {
  test('without the addon nothing here exists: the software framework serves on JS memory', () => {
    expect(process.env.DMA_HEAP_ADDON === '0' || process.platform !== 'linux').toBe(true);
  });
};
const A = addon as NonNullable<typeof addon> & {
  memfdBuffer(name: string, size: number, seals: number): number;
  heapAlloc(fd: number, cmd: number, len: number, fdFlags: number): number;
  closeMapped(fd: number, mapping?: ArrayBuffer): void;
  mmap(fd: number, length: number, offset: number, writable: boolean, sizeKnown?: boolean): ArrayBuffer;
};
const isOpen = (fd: number) => fs.existsSync(`/proc/self/fd/${fd}`);
const F_SEAL_SHRINK = 2;

withAddon('addon fast path', () => {
  test('memfdBuffer makes a sealed memfd of the size asked, O_CLOEXEC, in one call', () => {
    const fd = A.memfdBuffer('dma-heap:fast', 3 * 4096, F_SEAL_SHRINK);
    try {
      expect(fs.fstatSync(fd).size).toBe(3 * 4096);
      expect(A.getSeals(fd) & F_SEAL_SHRINK).toBe(F_SEAL_SHRINK);
      expect(fs.readlinkSync(`/proc/self/fd/${fd}`)).toMatch(/^\/memfd:dma-heap:fast/);
      const flags = parseInt(/^flags:\s*([0-7]+)/m.exec(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1], 8);
      expect(flags & 0o2000000).toBe(0o2000000);
    } finally {
      A.close(fd);
    }
  });

  test('memfdBuffer failures are errno errors naming the syscall, and leave no fd', () => {
    const before = fs.readdirSync('/proc/self/fd').length;
    expect(() => A.memfdBuffer('x', 4096, 0x7fff0000)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'fcntl' }));
    expect(() => A.memfdBuffer('x', -1, 0)).toThrow(expect.objectContaining({ name: 'RangeError', code: 'ERR_OUT_OF_RANGE' }));
    expect(fs.readdirSync('/proc/self/fd').length).toBe(before);
  });

  test('mmap with sizeKnown maps without checking; closeMapped detaches, unmaps and closes', () => {
    const fd = A.memfdBuffer('dma-heap:fast', 8192, F_SEAL_SHRINK);
    const ab = A.mmap(fd, 8192, 0, true, true);
    new Uint8Array(ab).fill(7);
    const view = new Uint8Array(ab, 4096);
    A.closeMapped(fd, ab);
    expect(ab.byteLength).toBe(0);
    expect(view.length).toBe(0);
    expect(isOpen(fd)).toBe(false);
    expect(() => A.closeMapped(fd)).toThrow(expect.objectContaining({ code: 'EBADF', syscall: 'close' }));
  });

  test('closeMapped refuses an ArrayBuffer mmap did not make, before closing anything', () => {
    const fd = A.memfdBuffer('dma-heap:fast', 4096, 0);
    expect(() => A.closeMapped(fd, new ArrayBuffer(8))).toThrow(expect.objectContaining({ name: 'TypeError' }));
    expect(isOpen(fd)).toBe(true);
    A.closeMapped(fd);
    expect(isOpen(fd)).toBe(false);
  });

  test('heapAlloc refuses a number that is not an ALLOC ioctl, and reports the kernel’s errno', () => {
    const fd = A.memfdBuffer('dma-heap:fast', 4096, 0);
    try {
      expect(() => A.heapAlloc(fd, 0x541b, 4096, 2)).toThrow(expect.objectContaining({ name: 'TypeError' }));
      // a memfd has no such ioctl: ENOTTY, as any non-heap fd
      expect(() => A.heapAlloc(fd, A.abi.DMA_HEAP_IOCTL_ALLOC, 4096, 2)).toThrow(expect.objectContaining({ code: 'ENOTTY', syscall: 'ioctl' }));
    } finally {
      A.close(fd);
    }
  });
});
