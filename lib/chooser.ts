/**
 * Which kernel serves, decided in one place: the backend choice (options and
 * DMA_HEAP_BACKEND), one kernel of each kind per thread, the auto decision for a
 * heap, which tiers can serve here, and which kernel an fd from elsewhere belongs to.
 */
import { types } from 'node:util';
import { existsSync } from 'node:fs';
import type { ShareableTier } from './dmabuf';
import { invalidArgType, invalidArgValue } from './args';
import { addonMissing, DmaHeapError, withContext } from './errors';
import { shown } from './escape';
import { openFdStat, wrongFdKind } from './fd-kind';
import { CONTIGUOUS_HEAP_NAMES } from './heap-kind';
import { Framework } from './framework';
import type { SimulatedKernel } from './framework';
import type { MemfdPolicy } from './framework/simulated-kernel';
import type { Adopted, Kernel } from './kernel';
import { addonStatus, debug, hasUdmabuf, loadNativeKernel, type NativeKernel } from './native';

/** One of each kernel per thread (per JS environment), made on first use. */
let native: NativeKernel | null | undefined;
let software: Framework | undefined;

/** The real kernel, if the addon loaded (whether or not this host has heaps). */
export function nativeKernel(): NativeKernel | null {
  if (native === undefined) native = loadNativeKernel();
  return native;
}

/** The kernel of the process's default software framework: system and CMA heaps, memfd backing when it can. */
export function softwareKernel(): SimulatedKernel {
  software ??= new Framework();
  return software.kernel;
}

/** why there is no real kernel here, in the addon loader's own words */
function noAddon(): string {
  const reason = addonStatus().reason ?? 'unknown';
  return reason.startsWith('native addon') ? reason : `the native addon is not loaded (${reason})`;
}

/** The software kernel `options` name: their framework's, else the process's default one. */
function softwareFor(options: KernelOptions): SimulatedKernel {
  return options.framework?.kernel ?? softwareKernel();
}

/** The process's default software framework if something has made it, else undefined
 *  (for a reader, such as dump, that must not create one by looking). */
export function softwareKernelIfMade(): SimulatedKernel | undefined {
  return software?.kernel;
}

/** whether the real kernel offers heaps here at all */
export function hasKernelHeaps(): boolean {
  return nativeKernel() !== null && existsSync('/dev/dma_heap');
}

/**
 * 'auto' (the real kernel when the heap opens, else the software framework), 'kernel' or 'software'.
 *
 * @inline
 */
export type BackendChoice = 'auto' | 'kernel' | 'software';

/**
 * Which backend serves: {@link OpenHeapOptions}.
 *
 * @inline
 */
export interface KernelOptions {
  /** 'kernel' or 'software' forces one; 'auto' (default) prefers the real kernel.
   *  The DMA_HEAP_BACKEND environment variable sets the default. */
  backend?: BackendChoice;
  /** a software framework of your own (your heaps, policy, fault injection); implies 'software' */
  framework?: Framework;
}

/** options.framework: undefined or a Framework, whose kernel is returned. A Proxy is no
 *  Framework (instanceof would run its traps). */
export function frameworkKernel(framework: unknown): SimulatedKernel | undefined {
  if (framework !== undefined && (types.isProxy(framework) || !(framework instanceof Framework))) {
    throw invalidArgType('options.framework', 'an instance of Framework', framework);
  }
  return framework?.kernel;
}

export function backendChoice(options: KernelOptions): BackendChoice {
  frameworkKernel(options.framework);
  if (options.backend !== undefined && options.backend !== 'auto' && options.backend !== 'kernel' && options.backend !== 'software') {
    throw invalidArgValue('options.backend', options.backend, "must be 'auto', 'kernel' or 'software'");
  }
  if (options.framework) return 'software';
  const fromEnv = options.backend === undefined && process.env.DMA_HEAP_BACKEND !== undefined;
  const choice = options.backend ?? (process.env.DMA_HEAP_BACKEND as BackendChoice | undefined) ?? 'auto';
  if (choice !== 'auto' && choice !== 'kernel' && choice !== 'software') {
    throw invalidArgValue(fromEnv ? 'DMA_HEAP_BACKEND' : 'options.backend', choice, "must be 'auto', 'kernel' or 'software'");
  }
  return choice;
}

export function requireNative(): NativeKernel {
  const kernel = nativeKernel();
  if (!kernel) throw addonMissing('the real-kernel backend', addonStatus().reason);
  return kernel;
}

/** The kernels `options` allow, real first, for listing heaps. */
export function kernelsFor(options: KernelOptions): Kernel[] {
  const choice = backendChoice(options);
  const out: Kernel[] = [];
  if (choice !== 'software') {
    const n = nativeKernel();
    if (n) out.push(n);
  }
  if (choice !== 'kernel') out.push(softwareFor(options));
  return out;
}

