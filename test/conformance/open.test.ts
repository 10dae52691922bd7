import { spawnSync } from 'node:child_process';
import { rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { listHeaps, openContiguousHeap, openHeap } from '../../lib/heap';
import { backends, kernelAvailable, kernelRequired, newFds, openFds } from '../helpers/backends';
import { testIf } from '../helpers/skip';

describe.each(backends())('opening heaps: $label', (backend) => {
  test.each([
    ['empty', ''],
    ['dot', '.'],
    ['dot-dot', '..'],
    ['a path', 'system/../system'],
    ['an escape', '../../dev/mem'],
    ['NUL', 'sys\0tem'],
  ])('a name that is %s is refused before any open', (_what, name) => {
    const before = openFds();
    expect(() => openHeap(name, backend.options())).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
    expect(newFds(before)).toEqual([]);
  });

  test('a name that is not a string is a TypeError', () => {
    expect(() => openHeap(42 as unknown as string, backend.options())).toThrow(TypeError);
  });

  test('an unknown heap is ENOENT, Node-shaped, with path and heap', () => {
    const before = openFds();
    expect(() => openHeap('no-such-heap', backend.options())).toThrow(
      expect.objectContaining({ code: 'ENOENT', errno: -2, syscall: 'open', path: '/dev/dma_heap/no-such-heap', heap: 'no-such-heap' }),
    );
    expect(newFds(before)).toEqual([]);
  });

  test('a mistyped heap is the same ENOENT, its message naming the heaps here and the likely one', () => {
    let err: (Error & Record<string, unknown>) | undefined;
    try {
      openHeap('sytem', backend.options());
    } catch (e) {
      err = e as Error & Record<string, unknown>;
    }
    expect(err).toMatchObject({ code: 'ENOENT', errno: -2, syscall: 'open', path: '/dev/dma_heap/sytem', heap: 'sytem' });
    const names = listHeaps(backend.options()).map((h) => h.name);
    for (const name of names) expect(err!.message).toContain(name);
    expect(err!.message).toMatch(new RegExp(`\\(${backend.kind}\\)`));
    expect(err!.message).toMatch(/did you mean 'system'\?$/);
  });

  test('listHeaps shows the system heap for this backend, accessible', () => {
    const heaps = listHeaps(backend.options());
    expect(heaps).toContainEqual(
      expect.objectContaining({ name: 'system', path: '/dev/dma_heap/system', accessible: true, backend: backend.kind }),
    );
  });
});

describe('backend selection', () => {
  const saved = process.env.DMA_HEAP_BACKEND;
  afterEach(() => {
    if (saved === undefined) delete process.env.DMA_HEAP_BACKEND;
    else process.env.DMA_HEAP_BACKEND = saved;
  });

  test('openHeap prefers the real kernel, else says why it fell back', () => {
    using heap = openHeap('system');
    if (kernelAvailable) {
      expect(heap.backend).toBe('kernel');
      expect(heap.fallbackReason).toBeUndefined();
    } else {
      expect(heap.backend).toBe('software');
      expect(heap.fallbackReason).toMatch(/addon|no heap/);
    }
  });

  test('DMA_HEAP_BACKEND=software forces the framework; a bad value is refused', () => {
    process.env.DMA_HEAP_BACKEND = 'software';
    using heap = openHeap('system');
    expect(heap.backend).toBe('software');
    expect(heap.fallbackReason).toBeUndefined();
    process.env.DMA_HEAP_BACKEND = 'gpu';
    expect(() => openHeap('system')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }));
  });

  test('a contiguous heap resolves to the CMA names in order', () => {
    using heap = openContiguousHeap({ backend: 'software' });
    expect(heap.name).toBe('default_cma_region');
    using buf = heap.alloc(1 << 20);
    expect(buf.exporter).toBe('default_cma_region');
    using auto = openContiguousHeap();
    expect(['default_cma_region', 'linux,cma', 'reserved', 'default-pool']).toContain(auto.name);
  });
});

test('the real kernel is present when the run requires it (DMA_HEAP_TEST_KERNEL=1)', () => {
  expect({ required: kernelRequired, available: kernelAvailable || !kernelRequired }).toEqual({ required: kernelRequired, available: true });
});

// Cases only a real kernel can show: permissions, and a foreign node in /dev/dma_heap.
describe('the real kernel only', () => {
  const dist = path.join(__dirname, '..', '..', 'dist', 'index.js');
  const asRoot = process.getuid?.() === 0;

  testIf(kernelAvailable && asRoot, 'needs /dev/dma_heap and root (to become nobody)')(
    'EACCES on a root-only heap explains the udev fix (run as nobody)',
    () => {
      const script = `process.setgid(65534); process.setuid(65534);
        try { require(${JSON.stringify(dist)}).openHeap('system', { backend: 'kernel' }); console.log('{}'); }
        catch (e) { console.log(JSON.stringify({ code: e.code, errno: e.errno, syscall: e.syscall, path: e.path, message: e.message })); }`;
      const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
      const err = JSON.parse(r.stdout);
      expect(err).toMatchObject({ code: 'EACCES', errno: -13, syscall: 'open', path: '/dev/dma_heap/system' });
      expect(err.message).toMatch(/udev/);
    },
  );

  testIf(kernelAvailable && process.env.DMA_HEAP_IN_VM === '1', 'alters /dev/dma_heap: only in the disposable VM')(
    'a node in /dev/dma_heap that is not a heap device is never opened',
    () => {
      const link = '/dev/dma_heap/evil-link';
      const file = '/dev/dma_heap/evil-file';
      symlinkSync('/dev/mem', link);
      writeFileSync(file, '');
      try {
        for (const name of ['evil-link', 'evil-file']) {
          expect(() => openHeap(name, { backend: 'kernel' })).toThrow(expect.objectContaining({ code: 'ENODEV' }));
        }
      } finally {
        rmSync(link);
        rmSync(file);
      }
    },
  );
});
