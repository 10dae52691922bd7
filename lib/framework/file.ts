import fs from 'node:fs';
import os from 'node:os';
import type { Addon } from '../native/addon';
import { renderFdinfo, type FdinfoLines } from '../fdinfo';
import { O_CLOEXEC, O_RDONLY } from '../uapi';
import type { Vma } from './backing';
import type { DmaFence } from './dma-fence';
import { errno, type SyscallContext } from './errno';

/**
 * struct file_operations: what a kind of file can do, looked up on the file (f_op) as the
 * VFS does, never by asking what the file's private data is. A missing op fails as the
 * kernel's VFS fails it.
 */
export interface FileOperations<P = unknown> {
  /** unlocked_ioctl; absent: ENOTTY. The op may fill ctx (path, heap) for the error. */
  unlockedIoctl?(file: File<P>, cmd: number, arg: Uint8Array, ctx: SyscallContext): number;
  /** llseek(0, SEEK_END): the size; absent: ESPIPE (nonseekable_open) */
  llseekEnd?(file: File<P>): number;
  /** mmap after the VFS checks: fill vma.view (and vma.close); absent: ENODEV */
  mmap?(file: File<P>, vma: Vma, pageSize: number): void;
  /** show_fdinfo: the lines after procfs's common pos/flags/mnt_id/ino */
  showFdinfo?(file: File<P>): FdinfoLines;
  /** release: the last reference went (fput); absent: nothing to free */
  release?(file: File<P>): void;
  /** poll: the ready mask now for the requested events; absent: DEFAULT_POLLMASK (always ready) */
  poll?(file: File<P>, requested: number): number;
  /** what a waiting poll sleeps on: the fences whose signal may change the mask */
  pollFences?(file: File<P>, requested: number): DmaFence[];
}

/**
 * Where a simulated fd's real descriptor comes from. Every simulated fd reserves a real one,
 * so numbers are unique in the process, never collide with real fds, and /proc/self/fd
 * counts (leak checks) see software buffers too.
 */
export interface FdSource {
  /** a new real descriptor for this file; `donor` is the fd being dup'ed, if any */
  open(cloexec: boolean, donor?: number): number;
  close(fd: number): void;
}

/**
 * Heap devices and JS-memory dma-bufs hold /dev/null open: through the addon when it loaded
 * (its fds are closed when a worker's environment goes, as own() promises), else with
 * fs.openSync. Either way the descriptor is O_CLOEXEC; the requested flag is kept in the fd
 * table (fdinfo shows it).
 */
export function devNullSource(addon: Addon | null): FdSource {
  if (addon) {
    return {
      open: () => addon.open(os.devNull, O_RDONLY | O_CLOEXEC),
      close: (fd) => addon.close(fd),
    };
  }
  return { open: () => fs.openSync(os.devNull, 'r'), close: (fd) => fs.closeSync(fd) };
}

/**
 * struct file. `fCount` is f_count: one reference per fd and per mapping (vma->vm_file);
 * the last put releases the object (dma_buf_release for a dma-buf).
 */
export class File<P = unknown> {
  // the creator's reference, handed over to the first fd as fd_install does
  private count = 1;

  constructor(
    readonly priv: P,
    /** f_op */
    readonly fops: FileOperations<P>,
    /** f_flags: the access mode (and O_NONBLOCK); O_CLOEXEC lives in the fd table */
    readonly fFlags: number,
    /** the inode number fdinfo shows, or what knows it when first asked (a memfd's st_ino
     *  costs a syscall nobody needs on the allocation path) */
    private readonly inode: number | { readonly ino: number },
    readonly source: FdSource,
  ) {}

  get ino(): number {
    return typeof this.inode === 'number' ? this.inode : this.inode.ino;
  }

  get fCount(): number {
    return this.count;
  }
  get(): void {
    this.count++;
  }
  put(): void {
    if (--this.count === 0) this.fops.release?.(this);
  }
}

/** /proc/self/fdinfo/<fd>: fs/proc/fd.c's common lines (flags as "0%o", O_CLOEXEC from the fd
 *  table), then the file's show_fdinfo */
export function fileFdinfo(file: File, cloexec: boolean): string {
  return renderFdinfo({ flags: file.fFlags | (cloexec ? O_CLOEXEC : 0), ino: file.ino }, file.fops.showFdinfo?.(file));
}

export interface FdEntry {
  file: File;
  /** FD_CLOEXEC as asked (the reserved real fd may have it regardless) */
  cloexec: boolean;
}

/** The process's fd table, for the simulated files. */
export class FdTable {
  private readonly fds = new Map<number, FdEntry>();

  /** fd_install: takes over one reference the caller holds on `file` */
  install(file: File, cloexec: boolean, donor?: number): number {
    const fd = file.source.open(cloexec, donor);
    const stale = this.fds.get(fd);
    if (stale) {
      // Someone closed our real descriptor behind our back and the number came back:
      // that simulated fd is gone; drop its reference.
      this.fds.delete(fd);
      stale.file.put();
    }
    this.fds.set(fd, { file, cloexec });
    return fd;
  }

  lookup(fd: number): FdEntry {
    const entry = this.fds.get(fd);
    if (!entry) throw errno('EBADF');
    return entry;
  }

  has(fd: number): boolean {
    return this.fds.has(fd);
  }

  /** the entry, or undefined (where EBADF is not the answer) */
  get(fd: number): FdEntry | undefined {
    return this.fds.get(fd);
  }

  dup(fd: number, cloexec: boolean): number {
    const { file } = this.lookup(fd);
    file.get();
    try {
      return this.install(file, cloexec, fd);
    } catch (e) {
      file.put();
      throw e;
    }
  }

  /** remove fd from the table without closing its real descriptor or putting its file:
   *  the caller does both (Framework.closeMapped does them in one addon call) */
  take(fd: number): FdEntry {
    const entry = this.lookup(fd);
    this.fds.delete(fd);
    return entry;
  }

  close(fd: number): void {
    const { file } = this.lookup(fd);
    this.fds.delete(fd);
    try {
      file.source.close(fd);
    } finally {
      file.put();
    }
  }

  list(): number[] {
    return [...this.fds.keys()];
  }
}
