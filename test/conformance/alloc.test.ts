import { totalmem } from 'node:os';
import { openHeap } from '../../lib/heap';
import { backends, newFds, openFds } from '../helpers/backends';

describe.each(backends())('allocation: $label', (backend) => {
  const heap = () => openHeap('system', backend.options());

  test('the heap is served by the backend under test', () => {
    using h = heap();
    expect(h.backend).toBe(backend.kind);
    expect(h.name).toBe('system');
    expect(h.path).toBe('/dev/dma_heap/system');
    expect(h.abi).toBe('mainline');
    expect(h.features()).toMatchObject({ supported: false });
    expect(h.features().reason).toMatch(/EINVAL/);
  });

  test('sizes are rounded up to whole pages', () => {
    using h = heap();
    const page = h.pageSize;
    for (const [ask, want] of [
      [1, page],
      [page, page],
      [page + 1, 2 * page],
      [BigInt(3 * page), 3 * page],
    ] as const) {
      using buf = h.alloc(ask);
      expect(buf.size).toBe(want);
      expect(buf.info().size).toBe(want);
    }
  });

  test('a buffer knows its exporter, heap, tier and backend', () => {
    using h = heap();
    using buf = h.alloc(4096);
    expect(buf.exporter).toBe('system');
    expect(buf.heap).toBe('system');
    expect(buf.backend).toBe(backend.kind);
    expect(buf.isDmaBuf).toBe(backend.kind === 'kernel');
    expect(buf.tier).toBe(backend.kind === 'kernel' ? 'dma-heap' : h.backing);
    expect(buf.fd).toBeGreaterThanOrEqual(0);
  });

  test.each([4096, 1 << 20])('memory is zeroed after reuse (%i bytes x 32, as the kernel selftest checks)', (size) => {
    using h = heap();
    for (let round = 0; round < 2; round++) {
      const bufs = Array.from({ length: 32 }, () => h.alloc(size));
      for (const b of bufs) {
        const bytes = b.bytes();
        expect(bytes.every((x) => x === 0)).toBe(true);
        bytes.fill(0xa5);
      }
      for (const b of bufs) b.close();
    }
  });

  test.each([
    ['zero', 0, RangeError],
    ['negative', -4096, RangeError],
    ['fraction', 1.5, RangeError],
    ['NaN', NaN, RangeError],
    ['Infinity', Infinity, RangeError],
    ['unsafe integer', 2 ** 60, RangeError],
    ['bigint over u64', 1n << 64n, RangeError],
    ['negative bigint', -1n, RangeError],
    ['string', '4096', TypeError],
    ['null', null, TypeError],
  ])('a %s size is refused in JS before any syscall', (_what, size, type) => {
    using h = heap();
    const before = openFds();
    expect(() => h.alloc(size as number)).toThrow(type);
    expect(newFds(before)).toEqual([]);
  });

  test('a size beyond physical memory fails with ENOMEM instead of meeting the OOM killer', async () => {
    using h = heap();
    const huge = BigInt(totalmem()) + 1n;
    const err = (() => {
      try {
        h.alloc(huge);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toMatchObject({ code: 'ENOMEM', errno: -12, syscall: 'ioctl', heap: 'system', path: '/dev/dma_heap/system' });
    await expect(h.allocAsync(1n << 62n)).rejects.toMatchObject({ code: 'ENOMEM' });
  });

  test('allocAsync allocates off the event loop and gives the same buffer', async () => {
    using h = heap();
    const bufs = await Promise.all([h.allocAsync(4096), h.allocAsync(1 << 20, { name: 'async' })]);
    expect(bufs.map((b) => b.size)).toEqual([h.pageSize, 1 << 20]);
    expect(bufs[1].info().name).toBe('async');
    for (const b of bufs) b.close();
  });

  test('fd flags: close-on-exec by default, read-only on request', () => {
    using h = heap();
    using rw = h.alloc(4096);
    expect(rw.info().flags & 0o2000003).toBe(0o2000002);
    using ro = h.alloc(4096, { readOnly: true });
    expect(ro.info().flags & 3).toBe(0);
    expect(ro.readOnly).toBe(true);
    using inherit = h.alloc(4096, { cloexec: false });
    expect(inherit.info().flags & 0o2000000).toBe(0);
  });

  test('a read-only buffer is never exposed as a writable ArrayBuffer, but can be read', () => {
    using h = heap();
    using buf = h.alloc(4096, { readOnly: true });
    expect(() => buf.map()).toThrow(expect.objectContaining({ code: 'ERR_DMA_BUF_READ_ONLY' }));
    expect(buf.read(0, 8).every((x) => x === 0)).toBe(true);
  });

  test('closing a heap leaves its buffers usable; closing twice is harmless', () => {
    const h = heap();
    const buf = h.alloc(8192);
    h.close();
    h.close();
    expect(() => h.alloc(4096)).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_CLOSED' }));
    buf.bytes().fill(7);
    expect(buf.read(8191, 1)[0]).toBe(7);
    buf.close();
  });

  test('no fd is left behind by a full cycle', () => {
    const before = openFds();
    {
      using h = heap();
      for (let i = 0; i < 20; i++) {
        using b = h.alloc(4096, { name: `cycle${i}` });
        b.cpuAccess('write', (bytes) => bytes.fill(i));
        b.dup().close();
      }
    }
    expect(newFds(before)).toEqual([]);
  });
});
