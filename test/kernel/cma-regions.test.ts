// The device tree's CMA regions as heaps (Linux 6.17+; the arm64-7-16k row boots with
// test/vm/dtb.js's `cma-regions` tree, DMA_HEAP_EXPECT=cma-regions). A board's device tree gives
// its video decoder and camera reusable `shared-dma-pool` regions; the kernel makes each a CMA
// area named after its node and the CMA heap registers one heap per area under that name, beside
// default_cma_region and the cma= area (`reserved`). Measured on 7.3.4, 16 KiB pages, qemu virt
// 2 GiB, `cma=64M`:
//   /dev/dma_heap:       camera-memory default_cma_region reserved system video-memory
//   /sys/kernel/mm/cma:  camera-memory reserved video-memory (total_pages 1024, 4096, 2048)
//   /proc/device-tree/reserved-memory: #address-cells #size-cells ranges name camera-memory
//     video-memory; each region: compatible "shared-dma-pool", reusable, size, alignment
//   /proc/meminfo: CmaTotal 114688 kB (64 + 32 + 16 MiB); CmaFree 114432 kB (256 KiB of
//     `reserved` held at boot by the atomic DMA pool)
//   dmesg: "OF: reserved mem: 0x00000000be000000..0x00000000bfffffff (32768 KiB) map reusable
//     video-memory", camera-memory at 0xbd000000 (16 MiB), cma= at 0xb8000000 (64 MiB)
//   fdinfo exp_name of a buffer from each: its heap's name (video-memory, camera-memory, ...)
// The tests: each region is an area and a heap of its size; listHeaps() calls all of these
// 'contiguous'; an allocation from video-memory takes that region's pages (its own counters move
// by the buffer's size, its bitmap gains one run of that many pages) and camera-memory's do not
// move; closing gives the pages back; one region runs out while the other still serves.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { listHeaps, openContiguousHeap, openHeap, type DmaBuf } from '../../lib';
import { CMA_HEAP_NAMES, CMA_REGIONS, describeWith } from '../helpers/expect';

const SYSFS = '/sys/kernel/mm/cma'; // CONFIG_CMA_SYSFS
const DEBUGFS = '/sys/kernel/debug/cma'; // CONFIG_CMA_DEBUGFS
const DT = '/proc/device-tree/reserved-memory';

const num = (file: string): number => Number(readFileSync(file, 'utf8').trim());
/** pages of the area nobody holds (the area's own counter, updated at alloc and release) */
const available = (area: string): number => num(`${SYSFS}/${area}/available_pages`);
/** pages the area's bitmap marks used (debugfs) */
const used = (area: string): number => num(`${DEBUGFS}/${area}/used`);

/** the area behind a CMA heap: its own name; default_cma_region is the default (cma=) area */
function areaOf(heap: string): string {
  const all = readdirSync(SYSFS);
  if (all.includes(heap)) return heap;
  const legacy = heap === 'default_cma_region' ? all.find((a) => CMA_HEAP_NAMES.includes(a)) : undefined;
  if (!legacy) throw new Error(`no CMA area behind heap ${heap} (areas: ${all.join(', ')})`);
  return legacy;
}

/**
 * The runs of pages an allocation took in an area: what its debugfs bitmap (u32 words, bit 0
 * first, one bit per 2^order_per_bit pages) marks used now and did not before, as [first, length].
 * (The physical pages themselves are out of sight: the CMA heap maps with VM_PFNMAP, which
 * /proc/self/pagemap does not walk.)
 */
function bitmap(area: string): Uint8Array {
  const count = num(`${DEBUGFS}/${area}/count`);
  const per = 2 ** num(`${DEBUGFS}/${area}/order_per_bit`);
  const words = readFileSync(`${DEBUGFS}/${area}/bitmap`, 'utf8').trim().split(/\s+/).map(Number);
  const bits = new Uint8Array(count);
  for (let page = 0; page < count; page++) {
    const bit = Math.floor(page / per);
    bits[page] = (words[bit >> 5] >>> (bit & 31)) & 1;
  }
  return bits;
}
function newRuns(before: Uint8Array, after: Uint8Array): [number, number][] {
  const runs: [number, number][] = [];
  for (let i = 0; i < after.length;) {
    if (!(after[i] && !before[i])) { i++; continue; }
    let j = i;
    while (j < after.length && after[j] && !before[j]) j++;
    runs.push([i, j - i]);
    i = j;
  }
  return runs;
}

