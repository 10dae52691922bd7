import fs from 'node:fs';
import { basename, dirname } from 'node:path';
import { markAsUntransferable } from 'node:worker_threads';
import type { Addon } from './addon';
import { addonMissing, DmaHeapError, withContext, type ErrnoCode } from '../errors';
import { parseFdinfo } from '../fdinfo';
import { wrongFdKind } from '../fd-kind';
import { heapTraits, readHeapFacts, type HeapTraits } from '../heap-kind';
import { isHeapName } from '../validate';
import { O_CLOEXEC, O_NOCTTY, O_NOFOLLOW, O_NONBLOCK, O_RDONLY, O_RDWR } from '../uapi';
import type { Adopted, HeapEntry, Kernel } from '../kernel';
import { addonStatus, loadAddon } from './load';
import { createUdmabuf, UDMABUF_PATH } from './udmabuf';
import { POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT } from '../fence-uapi';
import { ALLOCATION_DATA_FD_OFFSET, decodeAllocationData, encodeAllocationData } from '../uapi';

const SEEK_END = 2;

/** Where heaps live; overridable so tests can aim it at a scratch directory. */
export interface NativeKernelDirs {
  /** default /dev/dma_heap */
  heapDir?: string;
  /** default /sys/class/dma_heap; its <name>/dev pins the device number */
  sysDir?: string;
  /** default '' (the root): where /sys/kernel/mm/cma, /proc/device-tree and the heap module's parameters are read (heap-kind.ts) */
  sysRoot?: string;
}

/** The real kernel, through the addon: syscalls pass straight through. */
export class NativeKernel implements Kernel {
  readonly backend = 'kernel' as const;
  readonly backing = 'dma-buf' as const;
  readonly pageSize: number;
  private readonly addon: Addon;
  private readonly heapDir: string;
  private readonly sysDir: string;
  private readonly sysRoot: string;
  private udmabuf = -1;

  constructor(addon?: Addon, dirs: NativeKernelDirs = {}) {
    const a = addon ?? loadAddon();
    if (!a) throw addonMissing('the real kernel', addonStatus().reason);
    this.addon = a;
    this.heapDir = dirs.heapDir ?? '/dev/dma_heap';
    this.sysDir = dirs.sysDir ?? '/sys/class/dma_heap';
    this.sysRoot = dirs.sysRoot ?? '';
    this.pageSize = a.pageSize();
  }

