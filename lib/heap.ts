import { chooseContiguousHeap, chooseHeap, kernelsFor, type KernelOptions } from './chooser';
import type { HeapKind } from './heap-kind';
import { DmaBuf } from './dmabuf';
import { DmaBufStateError, DmaHeapError, withContext } from './errors';
import { chargeInFlight, memcgRoom } from './memcg';
import { shown } from './escape';
import { checkConstructorToken, INTERNAL_CONSTRUCTOR } from './internal-token';
import { closest } from './suggest';
import { createPool, type BufferPool, type BufferPoolOptions } from './pool';
import { addHandleReader, unwatchForgotten, watchForgotten, type Backend, type Backing, type HeapEntry, type Kernel } from './kernel';
import {
  DMA_HEAP_IOCTL_ALLOC,
  DMA_HEAP_V14_IOCTL_ALLOC,
  DMA_HEAP_V14_IOCTL_GET_FEATURES,
  O_CLOEXEC,
  O_RDONLY,
  O_RDWR,
  ALLOCATION_DATA_FD_OFFSET,
  decodeAllocationData,
  decodeU64,
  encodeAllocationData,
} from './uapi';
import { validateBoolean, validateBufferName, validateHeapName, validateOptions, validateSize } from './validate';

const ALLOC_OPTIONS = ['name', 'readOnly', 'cloexec'] as const;
const OPEN_OPTIONS = ['backend', 'framework'] as const;

/** what a request outside any memory cgroup check holds: nothing to give back */
const NOTHING_CHARGED = (): void => undefined;

/** kinds whose buffers are exactly the page-aligned request (mainline system and CMA heaps) */
const EXACT_SIZE_KINDS: ReadonlySet<HeapKind> = new Set<HeapKind>(['system', 'contiguous']);

/** Options of {@link Heap.alloc} and {@link Heap.allocAsync}. */
export interface AllocOptions {
  /** a name for the buffer (≤ 31 bytes), set with DMA_BUF_SET_NAME right after allocation */
  name?: string;
  /** open the dma-buf O_RDONLY: it can then only be mapped read-only */
  readOnly?: boolean;
  /** O_CLOEXEC on the buffer's fd (default true); hand fds to children with spawn's stdio instead */
  cloexec?: boolean;
}

/** What the 2019 v14 GET_FEATURES probe found. Mainline kernels never had it. */
export interface HeapFeatures {
  /** whether the heap answered GET_FEATURES (a 2019 v14 kernel); false on every mainline kernel */
  supported: boolean;
  /** the feature bits, when supported */
  flags?: bigint;
  /** why not, when not: the kernel's answer */
  reason?: string;
}

/** Which ioctl numbering a heap speaks: mainline (ALLOC at nr 0), or the 2019 v14 patch set's (GET_FEATURES at 0, ALLOC at 1). */
export type HeapAbi = 'mainline' | 'v14';

/** An open dma-buf heap: `/dev/dma_heap/<name>` on the real kernel, or the software framework's. */
export class Heap {
  /** the heap's name: its entry under /dev/dma_heap */
  readonly name: string;
  /** `/dev/dma_heap/<name>`, also for a heap the software framework serves */
  readonly path: string;
  /** 'v14' when the heap answered the 2019 GET_FEATURES probe (ALLOC then lives at nr 1) */
  readonly abi: HeapAbi;
  /** why the software framework serves a heap the real kernel has, if it does */
  readonly fallbackReason?: string;
  /** what its memory is: 'system', 'contiguous' (a CMA area), 'protected' (its buffers are not CPU-visible) or 'other' */
  readonly kind: HeapKind;
  /** whether its allocations are charged to this process's memory cgroup (dma_heap.mem_accounting):
   *  then an allocation that would pass memory.max is refused with ENOMEM before the kernel's
   *  OOM killer could end the process */
  readonly accounted: boolean;
  #fd: number;
  /** closed by the user; the fd itself stays open while async allocations still use it */
  #closed = false;
  readonly #kernel: Kernel;
  readonly #features: HeapFeatures;

