/**
 * One suite for protected memory (tee_heap's `protected,*` heaps, 6.18), run against every heap
 * that has it: the software framework's (test/conformance/protected.test.ts) and the real
 * kernel's in the 7.x row (test/kernel/heap-module.test.ts, once its module is loaded). What it
 * holds: allocation and sharing work; every CPU path throws ERR_DMA_BUF_NOT_CPU_VISIBLE before
 * any system call reaches the kernel; pools keep such buffers unmapped; nothing leaks.
 */
import { allocShareable, isDmaHeapError, type DmaBuf, type Heap } from '../../lib';
import { fromFd } from '../../lib/dmabuf';
import { newFds, openFds } from './fds';

const NOT_VISIBLE = { name: 'DmaBufStateError', code: 'ERR_DMA_BUF_NOT_CPU_VISIBLE' };

/** every CPU path of a buffer, each expected to throw the typed error */
export const CPU_PATHS: Array<[string, (b: DmaBuf) => unknown]> = [
  ['map()', (b) => b.map()],
  ['bytes()', (b) => b.bytes()],
  ['read()', (b) => b.read(0, 16)],
  ['write()', (b) => b.write(new Uint8Array([1, 2, 3]))],
  ["beginCpuAccess('read')", (b) => b.beginCpuAccess('read')],
  ["cpuAccess('readwrite')", (b) => b.cpuAccess('readwrite', () => 1)],
];

/**
 * `open()` opens a protected heap (kind 'protected'); `adoptOptions()` what fromFd needs to adopt
 * its fd again (the framework, in software).
 */
export function describeProtectedHeap(label: string, open: () => Heap, adoptOptions: () => object = () => ({})): void {
  describe(`protected memory: ${label}`, () => {
    let heap: Heap;
    let before: Set<number>;
    beforeEach(() => {
      before = openFds();
      heap = open();
    });
    afterEach(() => {
      heap.close();
    });

    test("the heap says it is protected; its buffers allocate, have a size and an exporter, and say they are not CPU-visible", () => {
      expect(heap.kind).toBe('protected');
      using buf = heap.alloc(3 * heap.pageSize + 1, { name: 'secure0' });
      expect(buf.size).toBe(4 * heap.pageSize);
      expect(buf.cpuVisible).toBe(false);
      expect(buf.info().size).toBe(buf.size);
      expect(buf.info().name).toBe('secure0');
    });

    test.each(CPU_PATHS)('%s throws ERR_DMA_BUF_NOT_CPU_VISIBLE, naming the heap, and the buffer lives on', (what, path) => {
      using buf = heap.alloc(heap.pageSize);
      let thrown: unknown;
      try {
        path(buf);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toMatchObject(NOT_VISIBLE);
      expect(isDmaHeapError(thrown, 'ERR_DMA_BUF_NOT_CPU_VISIBLE')).toBe(true);
      expect((thrown as Error).message).toContain(heap.name);
      expect((thrown as Error).message).toContain(what.replace(/\('.*'\)/, '('));
      expect(buf.closed).toBe(false);
      expect(buf.info().size).toBe(heap.pageSize);
    });

    test('endCpuAccess() is never refused (a bracket begun before a buffer was found unmappable must end): the kernel answers 0', () => {
      using buf = heap.alloc(heap.pageSize);
      expect(() => buf.endCpuAccess('write')).not.toThrow();
    });

    test('cpuAccessAsync rejects with the same error before waiting, and fn never runs', async () => {
      using buf = heap.alloc(heap.pageSize);
      const fn = jest.fn();
      await expect(buf.cpuAccessAsync('read', fn)).rejects.toMatchObject(NOT_VISIBLE);
      expect(fn).not.toHaveBeenCalled();
    });

    test('sharing works: dup, fromFd of its fd (which knows it is protected), a sync_file of its fences', async () => {
      using buf = heap.alloc(2 * heap.pageSize);
      using second = buf.dup();
      expect(second.cpuVisible).toBe(false);
      expect(() => second.bytes()).toThrow(expect.objectContaining(NOT_VISIBLE));
      using adopted = fromFd(buf.fd, adoptOptions());
      expect(adopted.size).toBe(2 * heap.pageSize);
      expect(adopted.cpuVisible).toBe(false);
      expect(() => adopted.read()).toThrow(expect.objectContaining(NOT_VISIBLE));
      using fence = buf.exportSyncFile('read');
      await fence.wait({ timeout: 5000 });
      buf.importSyncFile(fence, 'write');
      await buf.idle('readwrite', { timeout: 5000 });
    });

    test('a pool keeps its buffers unmapped: acquire and release work, a lease refuses bytes(), zeroOnRelease is refused', () => {
      const pool = heap.createPool({ size: heap.pageSize, count: 2 });
      const a = pool.acquire();
      const b = pool.acquire();
      expect(a.buffer.cpuVisible).toBe(false);
      expect(() => a.bytes()).toThrow(expect.objectContaining(NOT_VISIBLE));
      a.release();
      b.release();
      expect(pool.stats()).toMatchObject({ idle: 2, inUse: 0 });
      pool.close();
      expect(() => heap.createPool({ size: heap.pageSize, count: 1, zeroOnRelease: true })).toThrow(
        expect.objectContaining({ ...NOT_VISIBLE, message: expect.stringMatching(/zeroOnRelease/) }),
      );
    });

    test('allocShareable from a protected heap never falls back to ordinary memory', () => {
      // the software framework's heap is no /dev/dma_heap node: the dma-heap tier cannot serve,
      // and no other tier may; on the real kernel the heap itself serves
      let buf: DmaBuf | undefined;
      try {
        buf = allocShareable(heap.pageSize, { heap: heap.name, tiers: ['dma-heap', 'udmabuf', 'memfd', 'js'] });
      } catch (err) {
        expect(err).toMatchObject({ code: 'ERR_DMA_HEAP_NO_TIER', message: expect.stringMatching(/protected memory: no other tier stands in/) });
        return;
      }
      try {
        expect(buf.tier).toBe('dma-heap');
        expect(buf.cpuVisible).toBe(false);
      } finally {
        buf.close();
      }
    });

    test('nothing leaks: every fd the suite opened is closed', () => {
      for (let i = 0; i < 8; i++) {
        const buf = heap.alloc(heap.pageSize);
        for (const [, path] of CPU_PATHS) expect(() => path(buf)).toThrow();
        buf.close();
      }
      heap.close();
      expect(newFds(before)).toEqual([]);
    });
  });
}
