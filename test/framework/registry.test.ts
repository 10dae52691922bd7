import { constants } from 'node:os';
import { DmaHeapError } from '../../lib/errors';
import { type DmaBufOps, type DmaHeap, type Framework } from '../../lib/framework';
import { NUM_HEAP_MINORS, O_RDWR } from '../../lib/uapi';
import { addonLoaded, allocFrom, checkNoFdLeaks, eachBacking, fdinfoField, thrown } from './helpers';

checkNoFdLeaks();

/** a heap exporting from the framework's own backing memory */
function exporter(fw: Framework, name: string, priv: unknown = { tag: name }) {
  return {
    name,
    priv,
    ops: {
      allocate(heap: DmaHeap, len: bigint, fdFlags: number) {
        const backing = fw.allocBacking(Number(len), heap.name);
        return fw.exportBacking({ expName: `${heap.name}-exp`, size: Number(len), flags: fdFlags, backing, priv: backing });
      },
    },
  };
}

/** a heap whose buffers are bare dma_buf_export()s with `ops`, no backing memory */
function addOpsHeap(fw: Framework, name: string, ops: DmaBufOps<object>): void {
  fw.addHeap({
    name,
    ops: { allocate: (heap, len, fdFlags) => fw.dmaBufExport({ expName: heap.name, size: Number(len), flags: fdFlags, priv: {}, ops }) },
  });
}

