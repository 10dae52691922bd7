import { Framework } from '../../lib/framework';
import { hasKernelHeaps, nativeKernel } from '../../lib/chooser';
import { allocShareable } from '../../lib/tiers';
import type { ShareableTier } from '../../lib/dmabuf';
import { hasUdmabuf, udmabufSizeLimit } from '../../lib/native/udmabuf';
import { fdTarget } from '../helpers/fds';
import { kernelRequired, newFds, openFds } from '../helpers/backends';
import { testIf } from '../helpers/skip';

const addon = nativeKernel() !== null;
/** this host's page size, from whichever kernel serves the test */
const PAGE = nativeKernel()?.pageSize ?? new Framework({ builtins: false }).pageSize;
const udmabuf = addon && hasUdmabuf();

describe('shareable buffers: the strongest tier that serves here', () => {
  test('the default order picks the best available tier and says which', () => {
    using buf = allocShareable(2 * PAGE, { name: 'frame' });
    const expected = hasKernelHeaps() ? 'dma-heap' : udmabuf ? 'udmabuf' : addon ? 'memfd' : 'js';
    expect(buf.tier).toBe(expected);
    expect(buf.isDmaBuf).toBe(expected === 'dma-heap' || expected === 'udmabuf');
    expect(buf.size).toBe(2 * PAGE);
    expect(buf.info().name).toBe('frame');
  });

  test('requireDmaBuf fails clearly where no real dma-buf can be made, and leaks nothing', () => {
    const before = openFds();
    if (hasKernelHeaps() || udmabuf) {
      using buf = allocShareable(4096, { requireDmaBuf: true });
      expect(buf.isDmaBuf).toBe(true);
    } else {
      expect(() => allocShareable(4096, { requireDmaBuf: true })).toThrow(
        expect.objectContaining({ code: 'ERR_DMA_HEAP_NO_DMA_BUF', message: expect.stringMatching(/dma-heap: .*udmabuf: /) }),
      );
    }
    expect(newFds(before)).toEqual([]);
  });

  test('an explicit order is followed; DMA_HEAP_TIERS sets the default; unknown tiers are refused', () => {
    const weakest = addon ? 'memfd' : 'js';
    using buf = allocShareable(4096, { tiers: [weakest] });
    expect(buf.tier).toBe(weakest);
    process.env.DMA_HEAP_TIERS = weakest;
    try {
      using viaEnv = allocShareable(4096);
      expect(viaEnv.tier).toBe(weakest);
    } finally {
      delete process.env.DMA_HEAP_TIERS;
    }
    expect(() => allocShareable(4096, { tiers: ['gpu' as never] })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
  });

  test('a bad size is the caller’s error, not a reason to fall back', () => {
    expect(() => allocShareable(0)).toThrow(RangeError);
    expect(() => allocShareable('1' as never)).toThrow(TypeError);
  });

  testIf(addon, 'memfd needs the addon')('the memfd tier is shareable memory, not a dma-buf', () => {
    using buf = allocShareable(4096, { tiers: ['memfd'] });
    expect(buf.isDmaBuf).toBe(false);
    expect(buf.backend).toBe('software');
    buf.bytes().fill(3);
    expect(buf.read(4095, 1)[0]).toBe(3);
  });

  testIf(!addon, 'only without the addon')('without the addon only JS memory remains', () => {
    using buf = allocShareable(4096);
    expect(buf.tier).toBe('js');
    expect(() => allocShareable(4096, { tiers: ['memfd'] })).toThrow(expect.objectContaining({ code: 'ERR_DMA_HEAP_NO_TIER' }));
  });
});

describe('the udmabuf tier', () => {
  testIf(udmabuf || kernelRequired, 'needs /dev/udmabuf (the VM has it)')('a memfd becomes a real dma-buf exported by udmabuf', () => {
    allocShareable(PAGE, { tiers: ['udmabuf'] }).close(); // opens /dev/udmabuf, kept for the thread
    const before = openFds();
    {
      using buf = allocShareable(3 * PAGE + 1, { tiers: ['udmabuf'], name: 'udma0' });
      expect(buf.tier).toBe('udmabuf');
      expect(buf.isDmaBuf).toBe(true);
      expect(buf.backend).toBe('kernel');
      expect(buf.size).toBe(4 * PAGE);
      expect(buf.info()).toMatchObject({ exporter: 'udmabuf', name: 'udma0', size: 4 * PAGE });
      expect(buf.bytes().every((x) => x === 0)).toBe(true);
      buf.cpuAccess('write', (bytes) => bytes.fill(0x77));
      expect(buf.read(4 * PAGE - 1, 1)[0]).toBe(0x77);
    }
    expect(newFds(before)).toEqual([]);
  });

  testIf(udmabuf || kernelRequired, 'needs /dev/udmabuf (the VM has it)')('/dev/udmabuf is opened once for the thread and kept; each buffer leaves no memfd open', () => {
    // (jest gives each test file its own modules, so earlier files may hold one of their own)
    const devices = () => [...openFds()].filter((fd) => fdTarget(fd) === '/dev/udmabuf').length;
    allocShareable(PAGE, { tiers: ['udmabuf'] }).close();
    const kept = devices();
    const before = openFds();
    const bufs = Array.from({ length: 5 }, () => allocShareable(PAGE, { tiers: ['udmabuf'] }));
    expect(devices()).toBe(kept);
    expect(newFds(before).map(fdTarget).filter((t) => t.startsWith('/memfd:'))).toEqual([]);
    for (const b of bufs) b.close();
    expect(newFds(before)).toEqual([]);
  });

  testIf(udmabuf || kernelRequired, 'needs /dev/udmabuf (the VM has it)')('a request over the size_limit_mb cap says so, or falls back with the reason', () => {
    const limit = udmabufSizeLimit();
    expect(() => allocShareable(limit + 1, { tiers: ['udmabuf'] })).toThrow(
      expect.objectContaining({ message: expect.stringMatching(/udmabuf: EINVAL: udmabuf caps one buffer at \d+ bytes/) }),
    );
    using buf = allocShareable(limit + 1, { tiers: ['udmabuf', 'memfd'] });
    expect(buf.tier).toBe('memfd');
  });
});

describe('allocShareable checks its options once', () => {
  const weakest: ShareableTier = addon ? 'memfd' : 'js';

  /** options whose every property is a getter counting its reads, answering `values` */
  function counted(values: Record<string, unknown>): { options: object; reads: Record<string, number> } {
    const reads: Record<string, number> = {};
    const options = {};
    for (const [key, value] of Object.entries(values)) {
      reads[key] = 0;
      Object.defineProperty(options, key, {
        enumerable: true,
        get() {
          reads[key]++;
          return value;
        },
      });
    }
    return { options, reads };
  }

  test('each option is read once, and the value checked is the value the buffer gets', () => {
    const { options, reads } = counted({ tiers: [weakest], requireDmaBuf: false, heap: 'system', name: 'once', cloexec: false });
    using buf = allocShareable(4096, options as never);
    expect(reads).toEqual({ tiers: 1, requireDmaBuf: 1, heap: 1, name: 1, cloexec: 1 });
    expect(buf.tier).toBe(weakest);
    expect(buf.info().name).toBe('once');
    if (addon) expect(buf.info().flags & 0o2000000).toBe(0); // cloexec: false reached the heap
  });

  test('a getter cannot pass the check with one name and hand the heap another', () => {
    let n = 0;
    const options = {
      tiers: [weakest] as ShareableTier[],
      get name() {
        return n++ === 0 ? 'fine' : 'x'.repeat(64);
      },
    };
    using buf = allocShareable(4096, options);
    expect(buf.info().name).toBe('fine');
  });

  test('each tier is read once; a hole in tiers is no tier', () => {
    let reads = 0;
    const tiers: string[] = [];
    Object.defineProperty(tiers, 0, { enumerable: true, get: () => (reads++ === 0 ? weakest : 'gpu') });
    using buf = allocShareable(4096, { tiers: tiers as never });
    expect(reads).toBe(1);
    expect(buf.tier).toBe(weakest);
    // a sparse array: the hole reads undefined, which is not a tier (it used to be skipped by the check, then tried)
    const sparse = [weakest, weakest];
    delete sparse[0];
    expect(() => allocShareable(4096, { tiers: sparse as never })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE', message: expect.stringContaining("'options.tiers[0]' is not a tier") }),
    );
  });
});

describe('allocShareable keeps its heap', () => {
  test('one heap fd for the thread, opened by the first call: later calls open nothing more and leak nothing', () => {
    allocShareable(4096).close();
    const before = openFds();
    const bufs = Array.from({ length: 5 }, () => allocShareable(4096));
    expect(newFds(before).length).toBe(5); // the buffers, and no heap per call
    for (const b of bufs) b.close();
    expect(newFds(before)).toEqual([]);
  });
});

describe('a tier that is not there is looked for once a second, not on every call', () => {
  // each look is a syscall (3-4 us here against an ~11 us 4 KiB allocation): looking on every
  // call made allocShareable() 1.76x heap.alloc on a host without heaps
  test('the answer is remembered, and forgotten after a second', () => {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const chooser = require('../../lib/chooser') as typeof import('../../lib/chooser');
    const heap = 'no-such-heap-for-this-test';
    const spy = jest.spyOn(chooser, 'tierUnavailable');
    jest.useFakeTimers({ doNotFake: ['performance', 'nextTick', 'setImmediate'] });
    try {
      const looks = () => spy.mock.calls.filter(([tier, name]) => tier === 'dma-heap' && name === heap).length;
      const tiers: ShareableTier[] = ['dma-heap', addon ? 'memfd' : 'js'];
      allocShareable(4096, { heap, tiers }).close();
      allocShareable(4096, { heap, tiers }).close();
      expect(looks()).toBe(1);
      jest.advanceTimersByTime(1000);
      allocShareable(4096, { heap, tiers }).close();
      expect(looks()).toBe(2);
    } finally {
      jest.useRealTimers();
      spy.mockRestore();
    }
  });
});
