import { constants } from 'node:buffer';
import fs from 'node:fs';
import { markAsUntransferable } from 'node:worker_threads';
import type { Addon } from '../native/addon';
import { F_SEAL_GROW, F_SEAL_SEAL, F_SEAL_SHRINK } from '../uapi';
import { errno } from './errno';
import type { FdSource } from './file';

/**
 * A mapping request, in the kernel's terms a vm_area_struct: the exporter's mmap op fills
 * `view` (the pages the user sees) and may set `close` (vm_ops->close, run at munmap).
 */
export interface Vma {
  /** the (real) fd being mapped */
  fd: number;
  /** vm_pgoff: offset in pages */
  pgoff: number;
  /** the offset in bytes */
  offset: number;
  /** bytes to map */
  length: number;
  /** PROT_WRITE asked */
  writable: boolean;
  /** the pages the user sees: the exporter's mmap op sets it */
  view?: Uint8Array;
  /** vm_ops->close at munmap; given the view so it holds no reference to it (the GC must be
   *  able to collect a forgotten mapping). No view: the mapping was collected, not unmapped.
   *  `last`: the mapping holds the file's last reference, so the buffer is released right
   *  after and nothing can map it again. */
  close?: (view?: Uint8Array, last?: boolean) => void;
}

/** The memory behind a software dma-buf, asked of the framework by exporters. */
export interface BackingMemory {
  /** a memfd (a real fd others can map) or JS memory */
  readonly kind: 'memfd' | 'js';
  /** bytes */
  readonly size: number;
  /** the identity fdinfo shows: the memfd's st_ino, or a number of our own */
  readonly ino: number;
  /** how the dma-buf's fds get real descriptors */
  readonly fdSource: FdSource;
  /**
   * Map the memory for a mapping request (a dma-buf mmap op calls it).
   *
   * @param vma the request: offset, length, writable; set its view
   */
  mmap(vma: Vma): void;
  /**
   * Copy at `offset` to (`write`) or from the memory without making a mapping, for read() and
   * write() where no mapping exists: `fd` is one of the buffer's, the range already checked.
   * A mapping would cost more than the copy: the JS memory's last munmap moves every byte.
   *
   * @param fd one of the buffer's fds
   * @param offset where, in bytes
   * @param bytes the source (write) or destination
   * @param write copy `bytes` in (true) or out (false)
   */
  copy(fd: number, offset: number, bytes: Uint8Array, write: boolean): void;
  /** the owner dropped it (dma-buf release): pages are freed once no mapping holds them */
  free(): void;
}

// Inode numbers for JS-memory buffers and heap devices: unique in the process (a module-level
// counter, so two frameworks never hand out the same one).
let lastIno = 0;
export const nextIno = (): number => ++lastIno;

/**
 * The memory of a JS-memory buffer: an ArrayBuffer nobody can move away. A program that put
 * map()'s ArrayBuffer in a postMessage transfer list would otherwise take the buffer's memory
 * to another thread (the addon's mappings refuse that too); marked untransferable, it is
 * copied instead. Being untransferable it can't be detached either, so it is resizable:
 * shrinking it to 0 bytes is how its views are cut off (byteLength 0, reads undefined,
 * DataView access throws), as a detach would.
 */
function jsMemory(size: number): ArrayBuffer {
  const Ctor = ArrayBuffer as unknown as new (n: number, o: { maxByteLength: number }) => ArrayBuffer & { resize?(n: number): void };
  const memory = new Ctor(size, { maxByteLength: size });
  if (typeof memory.resize === 'function') markAsUntransferable(memory);
  return memory;
}

/**
 * The largest JS-memory buffer: buffer.constants.MAX_LENGTH, the longest Uint8Array (a view
 * over the whole buffer must be possible), 4 GiB in Node 20 (V8 11); a resizable ArrayBuffer
 * has the same bound there (measured: 2^32 bytes take, 2^32 + 4096 throw).
 */
export const JS_MEMORY_MAX = constants.MAX_LENGTH;

/** Cut every view off `memory`: shrink it to nothing (untransferable), or detach it. */
function retire(memory: ArrayBuffer): void {
  const m = memory as ArrayBuffer & { resize?(n: number): void };
  if (typeof m.resize === 'function') m.resize(0);
  else structuredClone(memory, { transfer: [memory] });
}

/**
 * JS memory: one ArrayBuffer per buffer, a mapping is a view on it. munmap can't cut off one
 * view of a shared ArrayBuffer, so when the buffer's LAST mapping goes the bytes move to a
 * fresh ArrayBuffer (a copy) and the old one is retired: every old view reads as length 0.
 * Limitation: with two mappings alive at once, unmapping one leaves its views working until
 * the other is unmapped too. A read-only mapping is not enforced either (JS has no read-only
 * ArrayBuffer views), where the real kernel would fault on a write.
 */
export class JsBacking implements BackingMemory {
  readonly kind = 'js';
  readonly ino = nextIno();
  private memory: ArrayBuffer;
  private maps = 0;

  constructor(
    readonly size: number,
    /** a /dev/null reservation (devNullSource) */
    readonly fdSource: FdSource,
  ) {
    if (size > JS_MEMORY_MAX) {
      throw errno('ENOMEM', `JS memory holds at most ${JS_MEMORY_MAX} bytes per buffer in this Node (V8's ArrayBuffer limit); the memfd tier (the native addon) has no such limit`);
    }
    try {
      this.memory = jsMemory(size);
    } catch {
      throw errno('ENOMEM'); // RangeError: more than the engine will give now
    }
  }

