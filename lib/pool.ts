import { types } from 'node:util';
import { DmaBuf } from './dmabuf';
import { DmaBufStateError } from './errors';
import type { AllocOptions, Heap } from './heap';
import { invalidArgType, outOfRange, validateAbortSignal, validateBoolean, validateInteger } from './args';
import { nativeKernel } from './chooser';
import { checkConstructorToken, INTERNAL_CONSTRUCTOR } from './internal-token';
import { hostPageSize } from './framework/page-size';
import { pageAlign } from './uapi';
import { validateBufferName, validateOptions, validateSize } from './validate';
import { abortError } from './abort';
import { shown } from './escape';

/**
 * A ring of equal buffers a pipeline cycles instead of allocating per frame (what GStreamer
 * buffer pools, V4L2 REQBUFS and Android's BufferQueue do). Every buffer is allocated and
 * mapped once and keeps its fd and mapping until the pool lets it go, so a process that
 * adopted a buffer's fd keeps seeing the same pages frame after frame.
 */
export interface BufferPoolOptions {
  /** bytes per buffer (rounded up to pages, as the heap does) */
  size: number | bigint;
  /** buffers allocated (and mapped) up front; ≥ 0 */
  count: number;
  /** the most buffers the pool may hold, idle and in use together: the bound on outstanding
   *  buffers. Beyond `count`, acquire() allocates on demand. Default `count` (fixed ring). */
  max?: number;
  /** a dma-buf name (≤ 31 bytes) for every buffer, shown in fdinfo */
  name?: string;
  /** zero a buffer's bytes when it comes back (default false: the next user sees the last
   *  frame's bytes, as with V4L2 and GStreamer). Costs a memset of `size` per release. */
  zeroOnRelease?: boolean;
}

/** BufferPoolOptions' keys; a factory that takes more (createPool's cloexec) checks its own list */
export const POOL_OPTIONS = ['size', 'count', 'max', 'name', 'zeroOnRelease'] as const;
const CREATE_POOL_OPTIONS = [...POOL_OPTIONS, 'cloexec'] as const;
const ACQUIRE_OPTIONS = ['signal'] as const;

/** Options of {@link BufferPool.acquireAsync}. */
export interface AcquireOptions {
  /** give up waiting: the promise rejects with an AbortError (code 'ABORT_ERR') */
  signal?: AbortSignal;
}

/** What a pool holds now. `bytes` counts every buffer the pool owns (idle and in use). */
export interface BufferPoolStats {
  /** bytes per buffer (what one really is: page-rounded, or more where the heap rounds further) */
  size: number;
  /** buffers handed out (and being made for acquireAsync()) */
  inUse: number;
  /** buffers ready for the next acquire() */
  idle: number;
  /** inUse + idle */
  total: number;
  /** the most buffers the pool may hold */
  max: number;
  /** acquireAsync() calls waiting for a buffer */
  waiting: number;
  /** total × size */
  bytes: number;
  /** whether close() ran */
  closed: boolean;
}

/** Where a pool's buffers come from: heap.alloc, allocShareable, or your own. */
export interface BufferSource {
  /** the page size its buffers are rounded up to (default: this host's) */
  readonly pageSize?: number;
  /**
   * Make one buffer for the pool (which maps it and owns it from then on).
   *
   * @param size bytes, already page-rounded by the pool
   * @param options the pool's buffer name, if it has one
   * @returns a new buffer of at least `size` bytes
   */
  alloc(size: number | bigint, options: { name?: string }): DmaBuf;
  /**
   * alloc() off the event loop, for acquireAsync() growing the pool; without it, alloc() serves.
   *
   * @param size bytes, already page-rounded by the pool
   * @param options the pool's buffer name, if it has one
   * @returns a promise of a new buffer of at least `size` bytes
   */
  allocAsync?(size: number | bigint, options: { name?: string }): Promise<DmaBuf>;
}

/** a buffer's mapping, or null for protected memory: known, or learned by this first mapping */
function mappingOf(buf: DmaBuf): Uint8Array | null {
  if (!buf.cpuVisible) return null;
  try {
    return buf.bytes();
  } catch (err) {
    if (!buf.cpuVisible) return null; // the exporter has no mmap: pooled unmapped from now on
    throw err;
  }
}

