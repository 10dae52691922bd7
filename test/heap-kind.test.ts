/**
 * Issue 19, item 2: a heap's kind from what user space sees (lib/heap-kind.ts), not from a fixed
 * list of names. The real kernel's tree is measured in the 7.x row (test/kernel/cma-regions.test.ts);
 * here a scratch tree holds each source alone, so each rule is seen to work by itself.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { contiguousHeaps } from '../lib/chooser';
import { CONTIGUOUS_HEAP_NAMES, heapAccounted, heapKind, readHeapFacts } from '../lib/heap-kind';
import { NativeKernel } from '../lib/native/kernel';
import { nativeKernel } from '../lib/chooser';
import { testIf } from './helpers/skip';

let root: string;
beforeEach(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'dma-heap-kind-'));
});
afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const put = (file: string, data = '') => {
  fs.mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
  fs.writeFileSync(path.join(root, file), data);
};

test('no sysfs, no device tree, no parameter: nothing known, nothing charged', () => {
  expect(readHeapFacts(root)).toEqual({ cmaAreas: new Set(), memAccounting: false });
});

test('CMA areas from /sys/kernel/mm/cma (CONFIG_CMA_SYSFS) and debugfs /sys/kernel/debug/cma', () => {
  fs.mkdirSync(path.join(root, 'sys/kernel/mm/cma/reserved'), { recursive: true });
  fs.mkdirSync(path.join(root, 'sys/kernel/mm/cma/video-memory'), { recursive: true });
  fs.mkdirSync(path.join(root, 'sys/kernel/debug/cma/camera'), { recursive: true });
  expect([...readHeapFacts(root).cmaAreas].sort()).toEqual(['camera', 'reserved', 'video-memory']);
});

test("the device tree's reusable shared-dma-pool nodes are CMA areas (unit address kept); no-map pools and other nodes are not", () => {
  const rmem = 'proc/device-tree/reserved-memory';
  put(`${rmem}/video-memory/compatible`, 'shared-dma-pool\0');
  put(`${rmem}/video-memory/reusable`);
  put(`${rmem}/camera@58000000/compatible`, 'vendor,camera\0shared-dma-pool\0');
  put(`${rmem}/camera@58000000/reusable`);
  put(`${rmem}/dsp-pool/compatible`, 'shared-dma-pool\0');
  put(`${rmem}/dsp-pool/no-map`);
  put(`${rmem}/ramoops@50000000/compatible`, 'ramoops\0');
  put(`${rmem}/#address-cells`, '\0\0\0\x02');
  expect([...readHeapFacts(root).cmaAreas].sort()).toEqual(['camera@58000000', 'video-memory']);
});

test.each([
  ['Y\n', true],
  ['N\n', false],
])('dma_heap.mem_accounting %j: the system heaps are charged, no other', (value, on) => {
  put('sys/module/dma_heap/parameters/mem_accounting', value);
  expect(readHeapFacts(root).memAccounting).toBe(on);
  expect(heapAccounted('system', on)).toBe(on);
  expect(heapAccounted('system_cc_shared', on)).toBe(on);
  for (const name of ['default_cma_region', 'video-memory', 'protected,secure-video', 'system-uncached']) expect(heapAccounted(name, on)).toBe(false);
});

test('kinds: tee_heap prefix, CMA areas, the legacy names as fallback, the system heaps, the rest other', () => {
  const areas = new Set(['video-memory']);
  expect(heapKind('protected,secure-video', areas)).toBe('protected');
  expect(heapKind('protected,trusted-ui', new Set())).toBe('protected');
  expect(heapKind('video-memory', areas)).toBe('contiguous');
  expect(heapKind('video-memory', new Set())).toBe('other');
  for (const name of CONTIGUOUS_HEAP_NAMES) expect(heapKind(name, new Set())).toBe('contiguous');
  for (const name of ['system', 'system_cc_shared', 'system-uncached']) expect(heapKind(name, areas)).toBe('system');
  expect(heapKind('qcom,display', areas)).toBe('other');
});

testIf(nativeKernel() !== null, 'the native addon is needed for NativeKernel')(
  'NativeKernel lists kinds and accounting from the tree, and openContiguousHeap order puts the default area first, then regions by name',
  () => {
    const heapDir = path.join(root, 'dev/dma_heap');
    for (const name of ['system', 'reserved', 'default_cma_region', 'video-memory', 'camera-memory', 'protected,secure-video', 'vendor']) put(`dev/dma_heap/${name}`);
    for (const area of ['reserved', 'video-memory', 'camera-memory']) fs.mkdirSync(path.join(root, 'sys/kernel/mm/cma', area), { recursive: true });
    put('sys/module/dma_heap/parameters/mem_accounting', 'Y\n');
    const k = new NativeKernel(undefined, { heapDir, sysDir: path.join(root, 'absent'), sysRoot: root });
    const listed = Object.fromEntries(k.heaps().map((h) => [h.name, `${h.kind}${h.accounted ? ' accounted' : ''}`]));
    expect(listed).toEqual({
      'camera-memory': 'contiguous',
      default_cma_region: 'contiguous',
      'protected,secure-video': 'protected',
      reserved: 'contiguous',
      system: 'system accounted',
      vendor: 'other',
      'video-memory': 'contiguous',
    });
    expect(contiguousHeaps(k)).toEqual(['default_cma_region', 'reserved', 'camera-memory', 'video-memory']);
    expect(k.heapTraits('video-memory')).toEqual({ kind: 'contiguous', accounted: false });
    expect(k.heapTraits('system')).toEqual({ kind: 'system', accounted: true });
    expect(k.heapTraits('protected,x').kind).toBe('protected');
  },
);
