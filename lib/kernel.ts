/**
 * What the public API needs from "a kernel". Two implement it: the real one
 * through the addon (lib/native/) and the software dma-heap framework
 * (lib/framework/). Both take the same encoded ioctl bytes (lib/uapi.ts) and
 * fail the same way: a thrown DmaHeapError-shaped error with code, errno and syscall.
 */
import type { DmaBufInfo } from './fdinfo';
import type { FenceKernel } from './fences';
import type { HeapKind, HeapTraits } from './heap-kind';
import { YoungObjects } from './young';

/** A heap a kernel offers, as {@link listHeaps} reports it. */
export interface HeapEntry {
  /** the heap's name, as under /dev/dma_heap */
  name: string;
  /** the device path (simulated for the software framework) */
  path: string;
  /** whether this process may open it (access(2) R_OK for a device node) */
  accessible: boolean;
  /** what its memory is: 'system', 'contiguous' (a CMA area), 'protected' (the CPU cannot map it) or 'other' */
  kind: HeapKind;
  /** whether its allocations are charged to the allocating process's memory cgroup
   *  (the system heap when the kernel's dma_heap.mem_accounting is set: 7.0+) */
  accounted: boolean;
}

/** Which kernel serves a heap or buffer: 'kernel' (the real /dev/dma_heap) or 'software' (the framework). */
export type Backend = 'kernel' | 'software';
/** Where a software buffer's pages live: a memfd (a real fd others can map) or JS memory. */
export type Backing = 'dma-buf' | 'memfd' | 'js';

export interface Kernel extends FenceKernel {
  readonly backend: Backend;
  /** how this kernel's dma-buf memory is backed: 'dma-buf' for the real kernel */
  readonly backing: Backing;
  /** the page size allocations are rounded to */
  readonly pageSize: number;

  /** the heaps this kernel offers, sorted by name */
  heaps(): HeapEntry[];
  /**
   * Call `changed` whenever the set of heaps may have changed (a heap module loaded, a heap
   * added); the caller lists again. `failed`: the watch broke and reports nothing more.
   * Returns the function that stops it.
   */
  watchHeaps(changed: () => void, failed: (err: Error) => void): () => void;
  /** what heap `name` is and whether it is charged to the memory cgroup (heap-kind.ts): read when a heap is opened */
  heapTraits(name: string): HeapTraits;
  /** whether it offers a heap `name` (one lookup, not a listing) */
  hasHeap(name: string): boolean;
  /** open a heap device (name already validated by the caller); O_RDONLY|O_CLOEXEC */
  openHeap(name: string): number;

  /**
   * ioctl(fd, cmd, arg) where arg points at `arg`'s bytes. The kernel reads and
   * writes `arg` in place (a copy is made so it never touches bytes beyond it).
   * Returns the ioctl's non-negative return value. null passes a NULL pointer (EFAULT
   * wherever the command reads or writes its argument). `fdAt`: where a successful call
   * returns a new fd in `arg`; the kernel owns it for this thread from that moment.
   */
  ioctl(fd: number, cmd: number, arg: Uint8Array | null, fdAt?: number): number;
  /** the same, run off the event loop, on the file fd names now: closing fd (and reusing its
   *  number) before it runs changes nothing, as for a syscall in flight */
  ioctlAsync(fd: number, cmd: number, arg: Uint8Array, fdAt?: number): Promise<number>;

  /**
   * DMA_HEAP_IOCTL_ALLOC (cmd: the profile's number) on heap fd: the new dma-buf's fd, owned
   * by this thread. The same as ioctl() with an encoded allocation_data, without the struct.
   */
  heapAlloc(fd: number, cmd: number, len: bigint, fdFlags: number): number;
  /** unmap `view` (if given; as munmap) and close fd, as one step */
  closeMapped(fd: number, view: Uint8Array | undefined): void;
  /**
   * The same, with the close off the event loop: closing a buffer's last fd is where the
   * kernel frees its pages. The unmap and the bookkeeping happen before it returns; the
   * promise settles when the fd is closed.
   */
  closeMappedAsync(fd: number, view: Uint8Array | undefined): Promise<void>;