/**
 * The auto decision for one heap: the real kernel serves it when its device exists and
 * opens; otherwise the software framework does, and `open` is told why. `open` opens the
 * heap on a kernel (it throws when the device does not open).
 */
export function chooseHeap<T>(name: string, options: KernelOptions, open: (kernel: Kernel, fallbackReason?: string) => T): T {
  const choice = backendChoice(options);
  if (choice === 'kernel') return open(requireNative());
  if (choice === 'software') return open(softwareFor(options));

  const n = nativeKernel();
  let reason: string;
  if (!n) {
    reason = noAddon();
  } else if (!n.hasHeap(name)) {
    reason = `the kernel has no heap /dev/dma_heap/${name}`;
  } else {
    try {
      return open(n);
    } catch (err) {
      reason = (withContext(err, { path: `/dev/dma_heap/${name}`, heap: name, device: true }) as Error).message;
    }
  }
  // a heap name may hold any byte but '/' and NUL, and stderr is often a terminal
  debug(`heap ${shown(name)}: the software framework serves it: ${shown(reason)}`);
  return open(softwareFor(options), reason);
}

/**
 * A kernel's contiguous heaps, in the order openContiguousHeap() tries them: the default area's
 * names first (CONTIGUOUS_HEAP_NAMES' order: `default_cma_region` before its legacy alias), then
 * the other CMA areas (a board's `video-memory`...) by name. Found by kind (heap-kind.ts), not
 * by a fixed list of names.
 */
export function contiguousHeaps(kernel: Kernel): string[] {
  const names: readonly string[] = CONTIGUOUS_HEAP_NAMES;
  const rank = (n: string) => (names.includes(n) ? names.indexOf(n) : names.length);
  return kernel
    .heaps()
    .filter((h) => h.kind === 'contiguous')
    .map((h) => h.name)
    .sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
}

/** The same for "a contiguous heap": the first of the kernel's contiguous heaps that opens. */
export function chooseContiguousHeap<T>(options: KernelOptions, open: (kernel: Kernel, name: string, fallbackReason?: string) => T): T {
  const choice = backendChoice(options);
  const softwareHeap = () => contiguousHeaps(softwareFor(options))[0] ?? CONTIGUOUS_HEAP_NAMES[0];
  if (choice !== 'software') {
    const n = nativeKernel();
    const errors: string[] = [];
    for (const name of n ? contiguousHeaps(n) : []) {
      try {
        return open(requireNative(), name);
      } catch (err) {
        if (choice === 'kernel') throw err;
        errors.push((err as Error).message);
      }
    }
    if (choice === 'kernel') {
      requireNative();
      throw new DmaHeapError('ENOENT', 'open', {
        path: '/dev/dma_heap',
        message: `no contiguous heap: no CMA area has a heap under /dev/dma_heap (looked for ${CONTIGUOUS_HEAP_NAMES.join(', ')} and the areas in /sys/kernel/mm/cma and the device tree's reserved-memory)`,
      });
    }
    const reason = errors.length ? errors.join('; ') : n ? 'the kernel has no contiguous heap' : noAddon();
    return open(softwareFor(options), softwareHeap(), reason);
  }
  return open(softwareFor(options), softwareHeap());
}

/** Why a tier can't serve here; undefined if it may. */
export function tierUnavailable(tier: ShareableTier, heapName: string): string | undefined {
  const n = nativeKernel();
  switch (tier) {
    case 'dma-heap':
      if (!n) return noAddon();
      return n.hasHeap(heapName) ? undefined : `no /dev/dma_heap/${heapName}`;
    case 'udmabuf':
      if (!n) return noAddon();
      return hasUdmabuf() ? undefined : 'no /dev/udmabuf';
    case 'memfd':
      return n ? undefined : `${noAddon()}; memfd needs it`;
    case 'js':
      return n ? 'JS memory is only used where the addon cannot load' : undefined;
  }
}

/**
 * The kernel an fd from elsewhere belongs to: real dma-bufs go to the real kernel; the
 * software framework's buffers (and memfds, which is what its buffers are to another
 * process) to the framework. Anything else — a regular file, a pipe, a socket — is
 * refused as the kernel refuses it (fd-kind.ts: EINVAL); a closed fd is EBADF (syscall fstat).
 */
export function adoptFd(fd: number, dup: boolean, software?: SimulatedKernel, memfds: MemfdPolicy = 'softwareBuffer'): { kernel: Kernel; adopted: Adopted } {
  openFdStat(fd);
  const sw = software ?? softwareKernel();
  if (sw.isDmaBuf(fd)) return { kernel: sw, adopted: sw.adopt(fd, dup) };
  const n = nativeKernel();
  const adopted = n?.adoptDmaBuf(fd, dup);
  if (adopted) return { kernel: n!, adopted };
  if (n && sw.canAdopt(fd)) return { kernel: sw, adopted: sw.adopt(fd, dup, memfds) };
  throw wrongFdKind(fd, 'dma-buf');
}