describeWith('cma-regions')('device-tree CMA regions as heaps (6.17+)', () => {
  const regions = Object.keys(CMA_REGIONS);

  test('each reusable shared-dma-pool region of the device tree is a CMA area and a heap, of its size', () => {
    const areas = readdirSync(SYSFS);
    const heaps = readdirSync('/dev/dma_heap');
    for (const r of regions) {
      // the node as the kernel read it: reusable, not no-map (rmem_cma_setup's conditions)
      expect(readFileSync(`${DT}/${r}/compatible`, 'latin1')).toBe('shared-dma-pool\0');
      expect(existsSync(`${DT}/${r}/reusable`)).toBe(true);
      expect(existsSync(`${DT}/${r}/no-map`)).toBe(false);
      expect(areas).toContain(r);
      expect(heaps).toContain(r);
      using heap = openHeap(r, { backend: 'kernel' });
      expect(num(`${SYSFS}/${r}/total_pages`) * heap.pageSize).toBe(CMA_REGIONS[r]);
    }
    // /proc/meminfo's CmaTotal counts every area once: the regions plus the cma= area
    const total = Number(/^CmaTotal:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
    using sys = openHeap('system', { backend: 'kernel' });
    expect(total).toBe(areas.reduce((sum, a) => sum + num(`${SYSFS}/${a}/total_pages`) * sys.pageSize, 0));
  });

  test("listHeaps() calls every CMA area's heap and default_cma_region 'contiguous', system 'system'", () => {
    const listed = new Map(listHeaps({ backend: 'kernel' }).map((h) => [h.name, h]));
    for (const name of [...regions, ...CMA_HEAP_NAMES.filter((n) => listed.has(n))]) {
      expect({ name, kind: listed.get(name)?.kind }).toEqual({ name, kind: 'contiguous' });
      expect(listed.get(name)?.accounted).toBe(false); // the CMA heap never charges a cgroup
    }
    expect(listed.get('system')?.kind).toBe('system');
  });

  test('openContiguousHeap() opens a contiguous heap, and its buffers are one run of its CMA area', () => {
    using heap = openContiguousHeap({ backend: 'kernel' });
    expect(listHeaps({ backend: 'kernel' }).find((h) => h.name === heap.name)?.kind).toBe('contiguous');
    const area = areaOf(heap.name);
    const before = bitmap(area);
    using buf = heap.alloc(4 * heap.pageSize);
    expect(newRuns(before, bitmap(area)).map(([, n]) => n)).toEqual([4]);
  });

  test('openHeap(video-memory) takes its pages from that region, and only from it; close gives them back', () => {
    using heap = openHeap('video-memory', { backend: 'kernel' });
    const page = heap.pageSize;
    const size = 4 << 20;
    const bitmapBefore = { video: bitmap('video-memory'), camera: bitmap('camera-memory') };
    const before = { video: available('video-memory'), camera: available('camera-memory'), videoUsed: used('video-memory'), cameraUsed: used('camera-memory') };
    {
      using buf = heap.alloc(size);
      expect(buf.exporter).toBe('video-memory');
      expect(buf.info()).toMatchObject({ size, exporter: 'video-memory' });
      expect(available('video-memory')).toBe(before.video - size / page);
      expect(used('video-memory')).toBe(before.videoUsed + size / page);
      expect(available('camera-memory')).toBe(before.camera);
      expect(used('camera-memory')).toBe(before.cameraUsed);
      // the region's own bitmap: the buffer is one run of it; camera-memory's did not change
      expect(newRuns(bitmapBefore.video, bitmap('video-memory')).map(([, n]) => n)).toEqual([size / page]);
      expect(newRuns(bitmapBefore.camera, bitmap('camera-memory'))).toEqual([]);
    }
    expect(available('video-memory')).toBe(before.video);
    expect(used('video-memory')).toBe(before.videoUsed);
    expect(available('camera-memory')).toBe(before.camera);
  });

  test('a region is exhausted on its own: video-memory runs out while camera-memory still serves', () => {
    using video = openHeap('video-memory', { backend: 'kernel' });
    using camera = openHeap('camera-memory', { backend: 'kernel' });
    const held: DmaBuf[] = [];
    try {
      // the whole region cannot be had as one buffer while anything else holds a page of it,
      // so take it in 4 MiB pieces until it refuses
      for (;;) {
        try { held.push(video.alloc(4 << 20)); } catch (e) { expect(e).toMatchObject({ code: 'ENOMEM', heap: 'video-memory' }); break; }
        if (held.length > CMA_REGIONS['video-memory'] / (4 << 20)) throw new Error('video-memory gave more than its size');
      }
      expect(held.length).toBeGreaterThan(0);
      using still = camera.alloc(4 << 20);
      expect(still.exporter).toBe('camera-memory');
    } finally {
      held.forEach((b) => b.close());
    }
  });
});