/**
 * One acquisition of a pooled buffer. Release it (or let `using` do it) to hand the buffer
 * back; after that this handle refuses every use, so a stale handle can never touch the frame
 * the next user is writing. Every way the buffer goes back ends the handle: its release(),
 * pool.release() of it or of its DmaBuf, and its buffer closed by the user (do not: the pool
 * owns it; if you do, the handle ends and the pool drops the buffer and counts it gone).
 */
export class PooledBuffer {
  readonly #pool: BufferPool;
  readonly #buf: DmaBuf;
  /** null for protected memory, which the pool never maps */
  readonly #bytes: Uint8Array | null;
  /** this acquisition, shared with the pool, which marks it ended */
  readonly #turn: Turn;

  /**
   * Not for users: BufferPool.acquire() and its kin hand one out (the token is the package's own).
   *
   * @hidden
   */
  constructor(token: typeof INTERNAL_CONSTRUCTOR, pool: BufferPool, buf: DmaBuf, bytes: Uint8Array | null, turn: Turn) {
    checkConstructorToken(token, 'BufferPool.acquire(), acquireAsync() or tryAcquire()');
    this.#pool = pool;
    this.#buf = buf;
    this.#bytes = bytes;
    this.#turn = turn;
  }

  // every way the buffer goes back ends this turn, a close by its user too (the pool hears of
  // it at once: DmaBuf.onClose)
  #live(): DmaBuf {
    if (this.#turn.ended) throw released();
    return this.#buf;
  }

  /** the DmaBuf (fd, size, cpuAccess, info, share it...) */
  get buffer(): DmaBuf {
    return this.#live();
  }

  /**
   * The buffer's mapping, made once when the pool allocated it: a method, as DmaBuf.bytes() is
   * (one name, one shape), though here nothing is mapped per call.
   *
   * @returns a view of the whole buffer; it aliases the pool's memory (keep it past release
   *   and it sees the next user's frame)
   * @throws {@link DmaBufStateError} `ERR_DMA_HEAP_POOL_RELEASED` once this lease went back
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   *
   * using pool = openHeap('system').createPool({ size: 4096, count: 2 });
   * using lease = pool.acquire();
   * lease.bytes().fill(0x80);
   * ```
   */
  bytes(): Uint8Array {
    const buf = this.#live();
    return this.#bytes ?? buf.bytes(); // protected memory: the buffer's own ERR_DMA_BUF_NOT_CPU_VISIBLE
  }

  /** the buffer's fd (throws ERR_DMA_HEAP_POOL_RELEASED once released, as every accessor here) */
  get fd(): number {
    return this.#live().fd;
  }

  /** the buffer's size in bytes */
  get size(): number {
    return this.#live().size;
  }

  /** whether this handle's turn is over (released, returned by the garbage collector, or its
   *  buffer closed) */
  get released(): boolean {
    return this.#turn.ended;
  }

