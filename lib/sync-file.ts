/**
 * A sync_file: one fence as an fd (drivers/dma-buf/sync_file.c). It comes out of a dma-buf
 * (DmaBuf.exportSyncFile: what an access would wait for), from another API or process
 * (SyncFile.fromFd), and goes into a dma-buf (DmaBuf.importSyncFile) or to a device that
 * takes explicit fences (a GPU or display API). Close it, or `using` it.
 */
import { validateBoolean, validateInteger, validateOptions } from './args';
import { syncFileClosed } from './errors';
import { openFdStat, wrongFdKind } from './fd-kind';
import { decodeSyncFileInfo, encodeSyncFileInfo, POLLIN, SYNC_IOC_FILE_INFO } from './fence-uapi';
import { validateWait, waitReady, type WaitOptions } from './fences';
import { nativeKernel, softwareKernel, frameworkKernel } from './chooser';
import type { Framework } from './framework/framework';
import { checkConstructorToken, INTERNAL_CONSTRUCTOR } from './internal-token';
import { addHandleReader, unwatchForgotten, watchForgotten, type Backend, type Kernel } from './kernel';

/** A fence's state: 'active' (pending), 'signaled', or 'error' (signalled with an error). */
export type SyncFileStatus = 'active' | 'signaled' | 'error';

/** What SYNC_IOC_FILE_INFO says of a sync_file ({@link SyncFile.info}). */
export interface SyncFileInfo {
  /** "<driver>-<timeline><context>-<seqno>" of its fence, or the name given at merge */
  name: string;
  /** 'active', 'signaled' or 'error' */
  status: SyncFileStatus;
  /** the raw status: 0 active, 1 signalled, < 0 the error (-errno) it was signalled with */
  rawStatus: number;
  /** how many fences it holds (a merge or an export of several fences holds more than one) */
  numFences: number;
}

/**
 * A sync_file: one fence (or a merge of several) as an fd. Get one from
 * {@link DmaBuf.exportSyncFile} or {@link SyncFile.fromFd}; wait for it, hand it to a device,
 * or import it into a dma-buf. Close it, or `using` it.
 */
export class SyncFile {
  #fd: number;
  readonly #kernel: Kernel;