  /** lseek(fd, 0, SEEK_END): a dma-buf's size */
  seekEnd(fd: number): number;
  /** mmap(MAP_SHARED); the view is detached (length 0) once unmapped */
  mmap(fd: number, length: number, offset: number, writable: boolean): Uint8Array;
  /** munmap a view returned by mmap; a second call does nothing */
  munmap(view: Uint8Array): void;
  /** dup, with O_CLOEXEC as asked */
  dup(fd: number, cloexec: boolean): number;
  close(fd: number): void;
  /** the text of /proc/self/fdinfo/<fd> (or the framework's rendering of it) */
  fdinfo(fd: number): string;
  /** copy through a brief private mapping: for read-only buffers (a PROT_READ mapping
   *  must never become a writable ArrayBuffer) and runtimes that refuse external ones */
  readMapped(fd: number, offset: number, dst: Uint8Array): void;
  writeMapped(fd: number, offset: number, src: Uint8Array): void;
  /**
   * Take a handle on a dma-buf fd that came from elsewhere: the kernel's own fd for it
   * (O_CLOEXEC, released by a terminating worker) and its fdinfo, read once. `dup` true
   * leaves the caller's fd open; false closes it once the kernel's exists. If this throws,
   * the caller's fd is untouched and still the caller's.
   */
  adopt(fd: number, dup: boolean): Adopted;
}

/** What Kernel.adopt returns: the kernel's own fd and what fdinfo said of it. */
/**
 * An fd a kernel adopted: its own fd and the buffer's fdinfo.
 *
 * @inline
 */
export interface Adopted {
  /** the adopted buffer's own fd */
  fd: number;
  /** its fdinfo, parsed */
  info: DmaBufInfo;
}

/** What a handle (Heap, DmaBuf, SyncFile) holds, read through its private fields. */
export interface HandleState {
  kind: 'heap' | 'dma-buf' | 'sync_file';
  kernel: Kernel;
  fd: number;
  /** not closed by its owner */
  open: boolean;
}

/** how to read each class of handle: their static blocks add a brand check on their private
 *  fields, so no per-object table (a WeakMap entry per buffer cost an ephemeron and a malloc) */
const handleReaders: Array<(handle: object) => HandleState | undefined> = [];

/** @internal called once by each handle class */
export function addHandleReader(read: (handle: object) => HandleState | undefined): void {
  handleReaders.push(read);
}

function stateOf(handle: object): HandleState | undefined {
  if ((typeof handle !== 'object' && typeof handle !== 'function') || handle === null) return undefined;
  for (const read of handleReaders) {
    const state = read(handle);
    if (state) return state;
  }
  return undefined;
}

/** @internal what a value is, if it is one of the package's handles (undefined for anything else) */
export const handleState = (value: unknown): HandleState | undefined => stateOf(value as object);

/** @internal which kernel serves a handle: for lib/ and tests, not on the public objects */
export function kernelOf(handle: object): Kernel {
  const state = stateOf(handle);
  if (!state) throw new TypeError('not a Heap, DmaBuf or SyncFile');
  return state.kernel;
}

/** Closes the fd of a handle a program forgot, once. Mappings are unmapped by their own finalizers. */
const forgotten = new FinalizationRegistry<{ kernel: Kernel; fd: number }>(({ kernel, fd }) => {
  try {
    kernel.close(fd);
  } catch {
    // Nothing to report to: the owner is gone.
  }
});

/** Handles made this turn: watched by `forgotten` from the next turn, if still open then. */
const young = new YoungObjects<object>((handle) => {
  const state = stateOf(handle);
  if (state?.open) forgotten.register(handle, { kernel: state.kernel, fd: state.fd }, handle);
});

/** @internal a new handle's fd is closed if the program forgets the handle */
export function watchForgotten(handle: object): void {
  young.add(handle);
}

/** @internal its owner closed it */
export function unwatchForgotten(handle: object): void {
  if (!young.drop(handle)) forgotten.unregister(handle);
}