  static {
    addHandleReader((h) => (#kernel in h ? { kind: 'heap', kernel: (h as Heap).#kernel, fd: (h as Heap).#fd, open: !(h as Heap).#closed } : undefined));
  }

  /**
   * Not for users: openHeap() or openContiguousHeap() open one (the token is the package's own).
   *
   * @hidden
   */
  constructor(token: typeof INTERNAL_CONSTRUCTOR, kernel: Kernel, name: string, fallbackReason?: string) {
    checkConstructorToken(token, 'openHeap() or openContiguousHeap()');
    this.#kernel = kernel;
    this.name = name;
    this.path = `/dev/dma_heap/${name}`;
    if (fallbackReason !== undefined) this.fallbackReason = fallbackReason;
    ({ kind: this.kind, accounted: this.accounted } = kernel.heapTraits(name));
    try {
      this.#fd = kernel.openHeap(name);
    } catch (err) {
      throw withContext(err, { path: this.path, heap: name, device: kernel.backend === 'kernel' });
    }
    watchForgotten(this);
    try {
      this.#features = this.#probe();
    } catch (err) {
      this.close();
      throw err;
    }
    this.abi = this.#features.supported ? 'v14' : 'mainline';
  }

  /** which kernel serves the heap: 'kernel' (the real one) or 'software' (the framework) */
  get backend(): Backend {
    return this.#kernel.backend;
  }

  /** how buffers are backed: 'dma-buf' on the real kernel, 'memfd' or 'js' in software */
  get backing(): Backing {
    return this.#kernel.backing;
  }

  /** the page size the serving kernel rounds buffers up to, in bytes */
  get pageSize(): number {
    return this.#kernel.pageSize;
  }


  /** whether close() was called (as DmaBuf, SyncFile, BufferPool and the channels say it) */
  get closed(): boolean {
    return this.#closed;
  }

  /** the heap device's fd; -1 once closed */
  get fd(): number {
    return this.#closed ? -1 : this.#fd;
  }

  #check(): number {
    if (this.#closed) throw new DmaBufStateError('ERR_DMA_HEAP_CLOSED', `heap ${this.name} is closed`);
    return this.#fd;
  }

  /**
   * The v14 GET_FEATURES probe. A mainline kernel decodes it as ALLOC with a zero
   * length and answers EINVAL (measured on 6.12), which means "not supported".
   */
  #probe(): HeapFeatures {
    const arg = new Uint8Array(8);
    try {
      this.#kernel.ioctl(this.#check(), DMA_HEAP_V14_IOCTL_GET_FEATURES, arg);
      return { supported: true, flags: decodeU64(arg) };
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code === 'EINVAL' || code === 'ENOTTY') {
        return { supported: false, reason: `${code}: this kernel has no GET_FEATURES (mainline ABI)` };
      }
      throw withContext(err, { path: this.path, heap: this.name });
    }
  }

  /**
   * What the open-time GET_FEATURES probe found; never throws for "not supported".
   *
   * @returns a copy of the probe's answer: `supported`, and `flags` or the `reason` it is not
   * @throws Nothing: the probe ran when the heap opened, even after close() this reads its answer.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * console.log(heap.abi, heap.features()); // 'mainline' { supported: false, reason: 'EINVAL: ...' }
   * ```
   */
  features(): HeapFeatures {
    return { ...this.#features };
  }

  #request(size: unknown, options: AllocOptions): { cmd: number; len: bigint; fdFlags: number; charged: () => void } {
    this.#check();
    if (options.name !== undefined) validateBufferName(options.name, 'options.name');
    const readOnly = validateBoolean(options.readOnly, 'options.readOnly', false);
    const cloexec = validateBoolean(options.cloexec, 'options.cloexec', true);
    // every argument's type before the size's one semantic rule (no more than RAM: ENOMEM)
    const len = validateSize(size, { heap: this.name, path: this.path });
    const charged = this.accounted && this.#kernel.backend === 'kernel' ? this.#checkMemcg(len) : NOTHING_CHARGED;
    const fdFlags = (readOnly ? O_RDONLY : O_RDWR) | (cloexec ? O_CLOEXEC : 0);
    return { cmd: this.abi === 'v14' ? DMA_HEAP_V14_IOCTL_ALLOC : DMA_HEAP_IOCTL_ALLOC, len, fdFlags, charged };
  }

