/**
 * What a heap is, from what user space can see of it. The kernel gives a heap a name and a
 * device node, nothing more: no "kind" attribute, no link from /sys/class/dma_heap/<name> to
 * the memory behind it. What it does show, read in linux-source-7.3 and measured on the
 * matrix's 7.x row:
 * - cma_heap.c (7.x add_cma_heaps) names a heap `default_cma_region` for the default area and
 *   then one per CMA area, under the area's own name: `reserved` (cma= on the command line),
 *   `linux,cma` (the device tree's default), or a reusable `shared-dma-pool` node's name
 *   (`video-memory`). Those areas are listed in /sys/kernel/mm/cma/ (CONFIG_CMA_SYSFS), in
 *   debugfs /sys/kernel/debug/cma/ (root), and the device-tree ones under
 *   /proc/device-tree/reserved-memory/ (compatible "shared-dma-pool" with a `reusable` property).
 * - tee_heap.c (6.18) names its heaps `protected,<use>`; their buffers have no mmap op.
 * - dma-heap.c (7.0+) has the read-only parameter dma_heap.mem_accounting; when it is set,
 *   system_heap.c allocates with __GFP_ACCOUNT: the pages are charged to the allocating
 *   process's memory cgroup. No other mainline heap charges them (CMA's dmem charge is in review).
 * The name list (CONTIGUOUS_HEAP_NAMES) stays the fallback for kernels without CMA_SYSFS or a
 * device tree (x86 with cma=).
 */
import fs from 'node:fs';

/**
 * What a heap's memory is: 'system' (pages from anywhere, CPU-mappable), 'contiguous' (a CMA
 * area: physically contiguous, for devices without an IOMMU), 'protected' (memory the CPU
 * cannot map: a TEE's secure video or trusted UI heap), or 'other' (a vendor heap this package
 * cannot place).
 */
export type HeapKind = 'system' | 'contiguous' | 'protected' | 'other';

/** CMA heap names, newest first: 6.17+ names the default region, older kernels used these.
 *  Frozen: any module could otherwise redirect openContiguousHeap() for the whole process. */
export const CONTIGUOUS_HEAP_NAMES = Object.freeze(['default_cma_region', 'linux,cma', 'reserved', 'default-pool'] as const);

/** tee_heap.c's prefix (heap_id_2_name: protected,secure-video, protected,trusted-ui, ...) */
const PROTECTED_PREFIX = 'protected,';

/** system_heap.c's heaps: the ones dma_heap.mem_accounting charges */
const SYSTEM_HEAP_NAMES: ReadonlySet<string> = new Set(['system', 'system_cc_shared']);
/** Android's uncached system heap (out of tree): system pages, never charged by mainline */
const SYSTEM_LIKE_NAMES: ReadonlySet<string> = new Set(['system-uncached']);

/**
 * What one heap is: HeapEntry's `kind` and `accounted`.
 *
 * @inline
 */
export interface HeapTraits {
  /** what its memory is */
  kind: HeapKind;
  /** whether its allocations are charged to the allocating process's memory cgroup */
  accounted: boolean;
}

/** What a kernel shows of its heaps besides their names. */
export interface HeapFacts {
  /** the CMA areas' names (each has a heap of that name on 6.19+ kernels) */
  cmaAreas: ReadonlySet<string>;
  /** dma_heap.mem_accounting is set */
  memAccounting: boolean;
}

/** whether `name` is tee_heap's (protected memory): known from the name alone, no I/O */
export const isProtectedHeapName = (name: string): boolean => name.startsWith(PROTECTED_PREFIX);

/** tee_heap's buffers' exp_name: DEFINE_DMA_BUF_EXPORT_INFO fills in KBUILD_MODNAME, and tee_heap.o is part of tee.ko */
export const TEE_EXP_NAME = 'tee';

/** whether a dma-buf whose fdinfo names `exporter` is protected memory: tee_heap's, or a protected heap's name */
export const isProtectedExporter = (exporter: string): boolean => exporter === TEE_EXP_NAME || isProtectedHeapName(exporter);

/** what a heap called `name` is, given the kernel's CMA areas */
export function heapKind(name: string, cmaAreas: ReadonlySet<string>): HeapKind {
  if (cmaAreas.has(name)) return 'contiguous'; // a CMA area's name is what it is, commas or not
  if (isProtectedHeapName(name)) return 'protected';
  if ((CONTIGUOUS_HEAP_NAMES as readonly string[]).includes(name)) return 'contiguous';
  if (SYSTEM_HEAP_NAMES.has(name) || SYSTEM_LIKE_NAMES.has(name)) return 'system';
  return 'other';
}

/** a heap's traits, given what the kernel shows */
export function heapTraits(name: string, facts: HeapFacts): HeapTraits {
  return { kind: heapKind(name, facts.cmaAreas), accounted: heapAccounted(name, facts.memAccounting) };
}

/** whether allocations from heap `name` are charged to the allocating process's memory cgroup */
export function heapAccounted(name: string, memAccounting: boolean): boolean {
  return memAccounting && SYSTEM_HEAP_NAMES.has(name);
}

function readdir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return []; // absent (no CMA_SYSFS, no device tree, debugfs not mounted or not root)
  }
}

/** a device-tree property's strings (NUL-separated), or [] when absent */
function dtStrings(file: string): string[] {
  try {
    return fs.readFileSync(file, 'latin1').split('\0').filter(Boolean);
  } catch {
    return [];
  }
}

/**
 * The CMA areas and mem_accounting of the running kernel. `root` prefixes every path (tests aim
 * it at a scratch tree). Only sysfs, debugfs and procfs files are read: no device is touched.
 */
export function readHeapFacts(root = ''): HeapFacts {
  const areas = new Set<string>([...readdir(`${root}/sys/kernel/mm/cma`), ...readdir(`${root}/sys/kernel/debug/cma`)]);
  const rmem = `${root}/proc/device-tree/reserved-memory`;
  for (const node of readdir(rmem)) {
    if (!dtStrings(`${rmem}/${node}/compatible`).includes('shared-dma-pool')) continue;
    if (!fs.existsSync(`${rmem}/${node}/reusable`)) continue; // no-map pools are DMA pools, not CMA
    // rmem->name is the node's name, unit address included when the node has one
    areas.add(node);
  }
  let memAccounting = false;
  try {
    memAccounting = /^[Y1]/.test(fs.readFileSync(`${root}/sys/module/dma_heap/parameters/mem_accounting`, 'latin1'));
  } catch {
    // before 7.0: no such parameter, nothing is charged
  }
  return { cmaAreas: areas, memAccounting };
}
