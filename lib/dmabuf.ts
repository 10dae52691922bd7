import { adoptFd, frameworkKernel } from './chooser';
import { checkConstructorToken, INTERNAL_CONSTRUCTOR } from './internal-token';
import { DmaBufStateError, DmaHeapError, syncFileClosed, withContext } from './errors';
import {
  BUF_SYNC_FILE_FD_OFFSET,
  decodeBufSyncFile,
  DMA_BUF_IOCTL_EXPORT_SYNC_FILE,
  DMA_BUF_IOCTL_IMPORT_SYNC_FILE,
  encodeBufSyncFile,
} from './fence-uapi';
import { eventsFor, validateWait, waitReady, type WaitOptions } from './fences';
import { SyncFile } from './sync-file';
import type { Framework } from './framework/framework';
import type { MemfdPolicy, SimulatedKernel } from './framework/simulated-kernel';
import { parseFdinfo, type DmaBufInfo } from './fdinfo';
import { isProtectedExporter } from './heap-kind';
import { shown } from './escape';
import { addHandleReader, handleState, unwatchForgotten, watchForgotten, type Backend, type Kernel } from './kernel';
import {
  DMA_BUF_IOCTL_SYNC,
  DMA_BUF_SET_NAME_B,
  DMA_BUF_SYNC_END,
  DMA_BUF_SYNC_READ,
  DMA_BUF_SYNC_RW,
  DMA_BUF_SYNC_START,
  DMA_BUF_SYNC_WRITE,
  encodeName,
  encodeU64,
  O_ACCMODE,
  O_RDONLY,
} from './uapi';
import { invalidArgType, invalidArgValue, outOfRange } from './args';
import { validateAccess, validateBoolean, validateBufferName, validateOptions, validateRange, type CpuAccess } from './validate';

/** The tiers allocShareable can allocate from, strongest first. Only the first two are real dma-bufs. */
export type ShareableTier = 'dma-heap' | 'udmabuf' | 'memfd' | 'js';

/** Which mechanism served a buffer (`buf.tier`): an allocatable tier, or 'imported' for a
 *  real dma-buf another driver exported (DmaBuf.fromFd), which no allocation gives. */
export type Tier = ShareableTier | 'imported';

/** What made a DmaBuf: its kernel, tier, access and, when known, heap and size (the package's own). */
export interface DmaBufOrigin {
  kernel: Kernel;
  tier: Tier;
  readOnly: boolean;
  /** the heap it came from, when it came from one */
  heap?: string;
  /** the size, when the allocation already knows it (saves an lseek) */
  size?: number;
  /** false for protected memory (a heap of kind 'protected', tee_heap's exports); default true */
  cpuVisible?: boolean;
}


const SYNC_ACCESS: Record<CpuAccess, bigint> = {
  read: DMA_BUF_SYNC_READ,
  write: DMA_BUF_SYNC_WRITE,
  readwrite: DMA_BUF_SYNC_RW,
};

/**
 * A dma-buf: memory a device can share, reached through an fd. Close it (or
 * `using` it); after close every view onto its mapping is detached.
 */
export class DmaBuf {
  #fd: number;
  /** bytes, page-rounded by the kernel (lseek SEEK_END) */
  readonly size: number;
  /** which mechanism serves it: 'dma-heap', 'udmabuf', 'memfd', 'js', or 'imported' (another driver's) */
  readonly tier: Tier;
  /** opened O_RDONLY: map(), bytes(), cpuAccess() and write() refuse it; read() works */
  readonly readOnly: boolean;
  /** the heap it came from, when it came from one */
  readonly heap?: string;
  readonly #kernel: Kernel;
  /** false once known: from a protected heap, or its exporter refused mmap (no mmap op) */
  #cpuVisible: boolean;
  #view?: Uint8Array;
  /** who is told once this handle is closed (its pool): one slot, set by the owner */
  #onClose?: (buf: DmaBuf) => void;

