import type { Heap } from '../../lib/heap';
import { openHeap } from '../../lib/heap';
import {
  DMA_HEAP_IOCTL_ALLOC,
  DMA_HEAP_V14_IOCTL_ALLOC,
  DMA_HEAP_V14_IOCTL_GET_FEATURES,
  IO,
  IOR,
  IOW,
  IOWR,
  O_CLOEXEC,
  O_RDONLY,
  O_RDWR,
  U64_MAX,
  decodeAllocationData,
  encodeAllocationData,
} from '../../lib/uapi';
import { backends, newFds, openFds } from '../helpers/backends';
import { kernelOf } from '../../lib/kernel';

const alloc = (len: bigint, over: Partial<{ fd: number; fdFlags: number; heapFlags: bigint }> = {}, into?: Uint8Array) =>
  encodeAllocationData({ len, fd: 0, fdFlags: O_RDWR | O_CLOEXEC, heapFlags: 0n, ...over }, into);

/** run a raw ioctl on the heap device; returns the fd the kernel reported (closed at once) or the error code */
function raw(h: Heap, cmd: number, arg: Uint8Array | null): { ok: true; fd: number } | { ok: false; code: string } {
  try {
    kernelOf(h).ioctl(h.fd, cmd, arg);
  } catch (err) {
    return { ok: false, code: (err as { code: string }).code };
  }
  const fd = arg ? decodeAllocationData(arg).fd : 0;
  if (fd > 0) kernelOf(h).close(fd);
  return { ok: true, fd };
}

describe.each(backends())('the dma-heap ioctl ABI: $label', (backend) => {
  const heap = () => openHeap('system', backend.options());

  test('ALLOC is 0xC0184800 and allocates with the 24-byte struct', () => {
    expect(DMA_HEAP_IOCTL_ALLOC).toBe(0xc0184800);
    using h = heap();
    const arg = alloc(1n);
    const r = raw(h, DMA_HEAP_IOCTL_ALLOC, arg);
    expect(r).toMatchObject({ ok: true });
    expect((r as { fd: number }).fd).toBeGreaterThan(0);
  });

  test('an older 16-byte struct allocates (missing fields read as zero)', () => {
    using h = heap();
    const older = alloc(4096n, {}, new Uint8Array(16));
    expect(raw(h, IOWR('H', 0, 16), older)).toMatchObject({ ok: true });
    expect(decodeAllocationData(older).fd).toBeGreaterThan(0);
  });

  test('a newer 48-byte struct allocates and its tail comes back unchanged', () => {
    using h = heap();
    const newer = new Uint8Array(48);
    for (let i = 24; i < 48; i++) newer[i] = 0xc0 + i;
    alloc(4096n, {}, newer);
    const tail = newer.slice(24);
    expect(raw(h, IOWR('H', 0, 48), newer)).toMatchObject({ ok: true });
    expect(newer.slice(24)).toEqual(tail);
  });

  test.each([
    ['fd != 0 on input', alloc(4096n, { fd: 1 })],
    ['unknown heap_flags', alloc(4096n, { heapFlags: 1n })],
    ['heap_flags high bit', alloc(4096n, { heapFlags: 1n << 63n })],
    ['fd_flags outside O_CLOEXEC|O_ACCMODE', alloc(4096n, { fdFlags: O_RDWR | 0o4000 })],
    ['len 0', alloc(0n)],
    ['len 2^64-1 (page-align overflow)', alloc(U64_MAX)],
    ['len 2^64-4095 (page-align overflow)', alloc(U64_MAX - 4094n)],
  ])('ALLOC with %s fails with EINVAL', (_what, arg) => {
    using h = heap();
    const before = openFds();
    expect(raw(h, DMA_HEAP_IOCTL_ALLOC, arg)).toEqual({ ok: false, code: 'EINVAL' });
    expect(newFds(before)).toEqual([]);
  });

  test('fd_flags O_RDONLY allocates a read-only buffer', () => {
    using h = heap();
    const arg = alloc(4096n, { fdFlags: O_RDONLY | O_CLOEXEC });
    kernelOf(h).ioctl(h.fd, DMA_HEAP_IOCTL_ALLOC, arg);
    const fd = decodeAllocationData(arg).fd;
    expect(() => kernelOf(h).mmap(fd, 4096, 0, true)).toThrow(expect.objectContaining({ code: 'EACCES' }));
    kernelOf(h).readMapped(fd, 0, new Uint8Array(16)); // readable through a private read-only mapping
    kernelOf(h).close(fd);
  });

  test.each([
    ['nr 1', IOWR('H', 1, 24)],
    ['nr 2', IOWR('H', 2, 24)],
    ['_IO(H, 0)', IO('H', 0)],
    ['_IOR(H, 0, 24): nothing is read in, so len is 0', IOR('H', 0, 24)],
    ['TCGETS', 0x5401],
    ['v14 GET_FEATURES: decodes as ALLOC with len 0', DMA_HEAP_V14_IOCTL_GET_FEATURES],
    ['v14 ALLOC at nr 1', DMA_HEAP_V14_IOCTL_ALLOC],
  ])('%s fails with EINVAL, never ENOTTY', (_what, cmd) => {
    using h = heap();
    const before = openFds();
    expect(raw(h, cmd, alloc(4096n, {}, new Uint8Array(24)))).toEqual({ ok: false, code: 'EINVAL' });
    expect(newFds(before)).toEqual([]);
  });

  test("the magic byte is never checked: 'Z' with nr 0 allocates", () => {
    using h = heap();
    expect(raw(h, IOWR('Z', 0, 24), alloc(4096n))).toMatchObject({ ok: true });
  });

  test('_IOW allocates but never reports the fd (it leaks, as on the real kernel)', () => {
    using h = heap();
    const before = openFds();
    const arg = alloc(4096n);
    kernelOf(h).ioctl(h.fd, IOW('H', 0, 24), arg);
    expect(decodeAllocationData(arg).fd).toBe(0);
    const leaked = newFds(before);
    expect(leaked).toHaveLength(1);
    kernelOf(h).close(leaked[0]);
  });

  test('a NULL argument is EFAULT', () => {
    using h = heap();
    expect(raw(h, DMA_HEAP_IOCTL_ALLOC, null)).toEqual({ ok: false, code: 'EFAULT' });
  });

  test('ioctlAsync follows the same rules', async () => {
    using h = heap();
    await expect(kernelOf(h).ioctlAsync(h.fd, DMA_HEAP_IOCTL_ALLOC, alloc(0n))).rejects.toMatchObject({ code: 'EINVAL' });
    const arg = alloc(4096n);
    await expect(kernelOf(h).ioctlAsync(h.fd, DMA_HEAP_IOCTL_ALLOC, arg)).resolves.toBe(0);
    kernelOf(h).close(decodeAllocationData(arg).fd);
  });
});