eachBacking((make) => {
  test("an exporter's release that throws still frees the backing and uncharges the heap", () => {
    const fw = make();
    fw.addHeap({
      name: 'brittle',
      ops: {
        allocate(heap: DmaHeap, len: bigint, fdFlags: number) {
          const backing = fw.allocBacking(Number(len), heap.name);
          const release = () => {
            throw new Error('exporter bookkeeping failed');
          };
          return fw.exportBacking({ expName: heap.name, size: Number(len), flags: fdFlags, backing, priv: backing, release });
        },
      },
    });
    fw.faults.capBytes('brittle', 4 * fw.pageSize);
    const fd = allocFrom(fw, 'brittle', 4 * fw.pageSize);
    expect(fw.faults.bytesInUse('brittle')).toBe(4 * fw.pageSize);
    expect(() => fw.kernel.close(fd)).toThrow('exporter bookkeeping failed');
    expect(fw.faults.bytesInUse('brittle')).toBe(0); // the accounting hook ran after the throw
    const again = allocFrom(fw, 'brittle', 4 * fw.pageSize); // the cap is free again
    expect(() => fw.kernel.close(again)).toThrow('exporter bookkeeping failed');
    expect(fw.faults.bytesInUse('brittle')).toBe(0);
    fw.dispose();
  });

  test('builtins: system, the 6.17+ default_cma_region and its legacy alias reserved', () => {
    const fw = make();
    expect(fw.kernel.heaps()).toEqual([
      { name: 'default_cma_region', path: '/dev/dma_heap/default_cma_region', accessible: true, kind: 'contiguous', accounted: false },
      { name: 'reserved', path: '/dev/dma_heap/reserved', accessible: true, kind: 'contiguous', accounted: false },
      { name: 'system', path: '/dev/dma_heap/system', accessible: true, kind: 'system', accounted: false },
    ]);
    expect(fw.heap('default_cma_region')?.getDrvdata()).toBe(fw.heap('reserved')?.getDrvdata());
    expect(fw.heap('system')?.minor).toBe(0);
  });

  test('builtins: false registers nothing; cma.size 0 registers no CMA heap', () => {
    expect(make({ builtins: false }).kernel.heaps()).toEqual([]);
    expect(make({ cma: { size: 0 } }).kernel.heaps().map((h) => h.name)).toEqual(['system']);
  });

  test('a heap of our own: allocate gets len, fd_flags; getDrvdata and name', () => {
    const fw = make({ builtins: false });
    const priv = { secret: 42 };
    const heap = fw.addHeap(exporter(fw, 'mine', priv));
    expect(heap.name).toBe('mine');
    expect(heap.getName()).toBe('mine');
    expect(heap.getDrvdata()).toBe(priv);
    expect(heap.path).toBe('/dev/dma_heap/mine');
    const fd = allocFrom(fw, 'mine', 1);
    expect(fw.kernel.seekEnd(fd)).toBe(fw.pageSize);
    expect(fdinfoField(fw, fd, 'exp_name')).toBe('mine-exp');
    fw.kernel.close(fd);
  });

  test('dma_heap_add: an empty or missing name is EINVAL', () => {
    const fw = make({ builtins: false });
    for (const name of ['', undefined, null, 7]) {
      const e = thrown(() => fw.addHeap({ ...exporter(fw, 'x'), name: name as string }));
      expect(e).toBeInstanceOf(DmaHeapError);
      expect(e).toMatchObject({ code: 'EINVAL', syscall: 'dma_heap_add', errno: -constants.errno.EINVAL });
    }
    expect(fw.kernel.heaps()).toEqual([]);
  });

  test('dma_heap_add: missing ops or ops.allocate is EINVAL', () => {
    const fw = make({ builtins: false });
    expect(thrown(() => fw.addHeap({ name: 'a' } as never)).code).toBe('EINVAL');
    expect(thrown(() => fw.addHeap({ name: 'a', ops: {} } as never)).code).toBe('EINVAL');
    expect(thrown(() => fw.addHeap({ name: 'a', ops: { allocate: 1 } } as never)).code).toBe('EINVAL');
  });

  test('dma_heap_add: a duplicate name is EINVAL, and takes no minor', () => {
    const fw = make();
    expect(thrown(() => fw.addHeap(exporter(fw, 'system')))).toMatchObject({ code: 'EINVAL', heap: 'system' });
    expect(fw.addHeap(exporter(fw, 'next')).minor).toBe(3);
  });

  test(`${NUM_HEAP_MINORS} heaps at most: the next one is EBUSY (xa_alloc); minors are 0..127`, () => {
    const fw = make({ builtins: false });
    const heaps = Array.from({ length: NUM_HEAP_MINORS }, (_, i) => fw.addHeap(exporter(fw, `h${i}`)));
    expect(heaps.map((h) => h.minor)).toEqual([...Array(NUM_HEAP_MINORS).keys()]);
    expect(thrown(() => fw.addHeap(exporter(fw, 'one-too-many')))).toMatchObject({ code: 'EBUSY' });
    // mainline takes the minor before checking the name: a duplicate is EBUSY when full
    expect(thrown(() => fw.addHeap(exporter(fw, 'h0'))).code).toBe('EBUSY');
    expect(fw.kernel.heaps()).toHaveLength(NUM_HEAP_MINORS);
  });

  test('builtins count against the 128', () => {
    const fw = make();
    for (let i = 0; i < NUM_HEAP_MINORS - 3; i++) fw.addHeap(exporter(fw, `h${i}`));
    expect(thrown(() => fw.addHeap(exporter(fw, 'full'))).code).toBe('EBUSY');
  });

  test('v14 checks the name first: a duplicate is EINVAL even when the minors are gone', () => {
    const fw = make({ profile: 'v14', builtins: false });
    for (let i = 0; i < NUM_HEAP_MINORS; i++) fw.addHeap(exporter(fw, `h${i}`));
    expect(thrown(() => fw.addHeap(exporter(fw, 'h0'))).code).toBe('EINVAL');
    expect(thrown(() => fw.addHeap(exporter(fw, 'new'))).code).toBe('EBUSY');
  });

  test('v14 builtins: system and the CMA heap under its legacy name only', () => {
    expect(make({ profile: 'v14' }).kernel.heaps().map((h) => h.name)).toEqual(['reserved', 'system']);
  });

  test('openHeap: an unknown name is ENOENT on /dev/dma_heap/<name>', () => {
    const fw = make();
    expect(thrown(() => fw.kernel.openHeap('nope'))).toMatchObject({
      code: 'ENOENT',
      syscall: 'open',
      path: '/dev/dma_heap/nope',
      heap: 'nope',
    });
  });

  test('an exporter failing with an errno fails the ioctl with it', () => {
    const fw = make({ builtins: false });
    fw.addHeap({
      name: 'full',
      ops: {
        allocate: () => {
          throw Object.assign(new Error('no space'), { code: 'ENOSPC' });
        },
      },
    });
    expect(thrown(() => allocFrom(fw, 'full', 4096))).toMatchObject({ code: 'ENOSPC', syscall: 'ioctl', heap: 'full' });
    expect(fw.kernel.fds()).toEqual([]);
  });

  test('an exporter returning something else than a dma-buf is a TypeError (a driver bug)', () => {
    const fw = make({ builtins: false });
    fw.addHeap({ name: 'bad', ops: { allocate: () => ({}) as never } });
    expect(() => allocFrom(fw, 'bad', 4096)).toThrow(TypeError);
  });

  test('dma_buf_export refuses a missing release op or priv (EINVAL)', () => {
    const fw = make({ builtins: false });
    const base = { expName: 'x', size: 4096, flags: O_RDWR, priv: {}, ops: { release: () => {} } };
    expect(fw.dmaBufExport(base).size).toBe(4096);
    expect(thrown(() => fw.dmaBufExport({ ...base, ops: {} as never }))).toMatchObject({
      code: 'EINVAL',
      syscall: 'dma_buf_export',
    });
    expect(thrown(() => fw.dmaBufExport({ ...base, priv: undefined })).code).toBe('EINVAL');
    expect(thrown(() => fw.dmaBufExport({ ...base, expName: '' })).code).toBe('EINVAL');
  });

  test("an exporter's cpu-access ops see the direction; without mmap, mmap is EINVAL", () => {
    const fw = make({ builtins: false });
    const seen: string[] = [];
    let released = 0;
    addOpsHeap(fw, 'nomap', {
      beginCpuAccess: (_b, dir) => void seen.push(`begin ${dir}`),
      endCpuAccess: (_b, dir) => void seen.push(`end ${dir}`),
      release: () => void released++,
    });
    const fd = allocFrom(fw, 'nomap', 4096);
    fw.kernel.ioctl(fd, 0x40086200, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]));
    fw.kernel.ioctl(fd, 0x40086200, new Uint8Array([6, 0, 0, 0, 0, 0, 0, 0]));
    expect(seen).toEqual(['begin DMA_FROM_DEVICE', 'end DMA_TO_DEVICE']);
    expect(thrown(() => fw.kernel.mmap(fd, 4096, 0, false))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
    fw.kernel.close(fd);
    expect(released).toBe(1);
  });

  test("an exporter's mmap that hands out one view twice: the second mmap is EINVAL, closed, and holds no reference", () => {
    const fw = make({ builtins: false });
    const view = new Uint8Array(4096);
    const closes: boolean[] = [];
    let released = 0;
    addOpsHeap(fw, 'reuses', {
      mmap: (_b, vma) => {
        vma.view = view;
        vma.close = (_v, last) => void closes.push(last === true);
      },
      release: () => void released++,
    });
    const fd = allocFrom(fw, 'reuses', 4096);
    expect(fw.kernel.mmap(fd, 4096, 0, true)).toBe(view);
    expect(thrown(() => fw.kernel.mmap(fd, 4096, 0, true))).toMatchObject({ code: 'EINVAL', syscall: 'mmap' });
    expect(closes).toEqual([false]); // the refused one's close ran; the first mapping stands
    expect(fdinfoField(fw, fd, 'count')).toBe('2'); // the fd and the first mapping
    fw.kernel.munmap(view);
    fw.kernel.close(fd);
    expect(released).toBe(1);
  });
});