  static {
    addHandleReader((h) => (#kernel in h ? { kind: 'dma-buf', kernel: (h as DmaBuf).#kernel, fd: (h as DmaBuf).#fd, open: (h as DmaBuf).#fd >= 0 } : undefined));
  }

  /**
   * Not for users: Heap.alloc(), allocShareable() or DmaBuf.fromFd() make one (the token is the package's own).
   *
   * @hidden
   */
  constructor(token: typeof INTERNAL_CONSTRUCTOR, fd: number, origin: DmaBufOrigin) {
    checkConstructorToken(token, 'Heap.alloc(), allocShareable() or DmaBuf.fromFd()');
    this.#fd = fd;
    this.#kernel = origin.kernel;
    this.tier = origin.tier;
    this.readOnly = origin.readOnly;
    this.#cpuVisible = origin.cpuVisible ?? true;
    if (origin.heap !== undefined) this.heap = origin.heap;
    watchForgotten(this);
    try {
      this.size = origin.size ?? this.#kernel.seekEnd(fd);
    } catch (err) {
      this.close();
      throw this.#context(err);
    }
  }

  /** which kernel serves it: the real one or the software framework */
  get backend(): Backend {
    return this.#kernel.backend;
  }

  /** whether other drivers can import it (a real dma-buf fd) */
  get isDmaBuf(): boolean {
    return this.tier === 'dma-heap' || this.tier === 'udmabuf' || this.tier === 'imported';
  }

  /** the buffer's fd; -1 once closed (read-only, like Heap.fd) */
  get fd(): number {
    return this.#fd;
  }

  /** whether close() or closeAsync() ran (or a pool's own close of it) */
  get closed(): boolean {
    return this.#fd < 0;
  }


  #check(): number {
    if (this.#fd < 0) throw new DmaBufStateError('ERR_DMA_BUF_CLOSED', 'this dma-buf is closed');
    return this.#fd;
  }

  #context<E>(err: E): E {
    return withContext(err, { heap: this.heap });
  }

  /**
   * Whether the CPU can map this buffer: false for protected memory (a TEE's secure-video or
   * trusted-UI heap, 6.18+), whose exporter has no mmap. Devices can still use it and it can
   * be shared; map(), bytes(), read(), write(), beginCpuAccess() and cpuAccess*() refuse it with
   * `ERR_DMA_BUF_NOT_CPU_VISIBLE` (endCpuAccess() always ends a bracket). Known from the heap's kind, or from the kernel refusing the
   * first mapping (mmap EINVAL for a whole, valid buffer: the dma-buf core's answer for an
   * exporter without mmap), after which it reads false.
   */
  get cpuVisible(): boolean {
    return this.#cpuVisible;
  }

  /** refuse a CPU path on memory the CPU cannot see: before any syscall when known */
  #requireCpuVisible(what: string): void {
    if (!this.#cpuVisible) throw this.#notCpuVisible(what);
  }

  #notCpuVisible(what: string): DmaBufStateError {
    const from = this.heap !== undefined ? `heap '${shown(this.heap)}'` : this.tier === 'imported' ? 'its exporter' : `tier ${this.tier}`;
    return new DmaBufStateError(
      'ERR_DMA_BUF_NOT_CPU_VISIBLE',
      `${what}: this dma-buf is protected memory the CPU cannot map (${from} has no mmap): ` +
        'pass it to devices and other processes, or allocate CPU-visible memory (kind system or contiguous) to touch it',
    );
  }

