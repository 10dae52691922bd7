import { DmaBuf, type ShareableTier } from './dmabuf';
import { DmaBufStateError } from './errors';
import { requireNative, tierUnavailable } from './chooser';
import { openHeap, type Heap } from './heap';
import { BufferPool, POOL_OPTIONS, type BufferPoolOptions } from './pool';
import { pageAlign } from './uapi';
import { invalidArgValue, validateArray } from './args';
import { validateBoolean, validateBufferName, validateHeapName, validateOptions, validateSize } from './validate';

const SHAREABLE_OPTIONS = ['tiers', 'requireDmaBuf', 'heap', 'name', 'cloexec'] as const;
/** a shareable pool's: the pool's own and allocShareable's (its name is the pool's) */
const SHAREABLE_POOL_OPTIONS = [...POOL_OPTIONS, 'tiers', 'requireDmaBuf', 'heap', 'cloexec'] as const;

export const TIERS: readonly ShareableTier[] = ['dma-heap', 'udmabuf', 'memfd', 'js'];

export interface ShareableOptions {
  /** tiers to try, in order; default DMA_HEAP_TIERS (comma-separated) or dma-heap, udmabuf, memfd, js.
   *  'imported' is no tier to allocate from: the type refuses it as allocShareable does. */
  tiers?: ShareableTier[];
  /** only a real dma-buf will do (dma-heap or udmabuf): fail clearly instead of a weaker tier */
  requireDmaBuf?: boolean;
  /** the heap for the dma-heap tier (default 'system') */
  heap?: string;
  name?: string;
  cloexec?: boolean;
}

function tierOrder(options: ShareableOptions): ShareableTier[] {
  const env = process.env.DMA_HEAP_TIERS;
  if (options.tiers !== undefined) validateArray(options.tiers, 'options.tiers', 'an array of tier names');
  const fromEnv = options.tiers === undefined && !!env;
  const order = options.tiers ?? (env ? (env.split(',').map((t) => t.trim()) as ShareableTier[]) : [...TIERS]);
  order.forEach((t, i) => {
    if (!TIERS.includes(t)) {
      throw invalidArgValue(fromEnv ? 'DMA_HEAP_TIERS' : `options.tiers[${i}]`, t, `is not a tier (the tiers are ${TIERS.join(', ')})`);
    }
  });
  return options.requireDmaBuf ? order.filter((t) => t === 'dma-heap' || t === 'udmabuf') : order;
}

/**
 * The heaps allocShareable allocates from, opened once per (tier, heap) and kept for the
 * life of this thread: opening a heap (lstat, sysfs, open, fstat, the GET_FEATURES probe)
 * costs more than a small allocation. Each holds one fd (O_CLOEXEC). A heap that fails is
 * dropped and opened afresh by the next call.
 */
const heaps = new Map<string, Heap>();

/** the cache key: memfd buffers come from the software system heap whatever options.heap says */
const tierKey = (tier: ShareableTier, heapName: string) => (tier === 'dma-heap' ? `${tier}\0${heapName}` : tier);

function heapFor(tier: 'dma-heap' | 'memfd', heapName: string): Heap {
  const key = tierKey(tier, heapName);
  let heap = heaps.get(key);
  if (!heap || heap.fd < 0) {
    heap = tier === 'dma-heap' ? openHeap(heapName, { backend: 'kernel' }) : openHeap('system', { backend: 'software' });
    heaps.set(key, heap);
  }
  return heap;
}

function dropHeap(tier: ShareableTier, heapName: string): void {
  const key = tierKey(tier, heapName);
  heaps.get(key)?.close();
  heaps.delete(key);
}

/** tiers that served once: their device is there, no need to look again on every call */
const served = new Set<string>();

function allocFrom(tier: ShareableTier, size: number | bigint, heapName: string, options: ShareableOptions): DmaBuf {
  const alloc = { name: options.name, cloexec: options.cloexec };
  if (tier === 'udmabuf') return allocUdmabuf(size, alloc);
  return heapFor(tier === 'dma-heap' ? 'dma-heap' : 'memfd', heapName).alloc(size, alloc);
}