  /**
   * memory.max, asked before the kernel is (lib/memcg.ts): past it, an accounted allocation
   * gets the process OOM-killed rather than failed.
   */
  #checkMemcg(len: bigint): () => void {
    const room = memcgRoom();
    const page = BigInt(this.#kernel.pageSize);
    const aligned = ((len + page - 1n) / page) * page;
    if (room && aligned > BigInt(room.bytes)) {
      throw new DmaHeapError('ENOMEM', 'ioctl', {
        heap: this.name,
        path: this.path,
        message:
          `refusing to allocate ${aligned} bytes from heap '${shown(this.name)}': its pages are charged to this process's memory cgroup ` +
          `(dma_heap.mem_accounting), and ${shown(room.group)} has ${room.bytes} bytes left under memory.max ` +
          '(the kernel would OOM-kill this process instead of failing)',
      });
    }
    // counted against the room until the ioctl settles: concurrent allocAsync calls see each other
    return chargeInFlight(Number(aligned));
  }

  /**
   * The size the kernel gave a buffer of `len` bytes, when it is certain without asking: the
   * dma-heap core page-aligns every request (dma_heap_buffer_alloc) and the mainline system
   * and CMA heaps export exactly that. Other heaps (vendors') may round further: lseek.
   */
  #knownSize(len: bigint): number | undefined {
    if (this.#kernel.backend !== 'kernel' || !EXACT_SIZE_KINDS.has(this.kind)) return undefined;
    const page = BigInt(this.#kernel.pageSize);
    return Number(((len + page - 1n) / page) * page);
  }

  #adopt(fd: number, len: bigint, options: AllocOptions): DmaBuf {
    const buf = new DmaBuf(INTERNAL_CONSTRUCTOR, fd, {
      size: this.#knownSize(len),
      kernel: this.#kernel,
      tier: this.#kernel.backend === 'kernel' ? 'dma-heap' : this.#kernel.backing === 'memfd' ? 'memfd' : 'js',
      readOnly: options.readOnly === true,
      heap: this.name,
      cpuVisible: this.kind !== 'protected',
    });
    if (options.name !== undefined) {
      try {
        buf.setName(options.name);
      } catch (err) {
        buf.close(); // no half-made buffer
        throw err;
      }
    }
    return buf;
  }

  /**
   * Allocate a dma-buf of at least `size` bytes (rounded up to pages by the kernel).
   *
   * @param size bytes, a positive safe integer or a bigint up to 2^64-1; no more than this
   * machine's RAM (a real system heap would let the OOM killer end the process instead of failing)
   * @param options the buffer's name, read-only, close-on-exec
   * @returns the new buffer, which is the caller's to close (the heap's close() leaves it valid)
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for a bad size type,
   * options object, unknown option or name; RangeError `ERR_OUT_OF_RANGE` for a size that is not a
   * positive safe integer (or u64) or a name over 31 UTF-8 bytes.
   * @throws {@link DmaBufStateError} `ERR_DMA_HEAP_CLOSED` after close().
   * @throws {@link DmaHeapError} `ENOMEM` for more than the machine's RAM or when the heap is out of
   * memory; any other errno of DMA_HEAP_IOCTL_ALLOC or DMA_BUF_SET_NAME (e.g. `EINVAL`).
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using buf = heap.alloc(1 << 20, { name: 'camera0' });
   * buf.write(new Uint8Array([1, 2, 3]));
   * ```
   */
  alloc(size: number | bigint, options?: AllocOptions): DmaBuf {
    options = validateOptions(options, ALLOC_OPTIONS);
    const { cmd, len, fdFlags, charged } = this.#request(size, options);
    let fd: number;
    try {
      fd = this.#kernel.heapAlloc(this.#fd, cmd, len, fdFlags);
    } catch (err) {
      throw withContext(err, { path: this.path, heap: this.name });
    } finally {
      charged();
    }
    return this.#adopt(fd, len, options);
  }

