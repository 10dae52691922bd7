import { openHeap } from '../../lib/heap';
import { backends } from '../helpers/backends';
import { kernelOf } from '../../lib/kernel';

describe.each(backends())('mapping: $label', (backend) => {
  const heap = () => openHeap('system', backend.options());

  test('map() is one zero-copy MAP_SHARED mapping, reused', () => {
    using h = heap();
    using buf = h.alloc(2 * h.pageSize);
    const ab = buf.map();
    expect(ab.byteLength).toBe(buf.size);
    expect(buf.map()).toBe(ab);
    new Uint8Array(ab).fill(0x5a);
    // A second, independent mapping of the same fd sees the bytes: they are shared, not copied.
    const other = kernelOf(h).mmap(buf.fd, buf.size, 0, true);
    expect(other.every((x) => x === 0x5a)).toBe(true);
    other[10] = 1;
    expect(new Uint8Array(ab)[10]).toBe(1);
    kernelOf(h).munmap(other);
  });

  test('a mapping stays valid after its fd is closed, until unmapped', () => {
    using h = heap();
    const buf = h.alloc(h.pageSize);
    const fd = kernelOf(h).dup(buf.fd, true);
    buf.close();
    const view = kernelOf(h).mmap(fd, h.pageSize, 0, true);
    kernelOf(h).close(fd);
    view.fill(0x42);
    expect(view[h.pageSize - 1]).toBe(0x42);
    kernelOf(h).munmap(view);
    expect(view.length).toBe(0);
  });

  test('mapping at a page offset sees the same bytes at that offset', () => {
    using h = heap();
    const page = h.pageSize;
    using buf = h.alloc(4 * page);
    const all = buf.bytes();
    for (let p = 0; p < 4; p++) all.fill(p + 1, p * page, (p + 1) * page);
    const tail = kernelOf(h).mmap(buf.fd, 2 * page, 2 * page, true);
    expect(tail[0]).toBe(3);
    expect(tail[page]).toBe(4);
    kernelOf(h).munmap(tail);
  });

  test.each([
    ['past the end', (page: number) => [page, 4 * page]],
    ['longer than the buffer', (page: number) => [5 * page, 0]],
    ['at an unaligned offset', (page: number) => [page, 1]],
  ])('mmap %s fails with EINVAL', (_what, range) => {
    using h = heap();
    using buf = h.alloc(4 * h.pageSize);
    const [length, offset] = range(h.pageSize);
    expect(() => kernelOf(h).mmap(buf.fd, length, offset, true)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'mmap' }));
  });

  test('close() detaches every view onto the mapping: no segfault, length 0', () => {
    using h = heap();
    const buf = h.alloc(h.pageSize);
    const ab = buf.map();
    const u8 = new Uint8Array(ab);
    const dv = new DataView(ab, 16);
    u8[0] = 9;
    buf.close();
    expect(ab.byteLength).toBe(0);
    expect(u8.length).toBe(0);
    expect(u8[0]).toBeUndefined();
    // The addon's ArrayBuffer comes from the main realm, not jest's sandbox: match on name, not constructor.
    expect(() => dv.getUint8(0)).toThrow(expect.objectContaining({ name: 'TypeError' }));
    // JS memory can't be detached and stay untransferable (postMessage must not move it away):
    // it is shrunk to 0 bytes instead, which cuts every view off the same way
    if (h.backing === 'js') expect(new Uint8Array(ab).length).toBe(0);
    else expect(() => new Uint8Array(ab)).toThrow(expect.objectContaining({ name: 'TypeError', message: expect.stringMatching(/detached/) }));
    expect(() => buf.map()).toThrow(expect.objectContaining({ code: 'ERR_DMA_BUF_CLOSED' }));
    buf.close();
  });

  test('`using` closes the buffer at the end of the scope', () => {
    using h = heap();
    let ab: ArrayBuffer;
    {
      using buf = h.alloc(4096);
      ab = buf.map();
      expect(ab.byteLength).toBe(buf.size);
    }
    expect(ab.byteLength).toBe(0);
  });

  test('read() and write() copy in and out at offsets, with bounds checks', () => {
    using h = heap();
    using buf = h.alloc(h.pageSize);
    buf.write(Buffer.from('dma-heap'), 100);
    expect(buf.read(100, 8).toString()).toBe('dma-heap');
    expect(buf.bytes()[100]).toBe('d'.charCodeAt(0));
    expect(() => buf.read(h.pageSize - 1, 2)).toThrow(RangeError);
    expect(() => buf.write(new Uint8Array(2), h.pageSize - 1)).toThrow(RangeError);
    expect(() => buf.write('x' as unknown as Uint8Array)).toThrow(TypeError);
  });

  test('a dup shares the memory; closing one handle leaves the other working', () => {
    using h = heap();
    const a = h.alloc(4096);
    const b = a.dup();
    a.bytes()[0] = 77;
    a.close();
    expect(b.bytes()[0]).toBe(77);
    expect(b.info().ino).toBeGreaterThan(0);
    b.close();
  });
});