function allocUdmabuf(size: number | bigint, options: { name?: string; cloexec?: boolean }): DmaBuf {
  const kernel = requireNative();
  const len = pageAlign(validateSize(size), kernel.pageSize);
  const fd = kernel.createUdmabuf(len, options.cloexec !== false);
  // udmabuf exports exactly the pages it was given: no lseek for the size
  const buf = new DmaBuf(fd, { kernel, tier: 'udmabuf', readOnly: false, size: Number(len) });
  if (options.name !== undefined) {
    try {
      buf.setName(options.name);
    } catch (err) {
      buf.close();
      throw err;
    }
  }
  return buf;
}

/** allocShareable's option values (the keys were checked): the heap's name and the tiers to try */
function checkShareable(options: ShareableOptions): { heapName: string; order: ShareableTier[] } {
  if (options.name !== undefined) validateBufferName(options.name, 'options.name');
  validateBoolean(options.cloexec, 'options.cloexec', true);
  validateBoolean(options.requireDmaBuf, 'options.requireDmaBuf', false);
  const heapName = options.heap === undefined ? 'system' : validateHeapName(options.heap, 'options.heap');
  return { heapName, order: tierOrder(options) };
}

/**
 * A buffer others can share, from the strongest tier that serves here:
 * a dma-heap, then udmabuf (a memfd made into a real dma-buf), then a plain memfd
 * (shareable with processes, not with devices), then JS memory (not shareable).
 * `buf.tier` says which served; `buf.isDmaBuf` whether devices can import it.
 */
export function allocShareable(size: number | bigint, options?: ShareableOptions): DmaBuf {
  options = validateOptions(options, SHAREABLE_OPTIONS);
  const { heapName, order } = checkShareable(options);
  // every argument's type before the size's one semantic rule (no more than RAM: ENOMEM)
  validateSize(size);
  const reasons: string[] = [];
  for (const tier of order) {
    const key = tierKey(tier, heapName);
    const why = served.has(key) ? undefined : tierUnavailable(tier, heapName);
    if (why) {
      reasons.push(`${tier}: ${why}`);
      continue;
    }
    try {
      const buf = allocFrom(tier, size, heapName, options);
      served.add(key);
      return buf;
    } catch (err) {
      // A bad argument is the caller's, whatever the tier: don't mask it by falling back.
      if (err instanceof TypeError || err instanceof RangeError) throw err;
      served.delete(key);
      if (tier === 'dma-heap' || tier === 'memfd') dropHeap(tier, heapName);
      reasons.push(`${tier}: ${(err as Error).message}`);
    }
  }
  throw new DmaBufStateError(
    options.requireDmaBuf ? 'ERR_DMA_HEAP_NO_DMA_BUF' : 'ERR_DMA_HEAP_NO_TIER',
    `no ${options.requireDmaBuf ? 'real dma-buf ' : ''}tier could allocate ${size} bytes: ${reasons.join('; ')}`,
  );
}

/** A pool of allocShareable() buffers: every buffer from the strongest tier this host has. */
export function createShareablePool(options: BufferPoolOptions & Omit<ShareableOptions, 'name'>): BufferPool {
  const { tiers, requireDmaBuf, heap, cloexec, ...pool } = validateOptions(options, SHAREABLE_POOL_OPTIONS);
  const shareable: ShareableOptions = {};
  if (tiers !== undefined) shareable.tiers = tiers;
  if (requireDmaBuf !== undefined) shareable.requireDmaBuf = requireDmaBuf;
  if (heap !== undefined) shareable.heap = heap;
  if (cloexec !== undefined) shareable.cloexec = cloexec;
  // checked now, not at the first allocation (which count: 0 puts off)
  checkShareable(shareable);
  return new BufferPool({ alloc: (size, opts) => allocShareable(size, { ...shareable, ...opts }) }, pool);
}
