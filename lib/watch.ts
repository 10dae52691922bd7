/**
 * Heaps that appear while a program runs. Since 7.x the system and CMA heaps may be modules
 * (drivers/dma-buf/heaps/Kconfig: tristate), and a TEE's protected heaps come when its driver
 * probes: a heap can show up under /dev/dma_heap after start-up. Mainline has no
 * dma_heap_remove, so heaps only ever come: the watcher reports additions.
 */
import { EventEmitter } from 'node:events';
import { kernelsFor, type KernelOptions } from './chooser';
import type { ListedHeap } from './heap';
import type { Kernel } from './kernel';
import { checkConstructorToken, INTERNAL_CONSTRUCTOR } from './internal-token';
import { validateOptions } from './validate';

const WATCH_OPTIONS = ['backend', 'framework'] as const;

/** Events of a {@link HeapWatcher}. */
export interface HeapWatcherEvents {
  /** a heap appeared (as listHeaps() would list it) */
  added: [heap: ListedHeap];
  /** the watch broke (neither /dev/dma_heap nor its parent could be watched): it reports nothing more; only emitted when someone listens */
  error: [err: Error];
  /** close() was called */
  close: [];
}

// Typed events without a generic EventEmitter in the user's @types/node.
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export interface HeapWatcher {
  /**
   * Listen for `event` (the events and their arguments: {@link HeapWatcherEvents}).
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  on<K extends keyof HeapWatcherEvents>(event: K, listener: (...args: HeapWatcherEvents[K]) => void): this;
  /**
   * Listen for the next `event` only.
   *
   * @param event the event's name
   * @param listener called with the event's arguments
   */
  once<K extends keyof HeapWatcherEvents>(event: K, listener: (...args: HeapWatcherEvents[K]) => void): this;
  /**
   * Stop a listener.
   *
   * @param event the event's name
   * @param listener the listener to remove
   */
  off<K extends keyof HeapWatcherEvents>(event: K, listener: (...args: HeapWatcherEvents[K]) => void): this;
}

/**
 * Reports heaps added after it started ({@link watchHeaps}). A watcher of the real kernel keeps
 * the event loop alive until close(), as fs.watch does; a software framework's holds nothing.
 */
// eslint-disable-next-line @typescript-eslint/no-unsafe-declaration-merging
export class HeapWatcher extends EventEmitter {
  readonly #stops: Array<() => void> = [];
  #closed = false;

  /**
   * Not for users: watchHeaps() makes one (the token is the package's own).
   *
   * @hidden
   */
  constructor(token: typeof INTERNAL_CONSTRUCTOR, kernels: Kernel[]) {
    checkConstructorToken(token, 'watchHeaps()');
    super();
    try {
      for (const kernel of kernels) this.#watch(kernel);
    } catch (err) {
      this.#stopAll();
      throw err;
    }
  }

  /** the watch starts before the first listing: a heap added in between is seen by the listing
   *  or reported by the watch, never missed */
  #watch(kernel: Kernel): void {
    let known: Set<string> | undefined;
    let pending = false;
    const rescan = () => {
      pending = false;
      if (this.#closed || !known) return;
      let heaps;
      try {
        heaps = kernel.heaps();
      } catch (err) {
        this.#fail(err as Error);
        return;
      }
      for (const heap of heaps) {
        if (known.has(heap.name)) continue;
        known.add(heap.name);
        this.emit('added', { ...heap, backend: kernel.backend });
      }
    };
    // inotify reports a burst of events per node (create, attrib): one listing per turn
    const changed = () => {
      if (pending || this.#closed) return;
      pending = true;
      setImmediate(rescan);
    };
    this.#stops.push(kernel.watchHeaps(changed, (err) => this.#fail(err)));
    known = new Set(kernel.heaps().map((h) => h.name));
  }

  #fail(err: Error): void {
    if (this.#closed) return;
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  #stopAll(): void {
    for (const stop of this.#stops.splice(0)) stop();
  }

  /** whether close() ran */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Stop watching; emits 'close' once. Idempotent.
   *
   * @throws Nothing.
   * @example
   * ```ts
   * import { watchHeaps } from 'dma-heap';
   * const watcher = watchHeaps();
   * watcher.close();
   * ```
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopAll();
    this.emit('close');
  }

  /**
   * close(), for `using`.
   *
   * @throws Nothing, as close().
   * @example
   * ```ts
   * import { watchHeaps } from 'dma-heap';
   * {
   *   using watcher = watchHeaps();
   *   watcher.on('added', (heap) => console.log(heap.name));
   * } // closed here
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Watch for heaps that appear: a heap module loaded (the system and CMA heaps are modules on
 * 7.x kernels), a TEE driver that probed late, or a heap a software framework added. Each new
 * heap is reported once, with what {@link listHeaps} says of it. Heaps never go away (the kernel
 * has no dma_heap_remove). Never blocks: the real kernel's directory is watched with inotify
 * (fs.watch), its parent until the first heap creates it.
 *
 * @param options `backend` ('kernel' watches only the real /dev/dma_heap, 'software' only the
 * framework) or a `framework` of your own
 * @returns the watcher: listen for 'added', close() (or `using`) when done
 * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for bad options or DMA_HEAP_BACKEND.
 * @throws {@link DmaHeapError} fs.watch's errno with the path (`ENOSPC`: out of inotify watches).
 * @example
 * ```ts
 * import { openHeap, watchHeaps } from 'dma-heap';
 * using watcher = watchHeaps({ backend: 'kernel' });
 * watcher.on('added', (heap) => {
 *   if (heap.kind === 'contiguous') openHeap(heap.name).close(); // e.g. cma_heap.ko just loaded
 * });
 * ```
 */
export function watchHeaps(options?: KernelOptions): HeapWatcher {
  options = validateOptions(options, WATCH_OPTIONS);
  return new HeapWatcher(INTERNAL_CONSTRUCTOR, kernelsFor(options));
}