  /**
   * mmap's EINVAL for a whole buffer whose size the kernel itself reported can only be the
   * dma-buf core's "no mmap op" (dma_buf_mmap_internal): the buffer is not CPU-visible.
   */
  #mmapError(err: unknown, what: string): unknown {
    const e = err as { code?: string; syscall?: string };
    if (e.code === 'EINVAL' && e.syscall === 'mmap' && this.#fenced) {
      this.#cpuVisible = false;
      return this.#notCpuVisible(what);
    }
    return this.#context(err);
  }

  /**
   * The whole buffer as one ArrayBuffer over a MAP_SHARED mapping: no copy. The
   * same mapping is returned on every call; it is detached by close().
   *
   * @returns the mapping's ArrayBuffer, `size` bytes
   * @throws {@link DmaBufStateError} `ERR_DMA_BUF_CLOSED` after close(); `ERR_DMA_BUF_READ_ONLY` for a read-only buffer (a JS write
   * would fault the process); `ERR_DMA_HEAP_NO_EXTERNAL_BUFFERS` where the runtime refuses external
   * ArrayBuffers (Electron's V8 sandbox).
   * @throws {@link DmaHeapError} the errno of mmap (e.g. `ENOMEM`).
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using buf = heap.alloc(4096);
   * const ab = buf.map();
   * buf.cpuAccess('write', () => new Uint8Array(ab).fill(1));
   * ```
   */
  map(): ArrayBuffer {
    return this.bytes().buffer as ArrayBuffer;
  }

  /**
   * The mapping as a Uint8Array over all `size` bytes.
   *
   * @returns a view of map()'s ArrayBuffer (the same mapping on every call)
   * @throws As {@link DmaBuf.map}: {@link DmaBufStateError} `ERR_DMA_BUF_CLOSED`,
   * `ERR_DMA_BUF_READ_ONLY`, `ERR_DMA_HEAP_NO_EXTERNAL_BUFFERS`; {@link DmaHeapError} from mmap.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using buf = heap.alloc(4096);
   * buf.beginCpuAccess('write');
   * buf.bytes().fill(0xff);
   * buf.endCpuAccess('write');
   * ```
   */
  bytes(): Uint8Array {
    return this.#mapping('map()/bytes()');
  }

  /**
   * The mapping, made once, for `what` (map(), cpuAccess()...). Two buffers have none to give,
   * and say so rather than hand over an empty stand-in a loop over `length` would accept: a
   * read-only one (JS has no read-only ArrayBuffer, so a write through it would fault the
   * process) and one in a runtime that refuses external ArrayBuffers (Electron's V8 sandbox).
   */
  #mapping(what: string): Uint8Array {
    const fd = this.#check();
    this.#requireCpuVisible(what);
    if (this.readOnly) {
      throw new DmaBufStateError(
        'ERR_DMA_BUF_READ_ONLY',
        `${what} of a read-only dma-buf: it is never exposed as an ArrayBuffer (JS could write to it and fault): ` +
          "copy out with read() inside beginCpuAccess('read') / endCpuAccess('read')",
      );
    }
    if (!this.#view || this.#view.byteLength === 0) {
      try {
        this.#view = this.#kernel.mmap(fd, this.size, 0, true);
      } catch (err) {
        if ((err as { code?: string }).code === 'ERR_DMA_HEAP_NO_EXTERNAL_BUFFERS') {
          throw new DmaBufStateError(
            'ERR_DMA_HEAP_NO_EXTERNAL_BUFFERS',
            `${what}: this runtime refuses external ArrayBuffers (V8 sandbox, as in Electron): ` +
              'use buf.read() and buf.write() inside beginCpuAccess() / endCpuAccess() instead',
          );
        }
        throw this.#mmapError(err, what);
      }
    }
    return this.#view;
  }

  /**
   * Copy out `length` bytes at `offset` (default: all). Works where map() is refused. Copies
   * through the mapping map() made, if there is one, else through a brief mapping of just
   * the pages touched: a buffer larger than an ArrayBuffer may be (or than the address
   * space left) still reads.
   *
   * @param offset where to start, in bytes (default 0)
   * @param length how many bytes (default: to the end)
   * @returns a new Buffer with the copy
   * @throws {@link DmaBufStateError} `ERR_DMA_BUF_CLOSED` after close().
   * @throws TypeError `ERR_INVALID_ARG_TYPE` for a non-number offset or length; RangeError
   * `ERR_OUT_OF_RANGE` for a negative or non-integer one, or one past `size`.
   * @throws {@link DmaHeapError} from mapping the pages (mmap's errno).
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using buf = heap.alloc(4096);
   * buf.beginCpuAccess('read');
   * const head = buf.read(0, 16);
   * buf.endCpuAccess('read');
   * ```
   */
  read(offset = 0, length?: number): Buffer {
    const fd = this.#check();
    // the default is computed only once offset is known to be a number: no user valueOf runs
    const r = validateRange(offset, length === undefined ? (typeof offset === 'number' ? this.size - offset : 0) : length, this.size);
    this.#requireCpuVisible('read()');
    const out = Buffer.alloc(r.length);
    const view = this.#mapped();
    try {
      if (view) out.set(view.subarray(r.offset, r.offset + r.length));
      else this.#kernel.readMapped(fd, r.offset, out);
    } catch (err) {
      throw this.#mmapError(err, 'read()');
    }
    return out;
  }

  /**
   * Copy `data` in at `offset`. Works where map() is refused.
   *
   * @param data the bytes to copy (a Uint8Array or Buffer)
   * @param offset where they go, in bytes (default 0)
   * @throws {@link DmaBufStateError} `ERR_DMA_BUF_CLOSED` after close(); `ERR_DMA_BUF_READ_ONLY` for a read-only buffer.
   * @throws TypeError `ERR_INVALID_ARG_TYPE` for data that is no Uint8Array or a non-number offset;
   * RangeError `ERR_OUT_OF_RANGE` when `offset + data.length` passes `size`.
   * @throws {@link DmaHeapError} from mapping the pages (mmap's errno).
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using buf = heap.alloc(4096);
   * buf.beginCpuAccess('write');
   * buf.write(Buffer.from('hello'), 128);
   * buf.endCpuAccess('write');
   * ```
   */
  write(data: Uint8Array, offset = 0): void {
    const fd = this.#check();
    // isView first: instanceof would run a Proxy's getPrototypeOf trap
    if (!(ArrayBuffer.isView(data) && data instanceof Uint8Array)) throw invalidArgType('data', 'an instance of Uint8Array or Buffer', data);
    const r = validateRange(offset, data.length, this.size);
    // the fd is O_RDONLY: refused here, not by whatever mmap or pwrite would say of it
    if (this.readOnly) throw new DmaBufStateError('ERR_DMA_BUF_READ_ONLY', 'write() of a read-only dma-buf: it was opened O_RDONLY');
    this.#requireCpuVisible('write()');
    // nothing to copy (a detached array reads as empty too, and set() would throw on it)
    if (r.length === 0) return;
    const view = this.#mapped();
    try {
      if (view) view.set(data, r.offset);
      else this.#kernel.writeMapped(fd, r.offset, data);
    } catch (err) {
      throw this.#mmapError(err, 'write()');
    }
  }

  /** the mapping map() made and close() has not undone, if any */
  #mapped(): Uint8Array | null {
    return this.#view && this.#view.byteLength ? this.#view : null;
  }

  #sync(flags: bigint): void {
    const fd = this.#check();
    // DMA_BUF_IOCTL_SYNC is cache maintenance, not a lock: retry what a signal or a busy fence interrupted.
    for (;;) {
      try {
        this.#kernel.ioctl(fd, DMA_BUF_IOCTL_SYNC, encodeU64(flags));
        return;
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code !== 'EINTR' && code !== 'EAGAIN') throw this.#context(err);
      }
    }
  }

  /**
   * Start a CPU access bracket (DMA_BUF_SYNC_START): caches are made coherent for the CPU.
   * Blocks while a device's fence is pending: cpuAccessAsync() waits without blocking.
   *
   * @param access what the CPU will do: 'read', 'write' or 'readwrite' (default)
   * @throws {@link DmaBufStateError} `ERR_DMA_BUF_CLOSED` after close().
   * @throws TypeError `ERR_INVALID_ARG_VALUE` for another access.
   * @throws {@link DmaHeapError} the errno of DMA_BUF_IOCTL_SYNC (EINTR and EAGAIN are retried).
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using buf = heap.alloc(4096);
   * buf.beginCpuAccess('read');
   * const copy = buf.read();
   * buf.endCpuAccess('read');
   * ```
   */
  beginCpuAccess(access: CpuAccess = 'readwrite'): void {
    this.#requireCpuVisible('beginCpuAccess()');
    this.#sync(DMA_BUF_SYNC_START | SYNC_ACCESS[validateAccess(access)]);
  }

  /**
   * End a CPU access bracket (DMA_BUF_SYNC_END): the device may use the memory again.
   *
   * @param access the access beginCpuAccess() was given (default 'readwrite')
   * @throws {@link DmaBufStateError} `ERR_DMA_BUF_CLOSED` after close().
   * @throws TypeError `ERR_INVALID_ARG_VALUE` for another access.
   * @throws {@link DmaHeapError} the errno of DMA_BUF_IOCTL_SYNC (EINTR and EAGAIN are retried).
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using buf = heap.alloc(4096);
   * buf.beginCpuAccess('write');
   * buf.write(new Uint8Array([1, 2, 3]));
   * buf.endCpuAccess('write');
   * ```
   */
  endCpuAccess(access: CpuAccess = 'readwrite'): void {
    // never refused: a bracket begun before the buffer was found unmappable must still end
    this.#sync(DMA_BUF_SYNC_END | SYNC_ACCESS[validateAccess(access)]);
  }

  /**
   * Run `fn` inside a CPU access bracket that always ends, also when `fn` throws
   * or its promise rejects. `fn` gets the mapping itself, never a copy; where there is none
   * to give, nothing starts (no SYNC) and it throws: ERR_DMA_BUF_READ_ONLY for a read-only
   * buffer, whatever the access (copy out with read() between beginCpuAccess('read') and
   * endCpuAccess('read')), ERR_DMA_HEAP_NO_EXTERNAL_BUFFERS where map() is refused (the
   * same bracket, with read() and write()).
   *
   * @param access 'read', 'write' or 'readwrite'
   * @param fn called with the mapping; may return a promise, and the bracket ends when it settles
   * @returns what `fn` returns (its promise, for an async `fn`)
   * @throws TypeError `ERR_INVALID_ARG_VALUE` for another access; `ERR_INVALID_ARG_TYPE` when `fn`
   * is no function.
   * @throws {@link DmaBufStateError} `ERR_DMA_BUF_CLOSED`, `ERR_DMA_BUF_READ_ONLY`,
   * `ERR_DMA_HEAP_NO_EXTERNAL_BUFFERS` (before any SYNC).
   * @throws {@link DmaHeapError} from mmap or DMA_BUF_IOCTL_SYNC; and whatever `fn` throws.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using buf = heap.alloc(4096);
   * const sum = buf.cpuAccess('read', (bytes) => bytes.reduce((a, b) => a + b, 0));
   * ```
   */
  cpuAccess<T>(access: CpuAccess, fn: (bytes: Uint8Array) => T): T {
    validateAccess(access);
    if (typeof fn !== 'function') throw invalidArgType('fn', 'of type function', fn);
    const bytes = this.#mapping(`cpuAccess('${access}')`);
    this.beginCpuAccess(access);
    const end = () => {
      if (!this.closed) this.endCpuAccess(access);
    };
    let result: T;
    try {
      result = fn(bytes);
    } catch (err) {
      end();
      throw err;
    }
    if (result instanceof Promise) return result.finally(end) as T;
    end();
    return result;
  }

  /** whether this buffer has a kernel object that can carry fences (real dma-bufs and framework buffers) */
  get #fenced(): boolean {
    return this.#kernel.backend === 'software' || this.isDmaBuf;
  }

  /**
   * Resolves once the buffer is safe for `access`: 'read' waits for pending write fences,
   * 'write' and 'readwrite' for every fence. At once when nothing is pending. Driven by the
   * event loop (poll on the dma-buf fd): timers and I/O run meanwhile. `signal` aborts
   * (an AbortError, its reason as `cause`), `timeout` (ms) rejects with code ETIMEDOUT. Every error, a bad
   * argument as much as a closed buffer, is a rejection: the caller handles one path.
   *
   * @param access 'read', 'write' or 'readwrite' (default)
   * @param options `signal` to abort, `timeout` in ms
   * @throws Rejects (never throws) with {@link DmaBufStateError} `ERR_DMA_BUF_CLOSED`; TypeError
   * `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE`, RangeError `ERR_OUT_OF_RANGE` for bad
   * arguments or options; {@link DmaHeapError} `ETIMEDOUT` after `timeout`, or poll's errno;
   * an AbortError (`ABORT_ERR`, the signal's reason as `cause`) when aborted.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using buf = heap.alloc(4096);
   * await buf.idle('read', { timeout: 1000 }); // the device's writes are done
   * console.log(buf.read(0, 4));
   * ```
   */
  idle(access: CpuAccess = 'readwrite', options?: WaitOptions): Promise<void> {
    let fd: number;
    let wait: WaitOptions;
    try {
      fd = this.#check();
      validateAccess(access);
      wait = validateWait(options); // a plain memfd's too: a typo must not pass where no fence is
    } catch (err) {
      return Promise.reject(err);
    }
    if (!this.#fenced) return Promise.resolve(); // a plain memfd: no device ever fences it
    return waitReady(this.#kernel, fd, eventsFor(access), wait, `dma-buf ${access} idle`).catch((err) => {
      throw this.#context(err);
    });
  }

  /**
   * The CPU access bracket that never blocks the event loop: wait for the fences as idle()
   * does, issue SYNC start on the thread pool (it finds nothing left to wait for), run `fn`
   * (sync or async) with the mapping, and always issue SYNC end. A fence a device attaches
   * between the wait and SYNC start is waited for again, not blocked on. Every error is a
   * rejection (an async function); arguments, and whether there is a mapping to give (as
   * cpuAccess: a read-only buffer or a runtime refusing external memory has none), are
   * checked before anything waits.
   *
   * @param access 'read', 'write' or 'readwrite'
   * @param fn called with the mapping once the fences signalled; sync or async
   * @param options `signal` to abort the wait, `timeout` in ms
   * @returns what `fn` returns (awaited)
   * @throws Rejects with what {@link DmaBuf.cpuAccess} throws (TypeError, {@link DmaBufStateError},
   * {@link DmaHeapError}) and what {@link DmaBuf.idle} rejects with (`ETIMEDOUT`, AbortError).
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using buf = heap.alloc(4096);
   * const first = await buf.cpuAccessAsync('read', (bytes) => bytes[0], { timeout: 1000 });
   * ```
   */
  async cpuAccessAsync<T>(access: CpuAccess, fn: (bytes: Uint8Array) => T | Promise<T>, options?: WaitOptions): Promise<T> {
    validateAccess(access);
    if (typeof fn !== 'function') throw invalidArgType('fn', 'of type function', fn);
    const wait = validateWait(options);
    const what = `cpuAccessAsync('${access}')`;
    this.#mapping(what);
    const flags = SYNC_ACCESS[access];
    for (;;) {
      await this.idle(access, wait);
      const fd = this.#check();
      try {
        await this.#kernel.ioctlAsync(fd, DMA_BUF_IOCTL_SYNC, encodeU64(DMA_BUF_SYNC_START | flags));
        break;
      } catch (err) {
        const code = (err as { code?: string }).code;
        // EDEADLK: the software framework saw a fence attached after idle(): wait again
        if (code !== 'EINTR' && code !== 'EAGAIN' && code !== 'EDEADLK') throw this.#context(err);
      }
    }
    try {
      // the mapping again: a close() during the wait detached the first (ERR_DMA_BUF_CLOSED then)
      return await fn(this.#mapping(what));
    } finally {
      if (!this.closed) this.endCpuAccess(access);
    }
  }

  /**
   * DMA_BUF_IOCTL_EXPORT_SYNC_FILE: the fences an access would wait for, as a SyncFile ('read':
   * the writers; 'write' and 'readwrite': all). Nothing pending: an already signalled one.
   * Linux 6.0+; older kernels: DmaHeapError ENOTTY "not supported by this kernel".
   *
   * @param access the access whose fences to export: 'read', 'write' or 'readwrite' (default)
   * @returns a new SyncFile, the caller's to close
   * @throws {@link DmaBufStateError} `ERR_DMA_BUF_CLOSED` after close(); `ERR_DMA_BUF_NO_FENCES` for a memfd or JS buffer, which no device fences.
   * @throws TypeError `ERR_INVALID_ARG_VALUE` for another access.
   * @throws {@link DmaHeapError} `ENOTTY` before Linux 6.0; the ioctl's other errno.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using buf = heap.alloc(4096);
   * using fence = buf.exportSyncFile('write');
   * await fence.wait({ timeout: 1000 });
   * ```
   */
  exportSyncFile(access: CpuAccess = 'readwrite'): SyncFile {
    const fd = this.#check();
    validateAccess(access);
    this.#requireFences('export a sync_file');
    const arg = encodeBufSyncFile(Number(SYNC_ACCESS[access]), 0);
    try {
      this.#kernel.ioctl(fd, DMA_BUF_IOCTL_EXPORT_SYNC_FILE, arg, BUF_SYNC_FILE_FD_OFFSET);
    } catch (err) {
      throw this.#fenceError(err, 'DMA_BUF_IOCTL_EXPORT_SYNC_FILE');
    }
    return new SyncFile(INTERNAL_CONSTRUCTOR, decodeBufSyncFile(arg).fd, this.#kernel);
  }

  /**
   * DMA_BUF_IOCTL_IMPORT_SYNC_FILE: add the sync_file's fence to this buffer as a 'write'
   * fence (readers and writers wait for it) or a 'read' one (writers wait). The SyncFile stays
   * open and yours. Linux 6.0+.
   *
   * @param syncFile the fence to add (it stays open and the caller's)
   * @param access 'write' (everyone waits for it) or 'read' (writers wait)
   * @throws {@link DmaBufStateError} `ERR_DMA_BUF_CLOSED` after close(); `ERR_SYNC_FILE_CLOSED` for a closed `syncFile`;
   * `ERR_DMA_BUF_NO_FENCES` for a memfd or JS buffer.
   * @throws TypeError `ERR_INVALID_ARG_TYPE` when `syncFile` is no SyncFile; `ERR_INVALID_ARG_VALUE`
   * for another access, or a SyncFile of the other kernel (real vs software).
   * @throws {@link DmaHeapError} `ENOTTY` before Linux 6.0; the ioctl's other errno.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using buf = heap.alloc(4096);
   * using fence = buf.exportSyncFile('read');
   * using other = heap.alloc(4096);
   * other.importSyncFile(fence, 'write'); // other's users now wait for buf's readers too
   * ```
   */
  importSyncFile(syncFile: SyncFile, access: 'read' | 'write'): void {
    const fd = this.#check();
    // the brand, not instanceof: Object.create(SyncFile.prototype) or a Proxy of one passes
    // instanceof and has no sync_file behind it (kernelOf would then throw a bare TypeError)
    const state = handleState(syncFile);
    if (state?.kind !== 'sync_file') {
      throw invalidArgType('syncFile', 'an instance of SyncFile', syncFile);
    }
    if (access !== 'read' && access !== 'write') {
      throw invalidArgValue('access', access, "must be 'read' or 'write'");
    }
    this.#requireFences('import a sync_file');
    if (state.kernel !== this.#kernel) {
      throw invalidArgValue('syncFile', syncFile, 'belongs to another kernel (real vs software framework)');
    }
    const sfd = syncFile.fd;
    if (sfd < 0) throw syncFileClosed('syncFile');
    try {
      this.#kernel.ioctl(fd, DMA_BUF_IOCTL_IMPORT_SYNC_FILE, encodeBufSyncFile(Number(SYNC_ACCESS[access]), sfd));
    } catch (err) {
      throw this.#fenceError(err, 'DMA_BUF_IOCTL_IMPORT_SYNC_FILE');
    }
  }

  #requireFences(what: string): void {
    if (!this.#fenced) {
      throw new DmaBufStateError('ERR_DMA_BUF_NO_FENCES', `cannot ${what}: a ${this.tier} buffer is no dma-buf, so no device fences it`);
    }
  }

  #fenceError(err: unknown, ioctl: string): unknown {
    if ((err as { code?: string }).code === 'ENOTTY') {
      return this.#context(
        new DmaHeapError('ENOTTY', 'ioctl', { message: `${ioctl} is not supported by this kernel (sync_file import/export needs Linux 6.0 or later)` }),
      );
    }
    return this.#context(err);
  }

  /**
   * Name the buffer (DMA_BUF_SET_NAME); shows in info().name and /proc/<pid>/fdinfo.
   *
   * @param name at most 31 UTF-8 bytes, no NUL
   * @throws {@link DmaBufStateError} `ERR_DMA_BUF_CLOSED` after close().
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for a non-string, a NUL or a
   * lone surrogate; RangeError `ERR_OUT_OF_RANGE` past 31 bytes.
   * @throws {@link DmaHeapError} the ioctl's errno.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using buf = heap.alloc(4096);
   * buf.setName('frame-0');
   * console.log(buf.info().name); // 'frame-0'
   * ```
   */
  setName(name: string): void {
    const fd = this.#check();
    const bytes = encodeName(validateBufferName(name));
    try {
      this.#kernel.ioctl(fd, DMA_BUF_SET_NAME_B, bytes);
    } catch (err) {
      throw this.#context(err);
    }
  }

  /**
   * What the kernel says of the buffer (fdinfo): size, count, exporter, name, ino.
   *
   * @returns the parsed /proc/self/fdinfo entry (the framework's own, in software)
   * @throws {@link DmaBufStateError} `ERR_DMA_BUF_CLOSED` after close().
   * @throws {@link DmaHeapError} when fdinfo cannot be read (its errno).
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using buf = heap.alloc(4096);
   * const { exporter, count, ino } = buf.info();
   * ```
   */
  info(): DmaBufInfo {
    const fd = this.#check();
    try {
      return parseFdinfo(this.#kernel.fdinfo(fd));
    } catch (err) {
      throw this.#context(err);
    }
  }

  /**
   * The exporter's name (the heap, 'udmabuf', ...): `info().exporter`, so it reads fdinfo each
   * time and, as info() does, throws ERR_DMA_BUF_CLOSED once the buffer is closed.
   */
  get exporter(): string {
    return this.info().exporter;
  }

  /**
   * A second handle on the same buffer (dup): closing one leaves the other open.
   *
   * @param options `cloexec` for the new fd (default true)
   * @returns a new DmaBuf on a new fd, the caller's to close
   * @throws {@link DmaBufStateError} `ERR_DMA_BUF_CLOSED` after close().
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for bad options.
   * @throws {@link DmaHeapError} dup's errno (`EMFILE`...).
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using buf = heap.alloc(4096);
   * using second = buf.dup();
   * buf.close();
   * second.write(new Uint8Array([1])); // still open
   * ```
   */
  dup(options?: { cloexec?: boolean }): DmaBuf {
    const cloexec = validateBoolean(validateOptions(options, ['cloexec']).cloexec, 'options.cloexec', true);
    const fd = this.#kernel.dup(this.#check(), cloexec);
    return new DmaBuf(INTERNAL_CONSTRUCTOR, fd, { kernel: this.#kernel, tier: this.tier, readOnly: this.readOnly, heap: this.heap, cpuVisible: this.#cpuVisible });
  }

  /**
   * Adopt an fd from another API or process: a real dma-buf, or a memfd from a software
   * buffer. `dup` (default true) leaves the caller's fd open. Non-dma-buf fds are refused.
   *
   * @param fd an open dma-buf fd, or a software buffer's memfd
   * @param options `dup`, and the `framework` that may own the fd
   * @returns the adopted buffer (what {@link fromFd} returns)
   * @throws As {@link fromFd}: TypeError / RangeError for bad arguments, {@link DmaHeapError}
   * `EBADF` (not open) or `EINVAL` (no dma-buf).
   * @example
   * ```ts
   * import { DmaBuf } from 'dma-heap';
   * const fd = 3; // e.g. inherited from a parent process
   * using buf = DmaBuf.fromFd(fd, { dup: false });
   * console.log(buf.tier, buf.size);
   * ```
   */
  static fromFd(fd: number, options?: FromFdOptions): DmaBuf {
    return fromFd(fd, options);
  }

  /**
   * Unmap (detaching every view) and close the fd. Idempotent.
   *
   * @throws {@link DmaHeapError} close(2)'s errno, should the kernel report one; a second close() does nothing.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * const buf = heap.alloc(4096);
   * const ab = buf.map();
   * buf.close();
   * console.log(ab.byteLength); // 0: detached, never dangling
   * ```
   */
  close(): void {
    const taken = this.#take();
    if (!taken) return;
    this.#kernel.closeMapped(taken.fd, taken.view);
    this.#closedNow();
  }

  /**
   * close(), with the close itself on the libuv pool: the last close of a buffer is where the
   * kernel frees its pages, milliseconds for a large one. The buffer is closed (views
   * detached, `closed` true) before this returns; the promise settles once the kernel has
   * the fd back. Idempotent. `await using` calls it.
   *
   * @throws Rejects with {@link DmaHeapError} close(2)'s errno, should the kernel report one; a
   * second call resolves at once.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * const buf = await heap.allocAsync(64 << 20);
   * await buf.closeAsync();
   * ```
   */
  closeAsync(): Promise<void> {
    const taken = this.#take();
    if (!taken) return Promise.resolve();
    const closing = this.#kernel.closeMappedAsync(taken.fd, taken.view);
    this.#closedNow();
    return closing;
  }

  /** tell the owner, once: its own bookkeeping may not wait for the handle's next use */
  #closedNow(): void {
    const hook = this.#onClose;
    this.#onClose = undefined;
    hook?.(this);
  }

  /** @internal `hook` runs once this handle is closed (a pool takes back the slot at once) */
  static onClose(buf: DmaBuf, hook: (buf: DmaBuf) => void): void {
    buf.#onClose = hook;
  }

  #take(): { fd: number; view: Uint8Array | undefined } | undefined {
    if (this.#fd < 0) return undefined;
    const fd = this.#fd;
    this.#fd = -1;
    unwatchForgotten(this);
    const view = this.#view;
    this.#view = undefined;
    return { fd, view };
  }

  /**
   * close(), for `using`.
   *
   * @throws {@link DmaHeapError} as close().
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using b = heap.alloc(4096); // closed at the end of the block
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * closeAsync(), for `await using`.
   *
   * @throws {@link DmaHeapError} as closeAsync() (a rejection).
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * await using b = await heap.allocAsync(64 << 20); // the last close on the pool
   * ```
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.closeAsync();
  }
}

/** Options of {@link fromFd} and {@link DmaBuf.fromFd}. */
export interface FromFdOptions {
  /** dup the fd (default: the caller keeps theirs) or adopt it (false: the caller's fd is
   *  closed once the DmaBuf holds the file through its own; use buf.fd). Either way, if
   *  fromFd throws, the caller's fd is untouched and still the caller's. */
  dup?: boolean;
  /** the software framework that may own the fd (default: the process's) */
  framework?: Framework;
}

/**
 * A DmaBuf for an fd that came from elsewhere: another API, a parent process, a socket.
 * The chooser says which kernel it belongs to; that kernel adopts it (Kernel.adopt) and
 * its fdinfo, read once, gives the exporter and the access mode.
 *
 * @param fd an open dma-buf fd (any driver's: a heap, udmabuf, DRM, V4L2...), or a software
 * buffer's memfd
 * @param options `dup` (default true: the caller's fd stays open and theirs) and `framework`
 * @returns the adopted buffer; its `tier` says what it is ('imported' for another driver's)
 * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for a non-number fd or bad
 * options; RangeError `ERR_OUT_OF_RANGE` for an fd that is not an integer in [0, 2^31-1].
 * @throws {@link DmaHeapError} `EBADF` for an fd that is not open; `EINVAL` for one that is no
 * dma-buf (a file, a pipe...). The caller's fd is untouched whenever it throws.
 * @example
 * ```ts
 * import { fromFd } from 'dma-heap';
 * const fd = 3; // e.g. from a V4L2 VIDIOC_EXPBUF or a parent process
 * using buf = fromFd(fd);
 * console.log(buf.tier, buf.info().exporter);
 * ```
 */
export function fromFd(fd: number, options?: FromFdOptions): DmaBuf {
  if (typeof fd !== 'number') throw invalidArgType('fd', 'of type number', fd);
  if (!Number.isInteger(fd) || fd < 0 || fd > 0x7fffffff) throw outOfRange('fd', 'an integer >= 0 && <= 2147483647', fd);
  options = validateOptions(options, ['dup', 'framework']);
  const dup = validateBoolean(options.dup, 'options.dup', true);
  return adoptDmaBuf(fd, dup, frameworkKernel(options.framework));
}

/**
 * fromFd's work, its arguments checked: the kernel the fd belongs to adopts it. `memfds`
 * 'sharedMemory' takes another program's memfd of any size, read-only when sealed against
 * writing (GStreamer's shared memory: the unixfd source's memory type 0); fromFd takes
 * software buffers' memfds only.
 */
export function adoptDmaBuf(fd: number, dup: boolean, software?: SimulatedKernel, memfds?: MemfdPolicy): DmaBuf {
  const {
    kernel,
    adopted: { fd: own, info },
  } = adoptFd(fd, dup, software, memfds);
  let tier: Tier;
  if (kernel.backend !== 'kernel') tier = kernel.backing === 'memfd' ? 'memfd' : 'js';
  else if (info.exporter === 'udmabuf') tier = 'udmabuf';
  // a heap's buffers carry its name as exporter; anything else (drm, videobuf2_vmalloc, ...)
  // was exported by another driver
  else tier = kernel.hasHeap(info.exporter) ? 'dma-heap' : 'imported';
  return new DmaBuf(INTERNAL_CONSTRUCTOR, own, {
    kernel,
    tier,
    readOnly: !Number.isNaN(info.flags) && (info.flags & O_ACCMODE) === O_RDONLY,
    heap: tier === 'udmabuf' || tier === 'imported' ? undefined : info.exporter,
    cpuVisible: !isProtectedExporter(info.exporter),
  });
}