  /**
   * Hand the buffer back. A second release throws ERR_DMA_HEAP_POOL_RELEASED.
   *
   * @throws {@link DmaBufStateError} `ERR_DMA_HEAP_POOL_RELEASED` when this turn already ended.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using pool = heap.createPool({ count: 2, size: 1 << 20 });
   * const frame = pool.acquire();
   * frame.bytes().fill(0);
   * frame.release(); // frame.bytes() now throws
   * ```
   */
  release(): void {
    if (this.#turn.ended) throw released();
    this.#pool._giveBack(this.#buf);
  }

  /**
   * `using` releases; after the turn ended some other way it does nothing.
   *
   * @throws Nothing: a handle already released is left alone.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using pool = heap.createPool({ count: 2, size: 1 << 20 });
   * {
   *   using frame = pool.acquire();
   *   frame.bytes()[0] = 1;
   * } // released here
   * ```
   */
  [Symbol.dispose](): void {
    if (!this.#turn.ended) this.#pool._giveBack(this.#buf);
  }

  /** @internal Its pool while its turn lasts. */
  static poolOf(lease: PooledBuffer): BufferPool | null {
    return lease.#turn.ended ? null : lease.#pool;
  }
}

function released(): DmaBufStateError {
  return new DmaBufStateError('ERR_DMA_HEAP_POOL_RELEASED', 'this pooled buffer was already released to its pool');
}

function closedError(): DmaBufStateError {
  return new DmaBufStateError('ERR_DMA_HEAP_POOL_CLOSED', 'the buffer pool is closed');
}


function count(value: unknown, what: string, min: number): number {
  return validateInteger(value, `options.${what}`, min, Number.MAX_SAFE_INTEGER);
}

interface Waiter {
  resolve(lease: PooledBuffer): void;
  reject(err: unknown): void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/**
 * One acquisition. The pool keeps it (by buffer) and its handle points at it: ending it ends the
 * handle without the pool holding the handle, so a dropped handle is still collected. (A
 * WeakRef to the handle did the same, but each new WeakRef keeps its target alive to the end of
 * the job: a loop of acquires that never yields kept every handle; a frame cost 2x.)
 */
// exported only because PooledBuffer's constructor names it in the .d.ts; the index does not
export interface Turn {
  ended: boolean;
}

/**
 * Returns the buffer of a lease the program dropped without releasing it. Registered with its
 * turn as the token: every other way a buffer goes back unregisters it by that token, so a late
 * finalizer never returns a buffer that already went back (and perhaps out again, to the next
 * user).
 */
const dropped = new FinalizationRegistry<{ pool: WeakRef<BufferPool>; buf: DmaBuf; turn: Turn }>(({ pool, buf, turn }) => {
  const p = pool.deref();
  if (p) p._reclaim(buf, turn);
  else buf.close();
});

/**
 * A fixed ring of buffers (see BufferPoolOptions). acquire() takes an idle buffer (or makes
 * one while fewer than `max` exist) and throws ERR_DMA_HEAP_POOL_EXHAUSTED otherwise;
 * acquireAsync() waits, first come first served; tryAcquire() returns null. close() frees the
 * idle buffers at once and each in-use one when it is released.
 */
export class BufferPool {
  /** bytes per buffer: what one really is, never less */
  #size: number;
  /** the most buffers the pool may hold, idle and in use together */
  readonly max: number;
  /** whether a buffer's bytes are zeroed when it comes back */
  readonly zeroOnRelease: boolean;
  readonly #source: BufferSource;
  readonly #name?: string;
  /** idle buffers, most recently released last (LIFO: its pages are the warmest) */
  readonly #idle: DmaBuf[] = [];
  /** the mapping of every buffer the pool holds (null: protected memory, never mapped) */
  readonly #maps = new Map<DmaBuf, Uint8Array | null>();
  /** buffers in use → the turn of the lease that holds each; every way back ends it */
  readonly #inUse = new Map<DmaBuf, Turn>();
  readonly #waiters: Waiter[] = [];
  readonly #self = new WeakRef(this);
  /** acquireAsync() allocations under way */
  #making = 0;
  #refilling = false;
  #closed = false;

  /**
   * A pool over a source of your own; heap.createPool() and createShareablePool() make one over
   * a heap or allocShareable. Allocates and maps `count` buffers now.
   *
   * @param source where buffers come from: `alloc` (and `allocAsync`, `pageSize`)
   * @param options `size`, `count`, `max`, `name`, `zeroOnRelease`
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for bad options (an unknown
   * key too) or a bad name; RangeError `ERR_OUT_OF_RANGE` for a bad size, count, max (below count)
   * or source.pageSize.
   * @throws {@link DmaHeapError} `ENOMEM` for a size over the machine's RAM; whatever `source.alloc`
   * or mapping a buffer throws (the buffers made so far are closed first).
   * @example
   * ```ts
   * import { BufferPool, openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using pool = new BufferPool({ pageSize: heap.pageSize, alloc: (size, o) => heap.alloc(size, o) }, { size: 4096, count: 2 });
   * ```
   */
  constructor(source: BufferSource, options: BufferPoolOptions) {
    options = validateOptions(options, POOL_OPTIONS);
    this.#source = source;
    const initial = count(options.count, 'count', 0);
    // null is no default: only a missing option is
    this.max = count(options.max === undefined ? Math.max(initial, 1) : options.max, 'max', Math.max(initial, 1));
    if (options.name !== undefined) this.#name = validateBufferName(options.name, 'options.name');
    this.zeroOnRelease = validateBoolean(options.zeroOnRelease, 'options.zeroOnRelease', false);
    // every option's type before the size's one semantic rule (no more than RAM: ENOMEM)
    const len = validateSize(options.size);
    // what the heap will make, known before any buffer is (count may be 0): the stats count it
    const page = source.pageSize === undefined ? (nativeKernel()?.pageSize ?? hostPageSize(null)) : validateInteger(source.pageSize, 'source.pageSize', 1, 2 ** 30);
    const rounded = pageAlign(len, page);
    if (rounded > BigInt(Number.MAX_SAFE_INTEGER)) throw outOfRange('options.size', `<= ${Number.MAX_SAFE_INTEGER} (a size this process can map)`, options.size);
    this.#size = Number(rounded);
    try {
      for (let i = 0; i < initial; i++) this.#idle.push(this.#adopt(this.#source.alloc(this.#size, this.#allocOptions())));
    } catch (err) {
      // taken off the list first: each close tells #closedByUser, which edits the list
      for (const buf of this.#idle.splice(0)) buf.close();
      this.#maps.clear();
      throw err;
    }
  }

  /** bytes per buffer: page-rounded, or what the heap really made if it rounds further */
  get size(): number {
    return this.#size;
  }

  #allocOptions(): { name?: string } {
    return this.#name === undefined ? {} : { name: this.#name };
  }

  /** map once for life; a buffer that can't be mapped is not pooled. Protected memory (not
   *  CPU-visible) is pooled unmapped, unless the pool must zero it (the CPU cannot). */
  #adopt(buf: DmaBuf): DmaBuf {
    try {
      const bytes = mappingOf(buf);
      if (bytes === null && this.zeroOnRelease) {
        throw new DmaBufStateError('ERR_DMA_BUF_NOT_CPU_VISIBLE', `zeroOnRelease: the pool's buffers${buf.heap === undefined ? '' : ` (heap '${shown(buf.heap)}')`} are protected memory the CPU cannot map, so it cannot zero them: leave zeroOnRelease off (the device that fills them owns their contents)`);
      }
      this.#maps.set(buf, bytes);
    } catch (err) {
      buf.close();
      throw err;
    }
    // a heap that rounds further than pages (some vendors' do): report what a buffer really is
    if (buf.size > this.#size) this.#size = buf.size;
    DmaBuf.onClose(buf, this.#closedByUser);
    return buf;
  }

  /**
   * A buffer of ours was closed by its user (the pool's own closes happen after the buffer left
   * its books): in use, it goes back at once (its handle ends, a waiter may grow the pool in its
   * place); idle, it leaves the idle list. Stats never count it, and no waiter waits on it.
   */
  readonly #closedByUser = (buf: DmaBuf): void => {
    const turn = this.#inUse.get(buf);
    if (turn) return this.#return(buf, turn);
    if (this.#closed) return; // close() is emptying the idle list itself
    const i = this.#idle.indexOf(buf);
    if (i >= 0) {
      this.#idle.splice(i, 1);
      this.#maps.delete(buf);
    }
  };

  /** whether close() ran */
  get closed(): boolean {
    return this.#closed;
  }

  /** buffers handed out, and ones being made for acquireAsync() */
  get inUse(): number {
    return this.#inUse.size + this.#making;
  }

  /** buffers ready for the next acquire() */
  get idle(): number {
    return this.#idle.length;
  }

  /** buffers the pool holds, idle and in use */
  get total(): number {
    return this.#idle.length + this.#inUse.size + this.#making;
  }

  /**
   * What the pool holds now, in one object.
   *
   * @returns a snapshot: size, inUse, idle, total, max, waiting, bytes, closed
   * @throws Nothing: it reads counters, after close() too.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using pool = heap.createPool({ count: 2, size: 1 << 20 });
   * console.log(pool.stats()); // { size: 1048576, inUse: 0, idle: 2, total: 2, ... }
   * ```
   */
  stats(): BufferPoolStats {
    const total = this.total;
    return {
      size: this.size,
      inUse: this.inUse,
      idle: this.idle,
      total,
      max: this.max,
      waiting: this.#waiters.length,
      bytes: total * this.size,
      closed: this.#closed,
    };
  }

  #lease(buf: DmaBuf): PooledBuffer {
    const turn: Turn = { ended: false };
    const lease = new PooledBuffer(INTERNAL_CONSTRUCTOR, this, buf, this.#maps.get(buf)!, turn);
    this.#inUse.set(buf, turn);
    dropped.register(lease, { pool: this.#self, buf, turn }, turn);
    return lease;
  }

  /** an idle buffer the user did not close behind our back, or undefined */
  #takeIdle(): DmaBuf | undefined {
    for (;;) {
      const buf = this.#idle.pop();
      if (!buf || !buf.closed) return buf;
      this.#maps.delete(buf); // closed by its user while idle: gone, its fd with it
    }
  }

  /**
   * An idle buffer, or a new one while fewer than `max` exist, or null.
   *
   * @returns the lease, or null when all `max` buffers are in use
   * @throws {@link DmaBufStateError} `ERR_DMA_HEAP_POOL_CLOSED` after close().
   * @throws {@link DmaHeapError} (or what the source throws) when a new buffer cannot be made or mapped.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using pool = heap.createPool({ count: 2, size: 1 << 20 });
   * const frame = pool.tryAcquire();
   * if (frame) frame.release(); // else: drop this frame
   * ```
   */
  tryAcquire(): PooledBuffer | null {
    if (this.#closed) throw closedError();
    const buf = this.#takeIdle();
    if (buf) return this.#lease(buf);
    if (this.total >= this.max) return null;
    return this.#lease(this.#adopt(this.#source.alloc(this.#size, this.#allocOptions())));
  }

  /**
   * An idle buffer, or a new one while fewer than `max` exist; else ERR_DMA_HEAP_POOL_EXHAUSTED.
   *
   * @returns the lease: its `bytes` are the buffer's mapping; release it (or `using`) when done
   * @throws {@link DmaBufStateError} `ERR_DMA_HEAP_POOL_EXHAUSTED` when all `max` are in use;
   * `ERR_DMA_HEAP_POOL_CLOSED` after close().
   * @throws {@link DmaHeapError} (or what the source throws) when a new buffer cannot be made or mapped.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using pool = heap.createPool({ count: 2, size: 1 << 20 });
   * using frame = pool.acquire();
   * frame.bytes().fill(0x80);
   * ```
   */
  acquire(): PooledBuffer {
    const lease = this.tryAcquire();
    if (lease) return lease;
    throw new DmaBufStateError(
      'ERR_DMA_HEAP_POOL_EXHAUSTED',
      `all ${this.max} buffers of the pool are in use: release one, or use acquireAsync() to wait`,
    );
  }

  /**
   * Like acquire(), but waits (first come, first served) while all `max` buffers are in use.
   *
   * @param options `signal` to stop waiting
   * @returns the lease, once a buffer is free (or made, with the source's allocAsync)
   * @throws Rejects with AbortError (`ABORT_ERR`, the signal's reason as `cause`) when aborted;
   * {@link DmaBufStateError} `ERR_DMA_HEAP_POOL_CLOSED` when closed before or while waiting;
   * TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for bad options;
   * {@link DmaHeapError} (or the source's error) when growing the pool fails.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using pool = heap.createPool({ count: 2, size: 1 << 20 });
   * using frame = await pool.acquireAsync({ signal: AbortSignal.timeout(100) });
   * ```
   */
  async acquireAsync(options?: AcquireOptions): Promise<PooledBuffer> {
    const signal = validateAbortSignal(validateOptions(options, ACQUIRE_OPTIONS).signal, 'options.signal');
    if (signal?.aborted) throw abortError(signal, 'acquireAsync');
    if (this.#closed) throw closedError();
    if (!this.#waiters.length) {
      const buf = this.#takeIdle();
      if (buf) return this.#lease(buf);
      if (this.total < this.max) return this.#deliver(this.#grow(), signal);
    }
    return new Promise<PooledBuffer>((resolve, reject) => {
      const waiter: Waiter = { resolve, reject, signal };
      if (signal) {
        waiter.onAbort = () => {
          const i = this.#waiters.indexOf(waiter);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(abortError(signal, 'acquireAsync'));
        };
        signal.addEventListener('abort', waiter.onAbort, { once: true });
      }
      this.#waiters.push(waiter);
    });
  }

  /**
   * A growth's lease for a caller that may abort meanwhile: the abort rejects at once, and the
   * buffer, once made, goes back to the pool (a waiter behind may take it) instead of to nobody.
   */
  #deliver(growing: Promise<PooledBuffer>, signal: AbortSignal | undefined): Promise<PooledBuffer> {
    if (!signal) return growing;
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(abortError(signal, 'acquireAsync'));
      signal.addEventListener('abort', onAbort, { once: true });
      growing.then(
        (lease) => {
          signal.removeEventListener('abort', onAbort);
          if (signal.aborted) lease.release();
          else resolve(lease);
        },
        (err) => {
          signal.removeEventListener('abort', onAbort);
          reject(err); // a no-op once aborted
        },
      );
    });
  }

  /** One more buffer, with allocAsync when the source has it. */
  async #grow(): Promise<PooledBuffer> {
    const alloc = this.#source.allocAsync;
    // count it while it is made, so `max` holds across concurrent calls
    this.#making++;
    let buf: DmaBuf;
    try {
      const made = alloc ? await alloc.call(this.#source, this.#size, this.#allocOptions()) : this.#source.alloc(this.#size, this.#allocOptions());
      if (this.#closed) {
        made.close();
        throw closedError();
      }
      buf = this.#adopt(made);
    } catch (err) {
      this.#making--;
      // the slot this growth held is free again: callers that queued behind it grow in turn
      this.#refill();
      throw err;
    }
    this.#making--;
    return this.#lease(buf);
  }

  /**
   * Hand a buffer back: a PooledBuffer from this pool, or the DmaBuf one holds. A second
   * release of the same acquisition throws ERR_DMA_HEAP_POOL_RELEASED; anything this pool did
   * not hand out throws ERR_DMA_HEAP_POOL_FOREIGN and is left untouched. After close() the
   * buffer is freed instead of kept.
   *
   * @param item the lease, or the DmaBuf it holds
   * @throws {@link DmaBufStateError} `ERR_DMA_HEAP_POOL_RELEASED` for a turn already ended;
   * `ERR_DMA_HEAP_POOL_FOREIGN` for a buffer this pool did not hand out.
   * @throws TypeError `ERR_INVALID_ARG_TYPE` when `item` is neither a PooledBuffer nor a DmaBuf.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * using pool = heap.createPool({ count: 2, size: 1 << 20 });
   * const frame = pool.acquire();
   * const buf = frame.buffer; // e.g. handed to a consumer
   * pool.release(buf);       // frame is released too
   * ```
   */
  release(item: PooledBuffer | DmaBuf): void {
    // a Proxy is refused before instanceof could run its traps
    if (types.isProxy(item)) throw invalidArgType('item', 'an instance of PooledBuffer or DmaBuf', item);
    if (item instanceof PooledBuffer) {
      const owner = PooledBuffer.poolOf(item);
      if (owner === null) throw released();
      if (owner !== this) throw foreign('a buffer from another pool');
      item.release();
      return;
    }
    if (!(item instanceof DmaBuf)) throw invalidArgType('item', 'an instance of PooledBuffer or DmaBuf', item);
    const turn = this.#inUse.get(item);
    if (turn === undefined) throw this.#maps.has(item) ? released() : foreign('a buffer this pool did not hand out');
    this.#return(item, turn);
  }

  /** `buf` goes back: the lease holding it (if not collected) ends, whichever way it came */
  #return(buf: DmaBuf, turn: Turn): void {
    this.#inUse.delete(buf);
    dropped.unregister(turn);
    turn.ended = true;
    if (this.#closed || buf.closed) {
      this.#maps.delete(buf);
      buf.close();
      this.#refill();
      return;
    }
    if (this.zeroOnRelease) this.#maps.get(buf)!.fill(0); // never null: #adopt refused that
    const waiter = this.#waiters.shift();
    if (waiter) {
      this.#settle(waiter);
      waiter.resolve(this.#lease(buf));
    } else {
      this.#idle.push(buf);
    }
  }

  /**
   * A buffer left the pool, or a growth failed: waiters may now grow it, each with its own
   * allocation (a failure rejects that waiter and lets the next try), so none waits while
   * the pool is below max with nothing under way.
   */
  #refill(): void {
    // A source without allocAsync fails inside #grow's synchronous part, whose catch refills
    // again: that nested call only asks this loop to go on (recursion per waiter overflowed
    // the stack at ~10^4 waiters).
    if (this.#refilling) return;
    this.#refilling = true;
    try {
      this.#refillLoop();
    } finally {
      this.#refilling = false;
    }
  }

  #refillLoop(): void {
    while (!this.#closed && this.#waiters.length && this.total < this.max) {
      const waiter = this.#waiters.shift()!;
      this.#settle(waiter);
      this.#deliver(this.#grow(), waiter.signal).then(waiter.resolve, waiter.reject);
    }
  }

  #settle(waiter: Waiter): void {
    if (waiter.signal && waiter.onAbort) waiter.signal.removeEventListener('abort', waiter.onAbort);
  }

  /** @internal A live handle's own release (it holds `buf` now: no argument to check). */
  _giveBack(buf: DmaBuf): void {
    this.#return(buf, this.#inUse.get(buf)!);
  }

  /** @internal A lease the program dropped was collected. */
  _reclaim(buf: DmaBuf, turn: Turn): void {
    if (this.#inUse.get(buf) === turn) this.#return(buf, turn);
  }

  /**
   * Free the idle buffers now and each in-use buffer when it is released; waiting
   * acquireAsync() calls reject with ERR_DMA_HEAP_POOL_CLOSED. Idempotent.
   *
   * @throws Nothing: a second close() does nothing.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * const pool = heap.createPool({ count: 2, size: 1 << 20 });
   * const frame = pool.acquire();
   * pool.close();     // the idle buffer is freed now
   * frame.release();  // and this one now
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const buf of this.#idle) {
      this.#maps.delete(buf);
      buf.close();
    }
    this.#idle.length = 0;
    for (const waiter of this.#waiters.splice(0)) {
      this.#settle(waiter);
      waiter.reject(closedError());
    }
  }

  /**
   * close(), for `using`.
   *
   * @throws Nothing, as close().
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using heap = openHeap('system');
   * {
   *   using pool = heap.createPool({ count: 2, size: 4096 });
   * } // pool.close() ran here
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }
}

function foreign(what: string): DmaBufStateError {
  return new DmaBufStateError('ERR_DMA_HEAP_POOL_FOREIGN', `release() got ${what}: left untouched`);
}

/** A pool of `heap`'s buffers (heap.alloc; heap.allocAsync when acquireAsync must grow it). */
export function createPool(heap: Heap, options: BufferPoolOptions & Pick<AllocOptions, 'cloexec'>): BufferPool {
  const { cloexec, ...pool } = validateOptions(options, CREATE_POOL_OPTIONS);
  const extra = cloexec === undefined ? {} : { cloexec: validateBoolean(cloexec, 'options.cloexec', true) };
  return new BufferPool(
    {
      pageSize: heap.pageSize,
      alloc: (size, opts) => heap.alloc(size, { ...opts, ...extra }),
      allocAsync: (size, opts) => heap.allocAsync(size, { ...opts, ...extra }),
    },
    pool,
  );
}
