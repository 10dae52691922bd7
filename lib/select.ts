import { DmaHeapError, withContext } from './errors';
import { Heap } from './heap';
import type { HeapEntry, Kernel } from './kernel';
import { backendChoice, nativeKernel, requireNative, softwareKernel, type KernelOptions } from './chooser';
import { validateHeapName, validateOptions } from './validate';

export type OpenHeapOptions = KernelOptions;

export interface ListedHeap extends HeapEntry {
  backend: 'kernel' | 'software';
}

/**
 * The heaps this process can reach: the real kernel's (under /dev/dma_heap, with
 * whether this process may open them) and the software framework's.
 */
export function listHeaps(options?: KernelOptions): ListedHeap[] {
  options = validateOptions(options);
  const choice = backendChoice(options);
  const out: ListedHeap[] = [];
  if (choice !== 'software') {
    for (const h of nativeKernel()?.heaps() ?? []) out.push({ ...h, backend: 'kernel' });
  }
  if (choice !== 'kernel') {
    for (const h of (options.framework ?? softwareKernel()).heaps()) out.push({ ...h, backend: 'software' });
  }
  return out;
}

/**
 * Open a heap by name. The real kernel serves it when its device exists and opens;
 * otherwise the software framework does, and `heap.fallbackReason` says why.
 * Force either with `backend` or DMA_HEAP_BACKEND.
 */
export function openHeap(name: string, options?: OpenHeapOptions): Heap {
  validateHeapName(name);
  options = validateOptions(options);
  const choice = backendChoice(options);
  const framework = (): Kernel => options!.framework ?? softwareKernel();
  if (choice === 'kernel') return new Heap(requireNative(), name);
  if (choice === 'software') return new Heap(framework(), name);

  const native = nativeKernel();
  let reason: string;
  if (!native) {
    reason = 'the native addon is not loaded';
  } else if (!native.heaps().some((h) => h.name === name)) {
    reason = `the kernel has no heap /dev/dma_heap/${name}`;
  } else {
    try {
      return new Heap(native, name);
    } catch (err) {
      reason = (withContext(err, { path: `/dev/dma_heap/${name}`, heap: name, device: true }) as Error).message;
    }
  }
  return new Heap(framework(), name, reason);
}

/** CMA heap names, newest first: 6.17+ names the default region, older kernels used these. */
export const CONTIGUOUS_HEAP_NAMES = ['default_cma_region', 'linux,cma', 'reserved', 'default-pool'] as const;

/** Open a physically contiguous (CMA) heap: the first of CONTIGUOUS_HEAP_NAMES that opens. */
export function openContiguousHeap(options?: OpenHeapOptions): Heap {
  options = validateOptions(options);
  const choice = backendChoice(options);
  if (choice !== 'software') {
    const present = new Set((nativeKernel()?.heaps() ?? []).map((h) => h.name));
    const errors: string[] = [];
    for (const name of CONTIGUOUS_HEAP_NAMES) {
      if (!present.has(name)) continue;
      try {
        return new Heap(requireNative(), name);
      } catch (err) {
        if (choice === 'kernel') throw err;
        errors.push((err as Error).message);
      }
    }
    if (choice === 'kernel') {
      throw new DmaHeapError('ENOENT', 'open', {
        path: '/dev/dma_heap',
        message: `no contiguous heap: none of ${CONTIGUOUS_HEAP_NAMES.join(', ')} is under /dev/dma_heap`,
      });
    }
    const reason = errors.length ? errors.join('; ') : 'the kernel has no contiguous heap';
    return new Heap(options.framework ?? softwareKernel(), CONTIGUOUS_HEAP_NAMES[0], reason);
  }
  return new Heap(options.framework ?? softwareKernel(), CONTIGUOUS_HEAP_NAMES[0]);
}