  /**
   * alloc() off the event loop, on the libuv thread pool: large allocations take long.
   *
   * @param size bytes, as for {@link Heap.alloc}
   * @param options as for {@link Heap.alloc}
   * @returns the new buffer; it is the caller's even if the heap was closed while it was made
   * @throws The same as {@link Heap.alloc} (TypeError, RangeError, {@link DmaBufStateError}
   * `ERR_DMA_HEAP_CLOSED`, {@link DmaHeapError}), as a rejection.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * const buf = await heap.allocAsync(16 << 20);
   * await buf.closeAsync();
   * ```
   */
  async allocAsync(size: number | bigint, options?: AllocOptions): Promise<DmaBuf> {
    options = validateOptions(options, ALLOC_OPTIONS);
    const { cmd, len, fdFlags, charged } = this.#request(size, options);
    const arg = encodeAllocationData({ len, fd: 0, fdFlags, heapFlags: 0n });
    // The kernel holds the heap's file until the ioctl ran (the addon's pool thread works on a
    // dup of the fd): close() meanwhile, and a reused fd number, cannot redirect it.
    try {
      await this.#kernel.ioctlAsync(this.#fd, cmd, arg, ALLOCATION_DATA_FD_OFFSET);
    } catch (err) {
      throw withContext(err, { path: this.path, heap: this.name });
    } finally {
      charged();
    }
    // Even if the heap was closed meanwhile, the buffer exists and is the caller's.
    return this.#adopt(decodeAllocationData(arg).fd, len, options);
  }

  /**
   * A pool of `count` buffers of `size` bytes from this heap, allocated and mapped once, for a
   * pipeline to cycle instead of allocating per frame (see BufferPool). The pool's buffers
   * outlive the heap's close().
   *
   * @param options the pool's `count`, `size` and buffer options (see {@link BufferPoolOptions}), and `cloexec`
   * @returns the pool, with every buffer allocated and mapped
   * @throws {@link DmaBufStateError} `ERR_DMA_HEAP_CLOSED` after close().
   * @throws TypeError / RangeError `ERR_INVALID_ARG_*` / `ERR_OUT_OF_RANGE` for bad options;
   * {@link DmaHeapError} from allocating or mapping a buffer (the ones made are closed first).
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using pool = heap.createPool({ count: 4, size: 1 << 20 });
   * using frame = pool.acquire();
   * frame.bytes().fill(0);
   * ```
   */
  createPool(options: BufferPoolOptions & Pick<AllocOptions, 'cloexec'>): BufferPool {
    this.#check();
    return createPool(this, options);
  }

