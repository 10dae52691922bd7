import { Framework } from '../../lib/framework';
import { openHeap } from '../../lib/heap';

// The software framework's own controls, through the public API: access policy and fault injection.
describe('software framework controls, seen through openHeap', () => {
  test('an access policy denial is EACCES from open, Node-shaped, without the udev hint', () => {
    const framework = new Framework({ access: 'deny' });
    expect(() => openHeap('system', { framework })).toThrow(
      expect.objectContaining({ code: 'EACCES', errno: -13, syscall: 'open', path: '/dev/dma_heap/system', heap: 'system' }),
    );
    framework.setAccess('system', (ctx) => ctx.heap === 'system');
    using heap = openHeap('system', { framework });
    expect(heap.backend).toBe('software');
  });

  test('fault injection: the Nth allocation fails with the chosen errno, with heap and path', () => {
    const framework = new Framework();
    using heap = openHeap('system', { framework });
    framework.faults.failAllocation({ nth: 2, code: 'ENOMEM' });
    heap.alloc(4096).close();
    expect(() => heap.alloc(4096)).toThrow(expect.objectContaining({ code: 'ENOMEM', errno: -12, syscall: 'ioctl', heap: 'system' }));
    heap.alloc(4096).close();
  });

  test('a byte cap per heap: ENOMEM past it, room again after close', () => {
    const framework = new Framework();
    using heap = openHeap('system', { framework });
    const page = framework.pageSize;
    framework.faults.capBytes('system', 3 * page);
    const a = heap.alloc(2 * page);
    expect(() => heap.alloc(2 * page)).toThrow(expect.objectContaining({ code: 'ENOMEM' }));
    a.close();
    heap.alloc(2 * page).close();
  });

  test('an application can register its own heap (a fake carveout) and allocate from it', () => {
    const framework = new Framework();
    framework.addHeap({
      name: 'carveout',
      ops: {
        allocate(h, len, fdFlags) {
          const backing = framework.allocBacking(Number(len), h.name);
          return framework.exportBacking({ expName: h.name, size: Number(len), flags: fdFlags, backing, priv: backing });
        },
      },
    });
    using heap = openHeap('carveout', { framework });
    using buf = heap.alloc(5000);
    expect(buf.size).toBe(Math.ceil(5000 / framework.pageSize) * framework.pageSize);
    expect(buf.exporter).toBe('carveout');
    expect(() => framework.addHeap({ name: 'carveout', ops: { allocate: () => { throw new Error('unused'); } } })).toThrow(
      expect.objectContaining({ code: 'EINVAL' }),
    );
  });

  test('the v14 profile answers GET_FEATURES, and the heap then allocates with ALLOC at nr 1', () => {
    const framework = new Framework({ profile: 'v14' });
    using heap = openHeap('system', { framework });
    expect(heap.abi).toBe('v14');
    expect(heap.features()).toEqual({ supported: true, flags: 0n });
    using buf = heap.alloc(1);
    expect(buf.size).toBe(framework.pageSize);
  });
});
