/**
 * Issue 19, item 1: protected heaps (tee_heap, 6.18) in the software framework, which follows
 * the real one (drivers/tee/tee_heap.c read in linux-source-7.3; the kernel's answers measured in
 * the 7.x row through a module with tee_heap's dma_buf_ops): allocation and sharing work, the
 * CPU cannot map. The same suite runs on the real kernel in test/kernel/heap-module.test.ts.
 */
import { openHeap } from '../../lib';
import { Framework } from '../../lib/framework';
import { DMA_BUF_IOCTL_SYNC, DMA_BUF_SYNC_READ, DMA_BUF_SYNC_START, encodeU64 } from '../../lib/uapi';
import { describeProtectedHeap } from '../helpers/protected-suite';

let fw: Framework;
beforeEach(() => {
  fw = new Framework({ protectedHeaps: ['secure-video', 'trusted-ui'] });
});
afterEach(() => fw.dispose());

describeProtectedHeap('software framework', () => openHeap('protected,secure-video', { framework: fw }), () => ({ framework: fw }));

describe('the framework follows tee_heap', () => {
  test("its heaps are named as OP-TEE's, listed as protected, registered after system and CMA", () => {
    const heaps = fw.kernel.heaps();
    expect(heaps.filter((h) => h.kind === 'protected').map((h) => h.name)).toEqual(['protected,secure-video', 'protected,trusted-ui']);
    expect(fw.heap('protected,secure-video')!.minor).toBeGreaterThan(fw.heap('reserved')!.minor);
  });

  test("the simulated kernel answers as the dma-buf core does for tee_heap_buf_ops: mmap EINVAL, SYNC 0, exp_name 'tee'", () => {
    using heap = openHeap('protected,secure-video', { framework: fw });
    using buf = heap.alloc(4096);
    expect(() => fw.kernel.mmap(buf.fd, 4096, 0, true)).toThrow(expect.objectContaining({ code: 'EINVAL', syscall: 'mmap' }));
    expect(fw.kernel.ioctl(buf.fd, DMA_BUF_IOCTL_SYNC, encodeU64(DMA_BUF_SYNC_START | DMA_BUF_SYNC_READ))).toBe(0);
    expect(fw.kernel.dmaBuf(buf.fd)?.expName).toBe('tee');
  });

  test('an exporter without mmap that no name gives away: the first mapping learns it, typed, and the next CPU path is refused before any syscall', () => {
    fw.addHeap({
      name: 'vendor-secure',
      ops: {
        allocate(_heap, len, fdFlags) {
          const backing = fw.allocBacking(Number(len), 'vendor-secure');
          return fw.dmaBufExport({ expName: 'vendor-secure', size: Number(len), flags: fdFlags, priv: backing, backing, ops: { release: () => backing.free() } });
        },
      },
    });
    using heap = openHeap('vendor-secure', { framework: fw });
    expect(heap.kind).toBe('other');
    using buf = heap.alloc(4096);
    expect(buf.cpuVisible).toBe(true);
    expect(() => buf.bytes()).toThrow(expect.objectContaining({ code: 'ERR_DMA_BUF_NOT_CPU_VISIBLE' }));
    expect(buf.cpuVisible).toBe(false);
    const mmap = jest.spyOn(fw.kernel, 'readMapped');
    expect(() => buf.read()).toThrow(expect.objectContaining({ code: 'ERR_DMA_BUF_NOT_CPU_VISIBLE' }));
    expect(mmap).not.toHaveBeenCalled();
    // a bracket begun before the buffer was found out still ends: the exporter sees it balanced
    using late = heap.alloc(4096);
    late.beginCpuAccess('read');
    expect(() => late.read()).toThrow(expect.objectContaining({ code: 'ERR_DMA_BUF_NOT_CPU_VISIBLE' }));
    late.endCpuAccess('read');
    expect(fw.kernel.dmaBuf(late.fd)!.cpuAccess).toMatchObject({ begins: 1, ends: 1 });
    // a pool over such a heap keeps its buffers unmapped once the first mapping says so
    const pool = heap.createPool({ size: 4096, count: 2 });
    expect(() => pool.acquire().bytes()).toThrow(expect.objectContaining({ code: 'ERR_DMA_BUF_NOT_CPU_VISIBLE' }));
    pool.close();
    expect(() => heap.createPool({ size: 4096, count: 1, zeroOnRelease: true })).toThrow(expect.objectContaining({ code: 'ERR_DMA_BUF_NOT_CPU_VISIBLE', message: expect.stringMatching(/zeroOnRelease/) }));
  });

  test("protected heaps, regions and accounting are 7.x's: refused for release '6.12' and the v14 ABI", () => {
    for (const o of [{ release: '6.12' }, { profile: 'v14' }] as const) {
      expect(() => new Framework({ ...o, protectedHeaps: ['secure-video'] })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
      expect(() => new Framework({ ...o, memAccounting: true })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    }
    // false and [] describe an older kernel too
    expect(new Framework({ release: '6.12', memAccounting: false, protectedHeaps: [] }).protectedHeaps).toEqual([]);
    expect(() => new Framework({ builtins: false, protectedHeaps: ['secure-video'] })).toThrow(/needs builtins/);
    expect(() => new Framework({ protectedHeaps: ['secure-video', 'secure-video'] })).toThrow(/twice/);
    expect(() => new Framework({ protectedHeaps: ['tui' as never] })).toThrow(/must be one of/);
    expect(() => new Framework({ protectedHeaps: 'secure-video' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_TYPE' }));
  });
});
