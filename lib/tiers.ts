import { DmaBuf, type ShareableTier } from './dmabuf';
import { DmaBufStateError } from './errors';
import { requireNative, tierUnavailable } from './chooser';
import { openHeap, type Heap } from './heap';
import { BufferPool, POOL_OPTIONS, type BufferPoolOptions } from './pool';
import { pageAlign } from './uapi';
import { checkedOptions, invalidArgValue, validateArray } from './args';
import { validateBoolean, validateBufferName, validateHeapName, validateOptions, validateSize } from './validate';
import { INTERNAL_CONSTRUCTOR } from './internal-token';
import { isProtectedHeapName } from './heap-kind';
import { shown } from './escape';

const SHAREABLE_OPTIONS = ['tiers', 'requireDmaBuf', 'heap', 'name', 'cloexec'] as const;
/** a shareable pool's: the pool's own and allocShareable's (its name is the pool's) */
const SHAREABLE_POOL_OPTIONS = [...POOL_OPTIONS, 'tiers', 'requireDmaBuf', 'heap', 'cloexec'] as const;

/** Every tier allocShareable can allocate from, strongest first: its default order. Frozen: it is
 *  the default for the whole process. */
export const TIERS: readonly ShareableTier[] = Object.freeze(['dma-heap', 'udmabuf', 'memfd', 'js'] as ShareableTier[]);

/** Options of {@link allocShareable} (and, but `name`, of {@link createShareablePool}). */
export interface ShareableOptions {
  /** tiers to try, in order; default DMA_HEAP_TIERS (comma-separated) or dma-heap, udmabuf, memfd, js.
   *  'imported' is no tier to allocate from: the type refuses it as allocShareable does. */
  tiers?: ShareableTier[];
  /** only a real dma-buf will do (dma-heap or udmabuf): fail clearly instead of a weaker tier */
  requireDmaBuf?: boolean;
  /** the heap for the dma-heap tier (default 'system') */
  heap?: string;
  /** a dma-buf name (≤ 31 bytes) for the buffer */
  name?: string;
  /** O_CLOEXEC on the buffer's fd (default true) */
  cloexec?: boolean;
}

/**
 * The tiers to try: `tiers` (options.tiers, read once by the caller), else DMA_HEAP_TIERS, else
 * all. A copy, each element read once: what was checked is what is tried (an element with a
 * getter cannot answer one thing to the check and another to the loop; a hole is no tier).
 * The environment is read only when it decides (a C++ interceptor call, ~0.15 µs).
 */
