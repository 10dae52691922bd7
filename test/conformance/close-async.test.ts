/**
 * closeAsync(): the buffer is closed when it returns (views detached, `closed` true, the fd
 * no longer the program's to use); the kernel gets the fd back on the libuv pool, where the
 * last close frees the pages, and the promise settles after that. On every backend.
 */
import { openHeap } from '../../lib/heap';
import { backends } from '../helpers/backends';
import { isOpen, openFds } from '../helpers/fds';

describe.each(backends())('closeAsync: $label', (backend) => {
  test('closed before it returns, the fd gone once it resolves, idempotent', async () => {
    using heap = openHeap('system', backend.options());
    const before = openFds();
    const buf = heap.alloc(1 << 20, { name: 'closing' });
    const view = buf.bytes();
    view.fill(0xa5);
    const fd = buf.fd;
    const closing = buf.closeAsync();
    expect(buf.closed).toBe(true);
    expect(view.length).toBe(0); // detached now, not when the promise settles
    expect(() => buf.bytes()).toThrow(expect.objectContaining({ code: 'ERR_DMA_BUF_CLOSED' }));
    await expect(closing).resolves.toBeUndefined();
    expect(isOpen(fd)).toBe(false);
    await expect(buf.closeAsync()).resolves.toBeUndefined();
    expect(() => buf.close()).not.toThrow();
    expect([...openFds()].filter((n) => !before.has(n))).toEqual([]);
  });

  test('`await using` closes asynchronously; other handles on the buffer keep its memory', async () => {
    using heap = openHeap('system', backend.options());
    const before = openFds();
    const buf = heap.alloc(64 * 1024);
    buf.bytes().fill(7);
    const other = buf.dup();
    {
      await using scoped = other;
      expect(scoped.bytes()[100]).toBe(7);
    }
    expect(other.closed).toBe(true);
    expect(buf.bytes()[65535]).toBe(7);
    await buf.closeAsync();
    expect([...openFds()].filter((n) => !before.has(n))).toEqual([]);
  });

  test('many closes in flight at once: each fd closed once, none of ours touched', async () => {
    using heap = openHeap('system', backend.options());
    const keep = heap.alloc(4096);
    keep.bytes().fill(1);
    const before = openFds();
    const bufs = Array.from({ length: 32 }, (_, i) => {
      const b = heap.alloc(256 * 1024);
      b.bytes().fill(i);
      return b;
    });
    await Promise.all(bufs.map((b) => b.closeAsync()));
    expect([...openFds()].filter((n) => !before.has(n))).toEqual([]);
    expect([...before].filter((n) => !isOpen(n))).toEqual([]);
    expect(keep.bytes()[4095]).toBe(1);
    keep.close();
  });
});
