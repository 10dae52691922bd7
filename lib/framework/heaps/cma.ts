/**
 * The CMA heap, after drivers/dma-buf/heaps/cma_heap.c: physically contiguous buffers from one
 * bounded region, zeroed on allocation, aligned to min(get_order(size), CONFIG_CMA_ALIGNMENT)
 * pages. Since 6.17 (add_default_cma_heap, "dma-buf: heaps: Give default CMA heap a fixed
 * name") the default area is registered as `default_cma_region` and, with
 * CONFIG_DMABUF_HEAPS_CMA_LEGACY=y (the default), a second heap under the area's legacy name
 * (`reserved` unless the device tree names it): two heaps, each its own struct cma_heap,
 * over the same struct cma. Before 6.17 (and in the v14 era) only the legacy name existed.
 * By 7.3 (Debian's linux-source-7.3, read for the kernel matrix) the option is gone and the
 * alias is unconditional: add_cma_heaps() adds `default_cma_region` for dev_get_cma_area(NULL),
 * then one heap per dma_contiguous_areas[] entry under cma_get_name(), and the default area
 * made from cma= is in that list too. The heaps this file registers are the same either way.
 */
import type { BackingMemory } from '../backing';
import type { Cma } from '../cma';
import { errno, type Errno } from '../errno';
import type { KernelDmaBuf } from '../dma-buf';
import type { DmaHeap, Profile } from '../dma-heap';
import type { Framework, KernelRelease } from '../framework';
import { moduleInit } from '../initcall';

export const DEFAULT_CMA_NAME = 'default_cma_region';
/** CONFIG_CMA_ALIGNMENT's default: at most 2^8 pages of alignment */
export const CMA_ALIGNMENT = 8;

/** struct cma_heap_buffer: the dma-buf's priv */
export interface CmaBuffer {
  /** the CMA region it was allocated from */
  cma: Cma;
  /** first page in the region */
  pageno: number;
  /** pages it spans */
  pagecount: number;
  /** byte offset in the region */
  offset: number;
  /** base + offset: what a device would be given */
  physAddr: number;
  /** its memory */
  backing: BackingMemory;
}

/** get_order(size): the smallest order with PAGE_SIZE << order >= size */
export function getOrder(size: number, pageSize: number): number {
  let order = 0;
  while (pageSize * 2 ** order < size) order++;
  return order;
}

/** ENOMEM that says why: a fixed region (64 MiB by default), and how much of it, in one run, is free */
function regionFull(region: Cma, pageSize: number, asked: bigint): Errno {
  const free = (region.count - region.used) * pageSize;
  return errno('ENOMEM', `cannot allocate memory: ${asked} bytes asked, the CMA region has ${region.size} bytes (${free} free, largest free run ${region.largestFreeRun * pageSize})`);
}

function addCmaHeap(fw: Framework, cma: Cma, name: string): DmaHeap {
  return fw.addHeap({
    name,
    priv: cma,
    ops: {
      allocate(heap, len, fdFlags): KernelDmaBuf<CmaBuffer> {
        const region = heap.getDrvdata() as Cma;
        if (len > BigInt(region.size)) throw regionFull(region, fw.pageSize, len);
        const size = Number(len);
        const pagecount = size / fw.pageSize;
        const align = Math.min(getOrder(size, fw.pageSize), CMA_ALIGNMENT);
        const pageno = region.alloc(pagecount, align);
        if (pageno === null) throw regionFull(region, fw.pageSize, len);
        let backing: BackingMemory;
        try {
          backing = fw.allocBacking(size, heap.name); // fresh, so zeroed as cma_heap_allocate memsets
        } catch (e) {
          region.release(pageno, pagecount);
          throw e;
        }
        const offset = pageno * fw.pageSize;
        const priv: CmaBuffer = { cma: region, pageno, pagecount, offset, physAddr: region.base + offset, backing };
        return fw.exportBacking({
          expName: heap.name,
          size,
          flags: fdFlags,
          backing,
          priv,
          release: () => region.release(pageno, pagecount),
        });
      },
    },
  });
}

/**
 * The default area's heaps for the kernel followed: the v14 patch and 6.12 (add_default_cma_heap)
 * register the area under its own name only; 6.17+ as `default_cma_region` and the legacy name.
 */
export function addDefaultCmaHeaps(fw: Framework, cma: Cma, profile: Profile, release: KernelRelease = '7.3'): DmaHeap[] {
  if (profile === 'v14' || release === '6.12' || cma.name === DEFAULT_CMA_NAME) return [addCmaHeap(fw, cma, cma.name)];
  return [addCmaHeap(fw, cma, DEFAULT_CMA_NAME), addCmaHeap(fw, cma, cma.name)];
}

/** module_init(add_cma_heaps): the default area's heaps, then one per device-tree region (7.x) */
moduleInit((fw) => {
  if (fw.cma) addDefaultCmaHeaps(fw, fw.cma, fw.profile, fw.release);
  for (const region of fw.cmaRegions) addCmaHeap(fw, region, region.name);
});
