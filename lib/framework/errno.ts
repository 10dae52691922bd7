import { DmaHeapError, errnoOf, type ErrnoCode } from '../errors';

/**
 * A failure inside the simulated kernel: what ERR_PTR(-code) carries in C. It becomes a
 * DmaHeapError (code, errno, syscall, path, heap) at the syscall boundary, like -errno
 * becomes errno in libc.
 */
export class Errno extends Error {
  /**
   * What a heap of your own throws to fail a call with `code`, as a kernel driver returns -errno.
   *
   * @param code the errno name, e.g. 'ENOMEM'
   * @param detail what to tell the user beyond the errno, if anything
   * @throws Nothing.
   * @example
   * ```ts
   * import { Errno } from 'dma-heap/framework';
   * const err = new Errno('ENOMEM', 'the carveout is full'); // or errno('ENOMEM', ...)
   * ```
   */
  constructor(
    /** the errno name: what the caller's DmaHeapError.code will say (typed: a misspelt one does not compile) */
    readonly code: ErrnoCode,
    /** what to tell the user beyond the errno, if anything */
    readonly detail?: string,
  ) {
    super(code);
    this.name = 'Errno';
  }
}

/**
 * An {@link Errno} to throw from a heap of your own (`return ERR_PTR(-ENOMEM)` in C): the
 * caller gets a DmaHeapError with this code.
 *
 * @param code the errno name, e.g. 'ENOMEM'
 * @param detail what to tell the user beyond the errno, if anything
 * @returns the Errno, to throw
 * @throws Nothing: it returns the error.
 * @example
 * ```ts
 * import { errno, Framework } from 'dma-heap/framework';
 * const framework = new Framework();
 * framework.addHeap({ name: 'full', ops: { allocate: () => { throw errno('ENOMEM', 'always full'); } } });
 * ```
 */
export const errno = (code: ErrnoCode, detail?: string): Errno => new Errno(code, detail);

/** an error carrying a known errno name (ours, the addon's, Node's) */
export function hasErrno(e: unknown): e is { code: string } {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && errnoOf(code) !== undefined;
}

export interface SyscallContext {
  path?: string;
  heap?: string;
  /** the fd table's sync_file side, for ioctls that take or make sync_file fds */
  syncFiles?: import('./sync-file').SyncFileContext;
}

/** What leaves a syscall that failed: an Errno becomes DmaHeapError(code, name, ctx); anything else as it is. */
export function syscallError(e: unknown, name: string, ctx?: SyscallContext): unknown {
  return hasErrno(e) ? new DmaHeapError(e.code, name, { ...ctx, message: (e as Errno).detail }) : e;
}

/**
 * Run a syscall's body, which fills ctx (path, heap) for its error. The hot ones (mmap, munmap,
 * close, lseek, the typed ALLOC) catch with syscallError themselves: a closure and a context
 * per call were a fifth of a buffer's garbage.
 */
export function syscall<T>(name: string, body: (ctx: SyscallContext) => T): T {
  const ctx: SyscallContext = {};
  try {
    return body(ctx);
  } catch (e) {
    throw syscallError(e, name, ctx);
  }
}
