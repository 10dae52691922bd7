/**
 * Issue 18, item 1: where a buffer has no mapping to give — it is read-only, or the runtime
 * refuses external ArrayBuffers — cpuAccess, cpuAccessAsync and write() say so with a typed
 * error before any system call, instead of handing `fn` an empty array (a loop over
 * `bytes.length` then checks nothing) or failing with a raw EACCES from mmap.
 */
import { DmaBuf } from '../../lib/dmabuf';
import { Framework } from '../../lib/framework';
import { openHeap } from '../../lib/heap';
import { INTERNAL_CONSTRUCTOR } from '../../lib/internal-token';
import type { Kernel } from '../../lib/kernel';

/** A framework's kernel that records every call reaching it (and, `sandboxed`, fails mmap as
 *  the addon does under Electron's V8 sandbox). */
function recording(inner: Kernel, sandboxed = false): { kernel: Kernel; calls: string[] } {
  const calls: string[] = [];
  const kernel = new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push(String(prop));
        if (sandboxed && prop === 'mmap') {
          throw Object.assign(new Error('external buffers are not allowed'), { code: 'ERR_DMA_HEAP_NO_EXTERNAL_BUFFERS' });
        }
        return value.apply(target, args);
      };
    },
  });
  return { kernel, calls };
}

describe('a buffer with no mapping to give', () => {
  let fw: Framework;
  let plain: DmaBuf;
  beforeEach(() => {
    fw = new Framework();
    plain = openHeap('system', { framework: fw }).alloc(4096);
    plain.write(Buffer.from([7, 7, 7, 7]));
  });
  afterEach(() => fw.dispose());

  /** a second handle on `plain`'s buffer, read-only or sandboxed, whose kernel calls are recorded */
  function handle(how: { readOnly?: boolean; sandboxed?: boolean }): { buf: DmaBuf; calls: string[] } {
    const { kernel, calls } = recording(fw.kernel, how.sandboxed);
    const fd = fw.kernel.dup(plain.fd, true);
    return { buf: new DmaBuf(INTERNAL_CONSTRUCTOR, fd, { kernel, tier: plain.tier, readOnly: how.readOnly ?? false, size: plain.size }), calls };
  }

  test.each(['read', 'write', 'readwrite'] as const)('read-only, cpuAccess(%s): ERR_DMA_BUF_READ_ONLY, fn never runs, no SYNC', (access) => {
    const { buf, calls } = handle({ readOnly: true });
    const fn = jest.fn();
    expect(() => buf.cpuAccess(access, fn)).toThrow(
      expect.objectContaining({ name: 'DmaBufStateError', code: 'ERR_DMA_BUF_READ_ONLY', message: expect.stringMatching(/read\(\)/) }),
    );
    expect(fn).not.toHaveBeenCalled();
    expect(calls).toEqual([]);
    buf.close();
  });

  test.each(['read', 'write', 'readwrite'] as const)('read-only, cpuAccessAsync(%s): rejects ERR_DMA_BUF_READ_ONLY before waiting', async (access) => {
    const { buf, calls } = handle({ readOnly: true });
    const fn = jest.fn();
    await expect(buf.cpuAccessAsync(access, fn)).rejects.toMatchObject({ name: 'DmaBufStateError', code: 'ERR_DMA_BUF_READ_ONLY' });
    expect(fn).not.toHaveBeenCalled();
    expect(calls).toEqual([]);
    buf.close();
  });

  test('read-only, write(): ERR_DMA_BUF_READ_ONLY before any syscall (not EACCES from mmap); read() still copies out', () => {
    const { buf, calls } = handle({ readOnly: true });
    expect(() => buf.write(Buffer.from([1]))).toThrow(expect.objectContaining({ name: 'DmaBufStateError', code: 'ERR_DMA_BUF_READ_ONLY' }));
    expect(calls).toEqual([]);
    expect([...plain.read(0, 4)]).toEqual([7, 7, 7, 7]);
    // the documented way to read it in a bracket
    buf.beginCpuAccess('read');
    expect([...buf.read(0, 4)]).toEqual([7, 7, 7, 7]);
    buf.endCpuAccess('read');
    buf.close();
  });

  test('the issue as reported: heap.alloc(4096, { readOnly: true }) through the public API', () => {
    using ro = openHeap('system', { framework: fw }).alloc(4096, { readOnly: true });
    const fn = jest.fn();
    for (const access of ['read', 'write', 'readwrite'] as const) {
      expect(() => ro.cpuAccess(access, fn)).toThrow(expect.objectContaining({ code: 'ERR_DMA_BUF_READ_ONLY' }));
    }
    expect(() => ro.write(Buffer.from([1]))).toThrow(expect.objectContaining({ code: 'ERR_DMA_BUF_READ_ONLY' }));
    expect(fn).not.toHaveBeenCalled();
  });

  test('no external ArrayBuffers: cpuAccess and cpuAccessAsync throw ERR_DMA_HEAP_NO_EXTERNAL_BUFFERS, no SYNC', async () => {
    const { buf, calls } = handle({ sandboxed: true });
    const fn = jest.fn();
    expect(() => buf.cpuAccess('write', fn)).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_NO_EXTERNAL_BUFFERS' }));
    await expect(buf.cpuAccessAsync('read', fn)).rejects.toMatchObject({ code: 'ERR_DMA_HEAP_NO_EXTERNAL_BUFFERS' });
    expect(fn).not.toHaveBeenCalled();
    expect(calls).toEqual(['mmap', 'mmap']); // the refused mappings, and nothing after them
    buf.close();
  });

  test('a mappable buffer: fn gets the whole live mapping, not a copy', async () => {
    const { buf } = handle({});
    buf.cpuAccess('readwrite', (bytes) => {
      expect(bytes.length).toBe(plain.size);
      bytes[0] = 9;
    });
    await buf.cpuAccessAsync('write', (bytes) => {
      bytes[1] = 9;
    });
    expect([...plain.read(0, 3)]).toEqual([9, 9, 7]);
    buf.close();
  });
});