function tierOrder(tiers: unknown, requireDmaBuf: boolean): ShareableTier[] {
  let names: readonly unknown[];
  let what: string | undefined;
  if (tiers !== undefined) {
    validateArray(tiers, 'options.tiers', 'an array of tier names');
    names = tiers;
  } else {
    const env = process.env.DMA_HEAP_TIERS;
    if (!env) return requireDmaBuf ? ['dma-heap', 'udmabuf'] : [...TIERS];
    names = env.split(',').map((t) => t.trim());
    what = 'DMA_HEAP_TIERS';
  }
  const order: ShareableTier[] = [];
  for (let i = 0; i < names.length; i++) {
    const t = names[i] as ShareableTier;
    if (!TIERS.includes(t)) throw invalidArgValue(what ?? `options.tiers[${i}]`, t, `is not a tier (the tiers are ${TIERS.join(', ')})`);
    if (!requireDmaBuf || t === 'dma-heap' || t === 'udmabuf') order.push(t);
  }
  return order;
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

/**
 * Why a tier can't serve, remembered for ABSENT_TTL_MS: each look is a syscall (lstat of
 * /dev/dma_heap/<name>, access of /dev/udmabuf), measured here at 3-4 us each against a 4 KiB
 * memfd allocation's ~11 us, so looking on every call made allocShareable() 1.76x heap.alloc on
 * a host without heaps. A device that appears later (a heap module loaded) is used within the TTL.
 */
const ABSENT_TTL_MS = 1000;
/** each forgotten by an unref'd timer, not by reading a clock on every call (performance.now: ~0.3 us) */
const absent = new Map<string, string>();

function unavailable(key: string, tier: ShareableTier, heapName: string): string | undefined {
  const known = absent.get(key);
  if (known !== undefined) return known;
  const why = tierUnavailable(tier, heapName);
  if (why !== undefined) {
    absent.set(key, why);
    setTimeout(() => absent.delete(key), ABSENT_TTL_MS).unref();
  }
  return why;
}

/**
 * allocShareable's options, each read once and checked: what the tiers are given. A getter
 * runs once, and the value it gave the check is the value used.
 */
interface Checked {
  name: string | undefined;
  cloexec: boolean;
  requireDmaBuf: boolean;
  heapName: string;
  order: ShareableTier[];
  /** heap.alloc's options, made of the checked values: undefined for the defaults (no name,
   *  cloexec), else marked checked (lib/args.ts checkedOptions) so heap.alloc does not check
   *  them again */
  alloc: { name?: string; cloexec?: boolean } | undefined;
}

/** the options' values, read once each (the keys were checked by validateOptions) */
function checkShareable(options: ShareableOptions): Checked {
  // read and checked one by one, in this order: a getter that throws, and which error comes first, as ever
  const rawName = options.name;
  const name = rawName === undefined ? undefined : validateBufferName(rawName, 'options.name');
  const cloexec = validateBoolean(options.cloexec, 'options.cloexec', true);
  const requireDmaBuf = validateBoolean(options.requireDmaBuf, 'options.requireDmaBuf', false);
  const heap = options.heap;
  const heapName = heap === undefined ? 'system' : validateHeapName(heap, 'options.heap');
  // protected memory has no substitute: udmabuf, a memfd or JS memory would hand a secure
  // pipeline ordinary memory any process can read, so only the heap itself may serve
  const order = tierOrder(options.tiers, requireDmaBuf).filter((t) => t === 'dma-heap' || !isProtectedHeapName(heapName));
  return { name, cloexec, requireDmaBuf, heapName, order, alloc: heapAllocOptions(name, cloexec) };
}

/** the cloexec: false that names nothing, made once */
const NO_CLOEXEC = checkedOptions({ cloexec: false });

function heapAllocOptions(name: string | undefined, cloexec: boolean): Checked['alloc'] {
  if (name === undefined) return cloexec ? undefined : NO_CLOEXEC;
  return checkedOptions(cloexec ? { name } : { name, cloexec });
}

function allocFrom(tier: ShareableTier, size: number | bigint, c: Checked): DmaBuf {
  if (tier === 'udmabuf') return allocUdmabuf(size, c);
  return heapFor(tier === 'dma-heap' ? 'dma-heap' : 'memfd', c.heapName).alloc(size, c.alloc);
}

function allocUdmabuf(size: number | bigint, c: Checked): DmaBuf {
  const kernel = requireNative();
  const len = pageAlign(validateSize(size), kernel.pageSize);
  const fd = kernel.createUdmabuf(len, c.cloexec);
  // udmabuf exports exactly the pages it was given: no lseek for the size
  const buf = new DmaBuf(INTERNAL_CONSTRUCTOR, fd, { kernel, tier: 'udmabuf', readOnly: false, size: Number(len) });
  if (c.name !== undefined) {
    try {
      buf.setName(c.name);
    } catch (err) {
      buf.close();
      throw err;
    }
  }
  return buf;
}

/**
 * A buffer others can share, from the strongest tier that serves here:
 * a dma-heap, then udmabuf (a memfd made into a real dma-buf), then a plain memfd
 * (shareable with processes, not with devices), then JS memory (not shareable).
 * `buf.tier` says which served; `buf.isDmaBuf` whether devices can import it.
 *
 * @param size bytes, a positive safe integer or a bigint; no more than this machine's RAM
 * @param options `tiers` to try (in order), `requireDmaBuf`, the dma-heap tier's `heap`, `name`, `cloexec`
 * @returns the buffer, from the first tier that served
 * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for bad options, a tier that
 * is none, a bad heap name or DMA_HEAP_TIERS; RangeError `ERR_OUT_OF_RANGE` for a bad size or a
 * name over 31 bytes (argument errors are never masked by a fallback).
 * @throws {@link DmaHeapError} `ENOMEM` for more than the machine's RAM.
 * @throws {@link DmaBufStateError} `ERR_DMA_HEAP_NO_TIER` when no tier could allocate (the message
 * says why each failed); `ERR_DMA_HEAP_NO_DMA_BUF` for that with `requireDmaBuf`.
 * @example
 * ```ts
 * import { allocShareable } from 'dma-heap';
 * using buf = allocShareable(1 << 20, { name: 'frame' });
 * console.log(buf.tier, buf.isDmaBuf); // e.g. 'udmabuf' true, or 'memfd' false
 * ```
 */
export function allocShareable(size: number | bigint, options?: ShareableOptions): DmaBuf {
  return allocChecked(size, checkShareable(validateOptions(options, SHAREABLE_OPTIONS)));
}

function allocChecked(size: number | bigint, c: Checked): DmaBuf {
  // every argument's type before the size's one semantic rule (no more than RAM: ENOMEM)
  validateSize(size);
  // why each tier failed is only put into words when none served (strings per call cost ~1 us)
  let failed: Map<ShareableTier, string> | undefined;
  for (const tier of c.order) {
    const key = tierKey(tier, c.heapName);
    if (!served.has(key) && unavailable(key, tier, c.heapName) !== undefined) continue;
    try {
      const buf = allocFrom(tier, size, c);
      served.add(key);
      return buf;
    } catch (err) {
      // A bad argument is the caller's, whatever the tier: don't mask it by falling back.
      if (err instanceof TypeError || err instanceof RangeError) throw err;
      served.delete(key);
      if (tier === 'dma-heap' || tier === 'memfd') dropHeap(tier, c.heapName);
      (failed ??= new Map()).set(tier, (err as Error).message);
    }
  }
  const reasons = c.order.map((tier) => `${tier}: ${failed?.get(tier) ?? absent.get(tierKey(tier, c.heapName)) ?? tierUnavailable(tier, c.heapName)}`);
  if (isProtectedHeapName(c.heapName)) reasons.push(`heap '${shown(c.heapName)}' is protected memory: no other tier stands in for it`);
  throw new DmaBufStateError(
    c.requireDmaBuf ? 'ERR_DMA_HEAP_NO_DMA_BUF' : 'ERR_DMA_HEAP_NO_TIER',
    `no ${c.requireDmaBuf ? 'real dma-buf ' : ''}tier could allocate ${size} bytes: ${reasons.join('; ')}`,
  );
}

/**
 * A pool of allocShareable() buffers: every buffer from the strongest tier this host has.
 *
 * @param options the pool's (`size`, `count`, `max`, `name`, `zeroOnRelease`) and allocShareable's
 * (`tiers`, `requireDmaBuf`, `heap`, `cloexec`)
 * @returns the pool, its `count` buffers allocated and mapped
 * @throws TypeError / RangeError `ERR_INVALID_ARG_*` / `ERR_OUT_OF_RANGE` for bad options (checked
 * now, also with `count: 0`).
 * @throws {@link DmaBufStateError} `ERR_DMA_HEAP_NO_TIER` / `ERR_DMA_HEAP_NO_DMA_BUF` when no tier
 * could allocate a buffer; {@link DmaHeapError} from mapping one.
 * @example
 * ```ts
 * import { createShareablePool } from 'dma-heap';
 * using pool = createShareablePool({ size: 1 << 20, count: 4 });
 * using frame = pool.acquire();
 * console.log(frame.buffer.tier);
 * ```
 */
export function createShareablePool(options: BufferPoolOptions & Omit<ShareableOptions, 'name'>): BufferPool {
  const { tiers, requireDmaBuf, heap, cloexec, ...pool } = validateOptions(options, SHAREABLE_POOL_OPTIONS);
  const shareable: ShareableOptions = {};
  if (tiers !== undefined) shareable.tiers = tiers;
  if (requireDmaBuf !== undefined) shareable.requireDmaBuf = requireDmaBuf;
  if (heap !== undefined) shareable.heap = heap;
  if (cloexec !== undefined) shareable.cloexec = cloexec;
  // checked now, not at the first allocation (which count: 0 puts off), and only now: the
  // pool's allocations take these values (and the name the pool checked) as they are
  const checked = checkShareable(shareable);
  return new BufferPool(
    {
      alloc: (size, opts) => {
        const name = opts.name;
        return allocChecked(size, name === undefined ? checked : { ...checked, name, alloc: heapAllocOptions(name, checked.cloexec) });
      },
    },
    pool,
  );
}