  mmap(vma: Vma): void {
    this.maps++;
    vma.view = new Uint8Array(this.memory, vma.offset, vma.length);
    vma.close = (view, last) => {
      // A collected view detaches nothing: whoever still holds the ArrayBuffer keeps it.
      if (--this.maps !== 0 || !view) return;
      const old = this.memory;
      if (last) {
        // released next: no fd can map it again, so the bytes need not survive (no copy)
        this.memory = new ArrayBuffer(0);
      } else {
        this.memory = jsMemory(old.byteLength);
        new Uint8Array(this.memory).set(new Uint8Array(old));
      }
      retire(old);
    };
  }

  copy(_fd: number, offset: number, bytes: Uint8Array, write: boolean): void {
    const memory = new Uint8Array(this.memory, offset, bytes.length);
    if (write) memory.set(bytes);
    else bytes.set(memory);
  }

  free(): void {
    if (this.maps === 0) this.memory = new ArrayBuffer(0);
  }
}

/**
 * A memfd (through the addon): a real fd other processes can map. The dma-buf's first fd IS
 * the memfd (so st_ino matches what a receiving process sees); dup'ed fds are real dups of it.
 * Its pages live as long as any fd or mapping does, as the kernel's do.
 */
export class MemfdBacking implements BackingMemory, FdSource {
  readonly kind = 'memfd';
  /** st_ino, read when first asked (fdinfo): not a syscall on every allocation */
  private inode: number | undefined;
  /** the memfd until the dma-buf's first fd takes it over */
  private pending: number | null;
  /** the real fds of this buffer open now (all the same inode): one or two, so a list */
  private readonly fds: number[];

  /** a new memfd named `name`, or (`existing`) one received from elsewhere, adopted as it is */
  constructor(
    private readonly addon: Addon,
    readonly size: number,
    name: string,
    existing?: number,
  ) {
    // Whoever gets this fd (a child, a socket peer) could otherwise truncate it under our
    // mappings (touching them would SIGBUS), grow it past the size every message states, or
    // add F_SEAL_WRITE / F_SEAL_FUTURE_WRITE and make our own map(), read() and write() fail
    // with EPERM: fix its size, then seal the seals (F_SEAL_SEAL). An imported one was checked.
    // One addon call: memfd_create, ftruncate, F_ADD_SEALS.
    const fd = existing ?? addon.memfdBuffer(name, size, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
    if (existing !== undefined) {
      try {
        this.inode = fs.fstatSync(fd).ino;
      } catch (e) {
        addon.close(fd);
        throw e;
      }
    }
    this.pending = fd;
    this.fds = [fd]; // a literal holds one; push onto [] would reserve 17
  }

  get ino(): number {
    if (this.inode === undefined) {
      for (const fd of this.fds) {
        this.inode = fs.fstatSync(fd).ino;
        break;
      }
    }
    // no fd left (only mappings): nobody can ask fdinfo any more
    return (this.inode ??= nextIno());
  }

  /** the buffer's fds are the memfd and real dups of it (a method pair, not closures per buffer) */
  get fdSource(): FdSource {
    return this;
  }

  open(cloexec: boolean, donor?: number): number {
    if (donor !== undefined) return this.track(this.addon.dup(donor, cloexec));
    const fd = this.pending;
    if (fd === null) throw errno('EBADF'); // only dma_buf_fd installs without a donor, once
    this.pending = null;
    if (cloexec) return fd;
    // memfd_create gave it O_CLOEXEC; the caller asked for an fd a child can inherit
    try {
      return this.track(this.addon.dup(fd, false));
    } finally {
      this.untrack(fd);
      this.addon.close(fd);
    }
  }

  close(fd: number): void {
    this.untrack(fd);
    this.addon.close(fd);
  }

  private untrack(fd: number): void {
    const i = this.fds.indexOf(fd);
    if (i < 0) return;
    this.fds[i] = this.fds[this.fds.length - 1]; // order is of no use: no splice (it allocates)
    this.fds.length--;
  }

  private track(fd: number): number {
    this.fds.push(fd);
    return fd;
  }

  mmap(vma: Vma): void {
    // the framework checked the range against the buffer (dmaBufMmapCheck) and the memfd is
    // sealed against shrinking at that size: no fstat needed
    const memory = this.addon.mmap(vma.fd, vma.length, vma.offset, vma.writable, true);
    vma.view = new Uint8Array(memory);
    // collected: the addon unmapped it with its ArrayBuffer
    vma.close = (view) => view && this.addon.munmap(view.buffer as ArrayBuffer);
  }

  copy(fd: number, offset: number, bytes: Uint8Array, write: boolean): void {
    if (write) this.addon.writeMapped(fd, offset, bytes);
    else this.addon.readMapped(fd, offset, bytes);
  }

  /** munmap `view` (this buffer's mapping) and close `fd` (one of its fds): one addon call;
   *  `async`: the close (where the pages are freed) on the libuv pool */
  closeMapped(fd: number, view: Uint8Array, async: boolean): Promise<void> | undefined {
    this.untrack(fd);
    if (async) return this.addon.closeMappedAsync(fd, view.buffer as ArrayBuffer);
    this.addon.closeMapped(fd, view.buffer as ArrayBuffer);
    return undefined;
  }

  free(): void {
    if (this.pending !== null) {
      this.untrack(this.pending);
      this.addon.close(this.pending);
    }
    this.pending = null;
  }
}
