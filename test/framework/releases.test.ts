/**
 * Issue 19, item 5: the framework follows a chosen mainline kernel. 6.12 registers the default
 * CMA area under its legacy name only; 7.3 (drivers/dma-buf/heaps/cma_heap.c add_cma_heaps)
 * adds `default_cma_region` and one heap per device-tree region, and has protected heaps and
 * mem_accounting. The differential holds each release to the real kernel of that release.
 */
import { listHeaps, openContiguousHeap, openHeap } from '../../lib';
import { Framework } from '../../lib/framework';
import type { CmaBuffer } from '../../lib/framework';

test("release '6.12': the default area as 'reserved' only; '7.3' (the default): default_cma_region and the alias", () => {
  expect(new Framework({ release: '6.12' }).kernel.heaps().map((h) => h.name)).toEqual(['reserved', 'system']);
  expect(new Framework().kernel.heaps().map((h) => h.name)).toEqual(['default_cma_region', 'reserved', 'system']);
  expect(new Framework({ release: '7.3' }).release).toBe('7.3');
  expect(() => new Framework({ release: '6.6' as never })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
});

test('openContiguousHeap finds the area by kind on either release', () => {
  using old = openContiguousHeap({ framework: new Framework({ release: '6.12' }) });
  expect(old.name).toBe('reserved');
  expect(old.kind).toBe('contiguous');
  using now = openContiguousHeap({ framework: new Framework() });
  expect(now.name).toBe('default_cma_region');
});

describe('CMA regions (7.x: a heap per reusable shared-dma-pool node)', () => {
  const regions = [
    { name: 'video-memory', size: 4 << 20 },
    { name: 'camera-memory', size: 2 << 20 },
  ];

  test('each region is its own area and heap, listed as contiguous, allocated from itself alone', () => {
    const fw = new Framework({ cma: { size: 8 << 20, regions } });
    expect(listHeaps({ framework: fw }).map((h) => `${h.name}:${h.kind}`)).toEqual([
      'camera-memory:contiguous',
      'default_cma_region:contiguous',
      'reserved:contiguous',
      'system:system',
      'video-memory:contiguous',
    ]);
    using video = openHeap('video-memory', { framework: fw });
    using buf = video.alloc(1 << 20);
    const priv = fw.kernel.dmaBuf(buf.fd)!.priv as CmaBuffer;
    expect(priv.cma.name).toBe('video-memory');
    expect(fw.cmaRegions.find((c) => c.name === 'video-memory')!.used).toBe((1 << 20) / fw.pageSize);
    expect(fw.cmaRegions.find((c) => c.name === 'camera-memory')!.used).toBe(0);
    expect(fw.cma!.used).toBe(0);
    // full is full: the region's own ENOMEM, however empty the others are
    expect(() => video.alloc(4 << 20)).toThrow(expect.objectContaining({ code: 'ENOMEM', message: expect.stringMatching(/CMA region has 4194304 bytes/) }));
    buf.close();
    expect(fw.cmaRegions.find((c) => c.name === 'video-memory')!.used).toBe(0);
  });

  test("regions lie after the default area, as reserved-memory places them", () => {
    const fw = new Framework({ cma: { size: 8 << 20, regions } });
    expect(fw.cmaRegions.map((c) => c.base)).toEqual([fw.cma!.base + (8 << 20), fw.cma!.base + (12 << 20)]);
  });

  test.each([
    [{ regions: [{ name: 'a/b', size: 1 << 20 }] }, /no device-tree node name/],
    [{ regions: [{ name: '', size: 1 << 20 }] }, /no device-tree node name/],
    [{ regions: [{ name: 'default_cma_region', size: 1 << 20 }] }, /twice/],
    [{ regions: [{ name: 'v', size: 1 << 20 }, { name: 'v', size: 1 << 20 }] }, /twice/],
    [{ regions: [{ name: 'v', size: 4097 }] }, /multiple of the page size/],
    [{ regions: [{ name: 'v', size: 0 }] }, /options\.cma\.regions\[0\]\.size/],
    [{ regions: [{ name: 'v', size: 1 << 20, nmae: 1 }] }, /nmae/],
    [{ regions: { name: 'v', size: 1 << 20 } }, /array/],
    [{ regions: [{ name: 'reserved', size: 1 << 20 }] }, /default CMA area/],
    [{ regions: [{ name: 'system', size: 1 << 20 }] }, /twice/],
    [{ regions: [{ name: 'protected,secure-video', size: 1 << 20 }] }, /tee_heap's name/],
  ])('bad regions are refused, typed: %j', (cma, message) => {
    expect(() => new Framework({ cma: cma as never })).toThrow(expect.objectContaining({ message: expect.stringMatching(message) }));
  });

  test("regions need release '7.3' and the builtins", () => {
    expect(() => new Framework({ release: '6.12', cma: { regions } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(() => new Framework({ builtins: false, cma: { regions } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
  });
});

test('memAccounting: listHeaps says the system heap is charged, no other heap', () => {
  const fw = new Framework({ memAccounting: true, protectedHeaps: ['secure-video'] });
  expect(listHeaps({ framework: fw }).filter((h) => h.accounted).map((h) => h.name)).toEqual(['system']);
  expect(listHeaps({ framework: new Framework() }).some((h) => h.accounted)).toBe(false);
});