  heaps(): HeapEntry[] {
    let names: string[];
    try {
      names = fs.readdirSync(this.heapDir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return [];
      throw new DmaHeapError(code ?? 'EIO', 'scandir', { path: this.heapDir });
    }
    const facts = readHeapFacts(this.sysRoot);
    return names.sort().map((name) => {
      const path = `${this.heapDir}/${name}`;
      let accessible = true;
      try {
        fs.accessSync(path, fs.constants.R_OK);
      } catch {
        accessible = false;
      }
      return { name, path, accessible, ...heapTraits(name, facts) };
    });
  }

  /**
   * Open a heap by name so that no name can reach any other device node: it must
   * be a character device right in the heap directory (lstat: no symlink, no FIFO),
   * with the device number sysfs gives the heap when sysfs has it, and the fd we
   * get must be that very node (fstat after open: no swap in between).
   */
  openHeap(name: string): number {
    const path = `${this.heapDir}/${name}`;
    const ctx = { path, heap: name };
    const refuse = (message: string) => new DmaHeapError('ENODEV', 'open', { ...ctx, message });
    // The caller validated the syntax; this is the last line, not the first.
    if (!name || name === '.' || name === '..' || /[/\0]/.test(name)) throw refuse('not a heap name');

    let node: fs.BigIntStats;
    try {
      node = fs.lstatSync(path, { bigint: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? 'ENOENT';
      throw withContext(new DmaHeapError(code, 'open', ctx), ctx);
    }
    if (!node.isCharacterDevice()) throw refuse('not a character device');
    const expected = this.sysfsDevice(name);
    if (expected !== undefined && expected !== devNumbers(node.rdev)) {
      throw refuse(`device ${devNumbers(node.rdev)} is not the heap's ${expected}`);
    }

    // O_NONBLOCK and O_NOCTTY are no-ops for a heap, and keep a node swapped in
    // after lstat (a FIFO, a tty) from blocking us or becoming our terminal.
    const flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY;
    let fd: number;
    try {
      fd = this.addon.open(path, flags);
    } catch (err) {
      throw withContext(err, ctx);
    }
    let same = false;
    try {
      const opened = fs.fstatSync(fd, { bigint: true });
      same = opened.isCharacterDevice() && opened.rdev === node.rdev && opened.ino === node.ino && opened.dev === node.dev;
    } finally {
      if (!same) this.addon.close(fd);
    }
    if (!same) throw refuse('the device node changed while it was opened');
    return fd;
  }

  ioctl(fd: number, cmd: number, arg: Uint8Array | null, fdAt?: number): number {
    return this.addon.ioctl(fd, cmd, arg, fdAt);
  }

  ioctlAsync(fd: number, cmd: number, arg: Uint8Array, fdAt?: number): Promise<number> {
    return this.addon.ioctlAsync(fd, cmd, arg, fdAt);
  }

  heapAlloc(fd: number, cmd: number, len: bigint, fdFlags: number): number {
    if (len > BigInt(Number.MAX_SAFE_INTEGER)) {
      // beyond a double: the struct path carries the full u64 (the kernel answers ENOMEM)
      const arg = encodeAllocationData({ len, fd: 0, fdFlags, heapFlags: 0n });
      this.addon.ioctl(fd, cmd, arg, ALLOCATION_DATA_FD_OFFSET);
      return decodeAllocationData(arg).fd;
    }
    return this.addon.heapAlloc(fd, cmd, Number(len), fdFlags);
  }

  closeMapped(fd: number, view: Uint8Array | undefined): void {
    this.addon.closeMapped(fd, view?.buffer as ArrayBuffer | undefined);
  }

  closeMappedAsync(fd: number, view: Uint8Array | undefined): Promise<void> {
    return this.addon.closeMappedAsync(fd, view?.buffer as ArrayBuffer | undefined);
  }

  seekEnd(fd: number): number {
    return this.addon.lseek(fd, 0, SEEK_END);
  }

  mmap(fd: number, length: number, offset: number, writable: boolean): Uint8Array {
    // Every fd this kernel maps is a dma-buf (heap, udmabuf, or adopted after an exp_name
    // check): dma_buf_mmap_internal refuses a range beyond the buffer itself, so no fstat.
    const buffer = this.addon.mmap(fd, length, offset, writable, true);
    // postMessage must copy it, never move the mapping to another thread's env
    markAsUntransferable(buffer);
    return new Uint8Array(buffer);
  }

  munmap(view: Uint8Array): void {
    this.addon.munmap(view.buffer as ArrayBuffer);
  }

  readMapped(fd: number, offset: number, dst: Uint8Array): void {
    this.addon.readMapped(fd, offset, dst);
  }

  writeMapped(fd: number, offset: number, src: Uint8Array): void {
    this.addon.writeMapped(fd, offset, src);
  }

  /**
   * Take a handle on a dma-buf fd from elsewhere. A private dup first (nothing can fail after
   * it but the caller's close): `dup` false then closes the caller's fd. A non-dma-buf is
   * refused with the caller's fd untouched.
   */
  adopt(fd: number, dup: boolean): Adopted {
    const adopted = this.adoptDmaBuf(fd, dup);
    if (!adopted) throw wrongFdKind(fd, 'dma-buf');
    return adopted;
  }

  /**
   * adopt(), or undefined (the caller's fd untouched) when fd is no dma-buf: the fdinfo of our
   * own dup, read once, both decides and describes (fromFd's one fdinfo read). The dup holds
   * the file, so what was read is what is adopted, whatever happens to the number meanwhile.
   */
  adoptDmaBuf(fd: number, dup: boolean): Adopted | undefined {
    const own = this.addon.dup(fd, true);
    let info;
    try {
      info = parseFdinfo(this.fdinfo(own));
    } catch (err) {
      this.addon.close(own);
      throw err;
    }
    if (!info.exporter) {
      this.addon.close(own);
      return undefined;
    }
    if (!dup) this.addon.close(fd);
    return { fd: own, info };
  }

  /**
   * inotify on the heap directory (devtmpfs and udev's /dev both report a node's creation).
   * Before the first heap there may be no /dev/dma_heap: its parent is watched until it appears.
   * fs.watch's own errors (ENOSPC: out of inotify watches) are thrown, with the path.
   */
  watchHeaps(changed: () => void, failed: (err: Error) => void): () => void {
    let watcher: fs.FSWatcher | undefined;
    let stopped = false;
    const parent = dirname(this.heapDir);
    const start = () => {
      const dir = fs.existsSync(this.heapDir) ? this.heapDir : parent;
      try {
        watcher = fs.watch(dir, { persistent: true }, (_event, file) => {
          if (stopped) return;
          // the heap directory appeared (watch it instead), or went (inotify goes quiet on a
          // removed directory: back to its parent, for when it comes again)
          const appeared = dir === parent && file === basename(this.heapDir) && fs.existsSync(this.heapDir);
          if (appeared || (dir === this.heapDir && !fs.existsSync(this.heapDir))) {
            watcher?.close();
            try {
              start();
            } catch (err) {
              stopped = true; // nothing left to watch: say so, never throw here
              failed(err as Error);
              return;
            }
          }
          changed();
        });
      } catch (err) {
        throw asDmaHeapError(err, 'watch', dir);
      }
      // the watch died (its directory removed...): the caller hears why
      watcher.on('error', (err) => {
        if (!stopped) failed(asDmaHeapError(err, 'watch', dir));
      });
    };
    start();
    return () => {
      stopped = true;
      watcher?.close();
    };
  }

  /** kind and accounting, from sysfs, debugfs and the device tree (heap-kind.ts) */
  heapTraits(name: string): HeapTraits {
    return heapTraits(name, readHeapFacts(this.sysRoot));
  }

  /** whether /dev/dma_heap has an entry `name` (one lstat, not a listing) */
  hasHeap(name: string): boolean {
    if (!isHeapName(name)) return false;
    try {
      // no exception for the common answer: a thrown ENOENT cost ~20 us, a third of a 4 KiB
      // allocShareable() on a host without heaps, which asks on every call
      return fs.lstatSync(`${this.heapDir}/${name}`, { throwIfNoEntry: false }) !== undefined;
    } catch {
      return false;
    }
  }

  /** a udmabuf (a sealed memfd made a real dma-buf) of `len` page-aligned bytes; the fd is
   *  this thread's from the moment it exists */
  createUdmabuf(len: bigint, cloexec: boolean): number {
    return createUdmabuf(this.addon, this.udmabufDevice(), len, cloexec);
  }

  /**
   * /dev/udmabuf, opened at the first udmabuf and kept (one fd per thread, O_CLOEXEC, closed
   * with the thread's environment), as a C program holds it: not an open and a close per buffer.
   */
  private udmabufDevice(): number {
    if (this.udmabuf < 0) {
      try {
        this.udmabuf = this.addon.open(UDMABUF_PATH, O_RDWR | O_CLOEXEC);
      } catch (err) {
        throw withContext(err, { path: UDMABUF_PATH, device: true });
      }
    }
    return this.udmabuf;
  }

  dup(fd: number, cloexec: boolean): number {
    return this.addon.dup(fd, cloexec);
  }

  close(fd: number): void {
    this.addon.close(fd);
  }

  /** /proc/self/fdinfo/<fd>; a closed fd throws EBADF */
  fdinfo(fd: number): string {
    const path = `/proc/self/fdinfo/${fd}`;
    try {
      return fs.readFileSync(path, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new DmaHeapError(code === 'ENOENT' ? 'EBADF' : code ?? 'EBADF', 'open', { path });
    }
  }

  pollNow(fd: number, events: number): number {
    return this.addon.pollNow(fd, events);
  }

  /**
   * uv_poll on a private dup of fd: the wait holds its own reference to the file, and no two
   * waits ever share an fd number (libuv refuses a second watcher on one: EEXIST, measured).
   * The kernel's answer is read again with pollNow when uv wakes us.
   */
  pollWait(fd: number, events: number, cb: (err: Error | null, revents: number) => void): { stop(): void } {
    const a = this.addon;
    const own = a.dup(fd, true);
    let stopped = false;
    let poller: { stop(): void } | undefined;
    const stop = () => {
      if (stopped) return;
      stopped = true;
      poller?.stop(); // epoll forgets the fd now, before its number can be reused
      a.close(own);
    };
    const uv = (events & POLLIN ? a.abi.UV_READABLE : 0) | (events & POLLOUT ? a.abi.UV_WRITABLE : 0);
    try {
      poller = a.poll(own, uv, (err) => {
        if (stopped) return;
        if (err) {
          stop();
          cb(err, 0);
          return;
        }
        const mask = a.pollNow(own, events);
        if (mask & (events | POLLERR | POLLHUP | POLLNVAL)) {
          stop();
          cb(null, mask);
        }
      });
    } catch (err) {
      a.close(own);
      throw err;
    }
    return { stop };
  }

  /** "MAJ:MIN" from sysfs, or undefined when sysfs does not say */
  private sysfsDevice(name: string): string | undefined {
    try {
      return fs.readFileSync(`${this.sysDir}/${name}/dev`, 'utf8').trim();
    } catch {
      return undefined;
    }
  }
}

/** glibc's dev_t encoding (what st_rdev holds) as sysfs prints it: "MAJ:MIN" */
export function devNumbers(rdev: bigint): string {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & 0xfffff000n);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & 0xffffff00n);
  return `${major}:${minor}`;
}

/** The real kernel for this thread, or null when the addon did not load. */
export function loadNativeKernel(): NativeKernel | null {
  const addon = loadAddon();
  return addon ? new NativeKernel(addon) : null;
}

/** Node's own fs error as the package's: its errno name, the syscall, the path */
function asDmaHeapError(err: unknown, syscall: string, path: string): DmaHeapError {
  const code = (err as NodeJS.ErrnoException).code;
  return new DmaHeapError((code ?? 'EIO') as ErrnoCode, syscall, { path });
}