  static {
    addHandleReader((h) => (#kernel in h ? { kind: 'sync_file', kernel: (h as SyncFile).#kernel, fd: (h as SyncFile).#fd, open: (h as SyncFile).#fd >= 0 } : undefined));
  }

  /**
   * Not for users: DmaBuf.exportSyncFile() or SyncFile.fromFd() make one (the token is the package's own).
   *
   * @hidden
   */
  constructor(token: typeof INTERNAL_CONSTRUCTOR, fd: number, kernel: Kernel) {
    checkConstructorToken(token, 'DmaBuf.exportSyncFile() or SyncFile.fromFd()');
    this.#fd = fd;
    this.#kernel = kernel;
    watchForgotten(this);
  }

  /** which kernel serves it: the real one or the software framework */
  get backend(): Backend {
    return this.#kernel.backend;
  }

  /** the sync_file's fd (O_CLOEXEC); -1 once closed (read-only: close() closes this one) */
  get fd(): number {
    return this.#fd;
  }

  /** whether close() ran */
  get closed(): boolean {
    return this.#fd < 0;
  }

  #check(): number {
    if (this.#fd < 0) throw syncFileClosed();
    return this.#fd;
  }

  /**
   * SYNC_IOC_FILE_INFO (asking for no per-fence records).
   *
   * @returns its name, status, raw status and number of fences
   * @throws {@link DmaBufStateError} `ERR_SYNC_FILE_CLOSED` after close().
   * @throws {@link DmaHeapError} the ioctl's errno.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using buf = openHeap('system').alloc(4096);
   * using fence = buf.exportSyncFile();
   * console.log(fence.info()); // { name: '...', status: 'signaled', rawStatus: 1, numFences: 1 }
   * ```
   */
  info(): SyncFileInfo {
    const arg = encodeSyncFileInfo();
    this.#kernel.ioctl(this.#check(), SYNC_IOC_FILE_INFO, arg);
    const i = decodeSyncFileInfo(arg);
    return {
      name: i.name,
      status: i.status === 0 ? 'active' : i.status > 0 ? 'signaled' : 'error',
      rawStatus: i.status,
      numFences: i.numFences,
    };
  }

  /**
   * 'active' (pending), 'signaled', or 'error' (signalled with an error): `info().status`, so
   * each read is a SYNC_IOC_FILE_INFO ioctl (the state changes under you) and, as info() does,
   * throws ERR_SYNC_FILE_CLOSED once the sync_file is closed.
   */
  get status(): SyncFileStatus {
    return this.info().status;
  }

  /**
   * Resolves once the fence is signalled (poll POLLIN through the event loop). Every error,
   * a bad option as much as a closed sync_file, is a rejection.
   *
   * @param options `signal` to abort, `timeout` in ms
   * @throws Rejects (never throws) with {@link DmaBufStateError} `ERR_SYNC_FILE_CLOSED`; TypeError
   * `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE`, RangeError `ERR_OUT_OF_RANGE` for bad
   * options; {@link DmaHeapError} `ETIMEDOUT` after `timeout`, or poll's errno; an AbortError
   * (`ABORT_ERR`, the signal's reason as `cause`) when aborted.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using buf = openHeap('system').alloc(4096);
   * using fence = buf.exportSyncFile('write');
   * await fence.wait({ timeout: 1000 });
   * ```
   */
  wait(options?: WaitOptions): Promise<void> {
    let fd: number;
    let wait: WaitOptions;
    try {
      fd = this.#check();
      wait = validateWait(options);
    } catch (e) {
      return Promise.reject(e);
    }
    return waitReady(this.#kernel, fd, POLLIN, wait, 'sync_file wait');
  }

  /**
   * A second handle on the same fence (dup): closing one leaves the other open.
   *
   * @param options `cloexec` for the new fd (default true)
   * @returns a new SyncFile, the caller's to close
   * @throws {@link DmaBufStateError} `ERR_SYNC_FILE_CLOSED` after close().
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for bad options.
   * @throws {@link DmaHeapError} dup's errno (`EMFILE`...).
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using buf = openHeap('system').alloc(4096);
   * using fence = buf.exportSyncFile();
   * using copy = fence.dup({ cloexec: false }); // e.g. for a child's stdio
   * ```
   */
  dup(options?: { cloexec?: boolean }): SyncFile {
    const cloexec = validateBoolean(validateOptions(options, ['cloexec']).cloexec, 'options.cloexec', true);
    return new SyncFile(INTERNAL_CONSTRUCTOR, this.#kernel.dup(this.#check(), cloexec), this.#kernel);
  }

  /**
   * Close the fd. Idempotent.
   *
   * @throws Nothing: a second close() does nothing.
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using buf = openHeap('system').alloc(4096);
   * const fence = buf.exportSyncFile();
   * fence.close();
   * console.log(fence.fd, fence.closed); // -1 true
   * ```
   */
  close(): void {
    if (this.#fd < 0) return;
    const fd = this.#fd;
    this.#fd = -1;
    unwatchForgotten(this);
    this.#kernel.close(fd);
  }

  /**
   * close(), for `using`.
   *
   * @throws Nothing, as close().
   * @example
   * ```ts
   * import { openHeap } from 'dma-heap';
   * using buf = openHeap('system').alloc(4096);
   * {
   *   using fence = buf.exportSyncFile();
   * } // closed here
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * Adopt a sync_file fd from elsewhere (a GPU or display API, a parent process, a socket).
   * `dup` (default true) leaves the caller's fd open; false takes it over. An fd that is no
   * sync_file is refused with EINVAL. A software framework's sync_files are found in
   * `framework` (default: the process's); any other fd goes to the real kernel.
   *
   * @param fd an open sync_file fd
   * @param options `dup` (default true: the caller's fd stays theirs) and `framework`
   * @returns the adopted SyncFile
   * @throws TypeError `ERR_INVALID_ARG_TYPE` / `ERR_INVALID_ARG_VALUE` for a non-number fd or bad
   * options; RangeError `ERR_OUT_OF_RANGE` for an fd outside [0, 2^31-1].
   * @throws {@link DmaHeapError} `EBADF` for an fd that is not open; `EINVAL` for one that is no sync_file.
   * @example
   * ```ts
   * import { SyncFile } from 'dma-heap';
   * const fd = 3; // e.g. a GPU API's out-fence
   * using fence = SyncFile.fromFd(fd);
   * await fence.wait();
   * ```
   */
  static fromFd(fd: number, options?: { dup?: boolean; framework?: Framework }): SyncFile {
    validateInteger(fd, 'fd', 0, 0x7fffffff);
    options = validateOptions(options, ['dup', 'framework']);
    const dup = validateBoolean(options.dup, 'options.dup', true);
    openFdStat(fd); // a closed fd: EBADF (syscall fstat), as from every fromFd
    const sw = frameworkKernel(options.framework) ?? softwareKernel();
    // the value checked, not a second read of a getter
    if (sw.syncFile(fd)) return SyncFile.adopt(fd, sw, { dup });
    // Any other fd is the real kernel's to judge, as sync_file_fdget does: EBADF if not open,
    // EINVAL if open but no sync_file. Without the addon nothing can ask the kernel, and
    // nothing here could have made a real sync_file: an open fd is not one.
    const native = nativeKernel();
    if (native) return SyncFile.adopt(fd, native, { dup });
    throw wrongFdKind(fd, 'sync_file');
  }

  /** @internal fromFd once the kernel is known */
  static adopt(fd: number, kernel: Kernel, options: { dup?: boolean } = {}): SyncFile {
    const own = options.dup !== false ? kernel.dup(fd, true) : fd;
    try {
      kernel.ioctl(own, SYNC_IOC_FILE_INFO, encodeSyncFileInfo());
    } catch (e) {
      if (own !== fd) kernel.close(own);
      const code = (e as { code?: string }).code;
      if (code === 'ENOTTY' || code === 'EINVAL' || code === 'EFAULT') throw wrongFdKind(fd, 'sync_file');
      throw e;
    }
    return new SyncFile(INTERNAL_CONSTRUCTOR, own, kernel);
  }
}