test('pageSize: the host page size by default, a power of two >= 4096 otherwise', async () => {
  const { Framework } = await import('../../lib/framework');
  const { hostPageSize } = await import('../../lib/framework/page-size');
  const { execFileSync } = await import('node:child_process');
  expect(hostPageSize(null)).toBe(Number(execFileSync('getconf', ['PAGESIZE']).toString()));
  const fw = new Framework({ backing: 'js', pageSize: 16384 });
  const fd = allocFrom(fw, 'system', 1);
  expect(fw.kernel.seekEnd(fd)).toBe(16384);
  fw.dispose();
  if (addonLoaded) {
    // memfd mappings are real: a simulated page a multiple of the host's works
    const big = new Framework({ backing: 'memfd', pageSize: 4 * hostPageSize(null) });
    const bfd = allocFrom(big, 'reserved', big.pageSize + 1);
    expect(big.kernel.seekEnd(bfd)).toBe(2 * big.pageSize);
    const view = big.kernel.mmap(bfd, 1, big.pageSize, true);
    expect(() => big.kernel.mmap(bfd, 1, hostPageSize(null), true)).toThrow(expect.objectContaining({ code: 'EINVAL' }));
    big.kernel.munmap(view);
    big.dispose();
  }
  expect(() => new Framework({ backing: 'js', pageSize: 2048 })).toThrow(RangeError);
  expect(() => new Framework({ backing: 'js', pageSize: 12288 })).toThrow(RangeError);
  expect(() => new Framework({ profile: 'v15' as never })).toThrow(TypeError);
});