  /**
   * Close the heap device. Buffers stay valid, and an allocAsync under way still completes. Idempotent.
   *
   * @throws Nothing: a second close() does nothing.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * const heap = openHeap('system');
   * const buf = heap.alloc(4096);
   * heap.close();
   * buf.write(new Uint8Array(16)); // buffers outlive their heap
   * buf.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    unwatchForgotten(this);
    this.#kernel.close(this.#fd);
  }

  /**
   * close(), for `using`.
   *
   * @throws Nothing, as close().
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * {
   *   using heap = openHeap('system');
   *   heap.alloc(4096).close();
   * } // heap.close() ran here
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }
}

/** Options of {@link openHeap}, {@link openContiguousHeap} and {@link listHeaps}: which backend serves. */
export type OpenHeapOptions = KernelOptions;

/** One heap {@link listHeaps} found, and which backend has it. */
export interface ListedHeap extends HeapEntry {
  /** 'kernel' for the real /dev/dma_heap, 'software' for the framework's */
  backend: 'kernel' | 'software';
}

/**
 * The heaps this process can reach: the real kernel's (under /dev/dma_heap, with
 * whether this process may open them) and the software framework's.
 *
 * @param options `backend` ('kernel' lists only the real ones, 'software' only the framework's) or `framework`
 * @returns one entry per heap and backend, the real kernel's first
 * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for bad options, a bad
 * `backend` or a bad DMA_HEAP_BACKEND.
 * @example
 * ```ts
 * import { listHeaps } from 'dma-heap';
 * for (const h of listHeaps()) console.log(h.name, h.backend, h.accessible);
 * ```
 */
export function listHeaps(options?: KernelOptions): ListedHeap[] {
  options = validateOptions(options, OPEN_OPTIONS);
  return kernelsFor(options).flatMap((kernel) => kernel.heaps().map((h) => ({ ...h, backend: kernel.backend })));
}

/**
 * Open a heap by name. The real kernel serves it when its device exists and opens;
 * otherwise the software framework does, and `heap.fallbackReason` says why.
 * Force either with `backend` or DMA_HEAP_BACKEND.
 *
 * @param name the heap's entry under /dev/dma_heap, e.g. 'system'
 * @param options `backend` ('auto', 'kernel' or 'software') or a `framework` of your own
 * @returns the open heap; close it (or `using`) when done
 * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for a name that is not one
 * entry of /dev/dma_heap, bad options, or a bad DMA_HEAP_BACKEND.
 * @throws {@link DmaHeapError} `ENOENT` when no backend allowed has the heap (the message lists
 * the heaps there are and the closest name); with `backend: 'kernel'`, the open's own errno
 * (`EACCES`/`EPERM` with a udev or SELinux hint).
 * @throws Error `ERR_DMA_HEAP_NO_ADDON` with `backend: 'kernel'` when the native addon did not load.
 * @example
 * ```ts
 * import { openHeap } from 'dma-heap';
 * using heap = openHeap('system');
 * console.log(heap.backend, heap.fallbackReason ?? 'the real kernel');
 * ```
 */
export function openHeap(name: string, options?: OpenHeapOptions): Heap {
  validateHeapName(name);
  const opts = validateOptions(options, OPEN_OPTIONS);
  try {
    return chooseHeap(name, opts, (kernel, reason) => new Heap(INTERNAL_CONSTRUCTOR, kernel, name, reason));
  } catch (err) {
    throw (err as { code?: unknown }).code === 'ENOENT' ? withHeapsListed(err as Error, name, opts) : err;
  }
}

/**
 * ENOENT for a heap name: the same error (code, errno, syscall, path, heap), its message
 * grown by the heaps this process can reach and the closest name, for a typo like 'sytem'.
 */
function withHeapsListed(err: Error, name: string, options: KernelOptions): Error {
  const kernels = kernelsFor(options);
  const reachable = kernels.map((k) => ({ backend: k.backend, names: k.heaps().map((h) => h.name) })).filter((k) => k.names.length);
  const guess = closest(name, [...new Set(reachable.flatMap((k) => k.names))]);
  const listed = reachable.length ? `the heaps here: ${reachable.map((k) => `${k.names.join(', ')} (${k.backend})`).join('; ')}` : 'this process reaches no heaps';
  err.message += `: no heap '${name}'; ${listed}${guess ? `; did you mean '${guess}'?` : ''}`;
  return err;
}

/**
 * Open a physically contiguous (CMA) heap: the first of {@link CONTIGUOUS_HEAP_NAMES} that opens.
 *
 * @param options `backend` ('auto', 'kernel' or 'software') or a `framework` of your own
 * @returns the open heap (in software, the framework's 'default_cma_region')
 * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for bad options or DMA_HEAP_BACKEND.
 * @throws {@link DmaHeapError} with `backend: 'kernel'`: `ENOENT` when the kernel has no contiguous
 * heap, or the open's errno (`EACCES`...).
 * @throws Error `ERR_DMA_HEAP_NO_ADDON` with `backend: 'kernel'` when the native addon did not load.
 * @example
 * ```ts
 * import { openContiguousHeap } from 'dma-heap';
 * using cma = openContiguousHeap();
 * using buf = cma.alloc(1 << 20);
 * console.log(cma.name, buf.size);
 * ```
 */
export function openContiguousHeap(options?: OpenHeapOptions): Heap {
  options = validateOptions(options, OPEN_OPTIONS);
  return chooseContiguousHeap(options, (kernel, name, reason) => new Heap(INTERNAL_CONSTRUCTOR, kernel, name, reason));
}
