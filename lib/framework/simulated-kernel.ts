/**
 * The simulated kernel behind a Framework: the fd table, open, ioctl dispatch, mmap and the
 * mappings' lifetimes, poll, close: what a process's syscalls reach. It speaks the same encoded
 * ioctls as the real kernel (lib/uapi.ts) and fails the same way (DmaHeapError with code,
 * errno and syscall). Its configuration (heaps, access, faults, profile) is the Framework's.
 */
import fs from 'node:fs';
import { IOCTL_SCRATCH_MIN, type Addon } from '../native/addon';
import { DmaHeapError } from '../errors';
import { parseFdinfo } from '../fdinfo';
import type { Adopted, HeapEntry, Kernel } from '../kernel';
import type { HeapTraits } from '../heap-kind';
import { YoungObjects } from '../young';
import { decodeAllocationData, encodeAllocationData, F_SEAL_FUTURE_WRITE, F_SEAL_SHRINK, F_SEAL_WRITE, iocDecode, O_ACCMODE, O_CLOEXEC, O_LARGEFILE, O_RDONLY, O_RDWR, O_WRONLY } from '../uapi';
import { MemfdBacking, nextIno, type Vma } from './backing';
import { type Mapping, mappingOf, stampView } from './mapping';
import { KernelDmaBuf, dmaBufMmapCheck, dmaBufOf } from './dma-buf';
import { allocCmd, type DmaHeap, dmaHeapAllocate, dmaHeapFops, type HeapAllocator } from './dma-heap';
import { POLLERR, POLLHUP, POLLIN, POLLNVAL, POLLOUT } from '../fence-uapi';
import type { DmaFence } from './dma-fence';
import { errno, syscall, syscallError, type SyscallContext } from './errno';
import { KernelSyncFile, syncFileFops, syncFileOf } from './sync-file';
import { type FdSource, FdTable, File, fileFdinfo, type FileOperations } from './file';
import type { Framework } from './framework';

/** a mapping gone (munmap, or forgotten): it holds nothing more, so a view kept after it pins no buffer */
function release(mapping: Mapping): void {
  mapping.held = null;
  mapping.close = undefined;
  mapping.file = null;
}

function ioctlScratch(cmd: number, arg: Uint8Array): Uint8Array {
  const mem = new Uint8Array(Math.max(arg.length, iocDecode(cmd).size, IOCTL_SCRATCH_MIN));
  mem.set(arg);
  return mem;
}

/** How a memfd from elsewhere is adopted: 'softwareBuffer' (another process's software buffer:
 *  writable, whole pages), or 'sharedMemory' (another program's shared memory, as GStreamer's:
 *  any size, and read-only when its maker sealed it against writing) */
export type MemfdPolicy = 'softwareBuffer' | 'sharedMemory';

/**
 * The simulated kernel behind a {@link Framework} (`framework.kernel`): the fd table, ioctl
 * dispatch, mmap, poll. Heaps and buffers opened with `{ framework }` call it as a process's
 * syscalls reach the real kernel; a test may call it directly. Every call fails as the syscall
 * would, with a DmaHeapError naming the errno and syscall (see each method's kernel function).
 *
 * @example
 * ```ts
 * import { openHeap } from 'dma-heap';
 * import { Framework } from 'dma-heap/framework';
 * const framework = new Framework();
 * const buf = openHeap('system', { framework }).alloc(4096);
 * console.log(framework.kernel.fds(), framework.kernel.dmaBuf(buf.fd)?.expName); // [..] 'system'
 * ```
 */
export class SimulatedKernel implements Kernel {
  /** always 'software' */
  readonly backend = 'software' as const;
  readonly backing: 'memfd' | 'js';
  readonly pageSize: number;

  private readonly fdt = new FdTable();
  /**
   * Mappings made this turn, held strongly; from the next turn (age) weakly and watched for
   * being forgotten, if still mapped. Not before: a WeakRef keeps its target alive until the
   * job ends anyway. Not a Set or Map: one going from one entry to none reallocated its table
   * on every buffer.
   */
  private readonly young = new YoungObjects<Mapping>((mapping) => this.age(mapping));
  /** mappings older than a turn and still mapped */
  private readonly aged = new Set<Mapping>();
  /**
   * A forgotten mapping (its memory collected; for memfd the addon has munmapped it) drops its
   * file reference, as exit_mmap would, so the buffer is released and its bytes uncharged.
   */
  private readonly forgotten = new FinalizationRegistry<Mapping>((mapping) => {
    if (mapping.held === null) return;
    this.aged.delete(mapping);
    const { close, file } = mapping;
    release(mapping);
    try {
      close?.();
    } finally {
      file!.put();
    }
  });
  private readonly allocator: HeapAllocator;
  /** dma_heap_fops, bound to this framework's profile and allocator */
  private readonly heapFops: FileOperations<DmaHeap>;
  private readonly allocCmd: number;
  private readonly scratch = new Uint8Array(IOCTL_SCRATCH_MIN);
  private scratchBusy = false;
  private disposed = false;
  private readonly reserve: FdSource;

  /** @internal made by its Framework, which it reads its configuration from */
  constructor(
    /** the configuration this kernel reads (heaps, access, faults) */
    readonly framework: Framework,
    private readonly addon: Addon | null,
  ) {
    this.backing = framework.backing;
    this.pageSize = framework.pageSize;
    this.reserve = framework.reserve;
    this.allocator = {
      pageSize: this.pageSize,
      bufferAlloc: (heap, len, fdFlags, heapFlags) => this.bufferAlloc(heap, len, fdFlags, heapFlags),
      unreserve: (fd) => this.fdt.close(fd),
    };
    this.heapFops = dmaHeapFops(framework.profile, this.allocator);
    this.allocCmd = allocCmd(framework.profile);
  }


  /**
   * Adopt a memfd that came from elsewhere (another process's software buffer, passed over
   * a socket or inherited) as a dma-buf of this framework. The fd itself becomes the
   * buffer's fd. The exporter name is read back from the memfd's name (`dma-heap:<exp_name>`,
   * as allocBacking names them; 'memfd' for any other); a dma-buf name set on the other side
   * does not travel with a memfd.
   *
   * @param fd a memfd sealed against shrinking (F_SEAL_SHRINK), a whole number of pages
   * @param memfds 'softwareBuffer' (a software buffer's memfd) or 'sharedMemory' (another program's
   *   shared memory, below)
   * @returns the same fd, now one of this framework's dma-bufs
   */
  importMemfd(fd: number, memfds: MemfdPolicy = 'softwareBuffer'): number {
    return syscall('open', (ctx) => {
      ctx.path = `/proc/self/fd/${fd}`;
      if (!this.addon || this.backing !== 'memfd' || this.disposed) throw errno('ENODEV');
      const link = fs.readlinkSync(ctx.path);
      const memfd = /^\/memfd:(.*?)(?: \(deleted\))?$/.exec(link);
      if (!memfd) throw errno('EINVAL');
      const expName = memfd[1].startsWith('dma-heap:') ? memfd[1].slice('dma-heap:'.length) : 'memfd';
      // The seals first, then the size: once F_SEAL_SHRINK is on, the size can no longer fall.
      // Read the other way round, a sender that truncates and then seals between the two reads
      // passes with a stale size, and the mapping's tail SIGBUSes this process (the C peer's
      // author found it: test/hazards/memfd-seal-race.test.ts).
      const seals = this.addon.getSeals(fd);
      if ((seals & F_SEAL_SHRINK) === 0) {
        throw errno('EPERM', 'refusing a memfd not sealed against shrinking: its sender could truncate it under our mappings (SIGBUS)');
      }
      // GStreamer's shared memory (gst_shm_allocator: the unixfd elements' memory type 0) is
      // sized the memory plus its alignment, not in pages (measured, 1.26.2: 12295 bytes for a
      // 12288-byte frame, sealed F_SEAL_SHRINK); newer GStreamer also seals F_SEAL_FUTURE_WRITE
      // once its maker mapped it. As 'sharedMemory' it is adopted at its size, read-only when
      // sealed against writing (read() then, as any read-only dma-buf); a software buffer's
      // memfd must be whole pages and writable.
      const writeSealed = (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)) !== 0;
      if (writeSealed && memfds !== 'sharedMemory') {
        throw errno('EPERM', 'refusing a memfd sealed against writing: it could not be mapped as a dma-buf is');
      }
      const { size } = fs.fstatSync(fd);
      if (size <= 0) throw errno('EINVAL');
      if (size % this.pageSize !== 0 && memfds !== 'sharedMemory') {
        throw errno('EINVAL', `refusing a memfd of ${size} bytes: a dma-buf is a whole number of ${this.pageSize}-byte pages`);
      }
      const parsed = parseFdinfo(fs.readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8')).flags;
      const flags = writeSealed ? O_RDONLY | (parsed & O_CLOEXEC) : Number.isNaN(parsed) ? O_RDWR : parsed;
      const backing = new MemfdBacking(this.addon, size, expName, fd);
      const dmabuf = this.framework.exportBacking({ expName, size, flags: flags & O_ACCMODE, backing, priv: backing });
      return this.fdt.install(dmabuf.file, (flags & O_CLOEXEC) !== 0);
    });
  }



  /**
   * the sync_file an fd refers to (its fence: status, signal callbacks)
   *
   * @param fd a simulated fd
   * @returns the sync_file's kernel object, or undefined when fd is no sync_file of this framework
   */
  syncFile(fd: number): KernelSyncFile | undefined {
    if (!this.fdt.has(fd)) return undefined;
    return syncFileOf(this.fdt.lookup(fd).file);
  }

  /** sync_file fds: EXPORT_SYNC_FILE and MERGE install them (O_CLOEXEC), IMPORT and MERGE look them up */
  private readonly syncFiles = {
    lookup: (fd: number): KernelSyncFile | null => this.syncFile(fd) ?? null,
    install: (sf: KernelSyncFile): number => {
      if (this.disposed) throw errno('ENODEV', 'this software framework was disposed');
      return this.fdt.install(new File(sf, syncFileFops, O_RDONLY, nextIno(), this.reserve), true);
    },
  };

  // ---- polling (dma_buf_poll, sync_file_poll) ----

  /**
   * poll(2) on one fd without waiting: the ready subset of `events` (plus POLLERR/POLLHUP); POLLNVAL if not ours
   *
   * @param fd a simulated fd
   * @param events the poll bits to test (POLLIN, POLLOUT)
   * @returns the ready bits
   */
  pollNow(fd: number, events: number): number {
    if (!this.fdt.has(fd)) return POLLNVAL;
    return this.pollFile(this.fdt.lookup(fd).file, events);
  }

  private pollFile(file: File, events: number): number {
    // DEFAULT_POLLMASK without a poll op; do_pollfd keeps what was asked, errors always
    const mask = file.fops.poll ? file.fops.poll(file, events) : POLLIN | POLLOUT;
    return mask & (events | POLLERR | POLLHUP);
  }

  /**
   * Wait for `events` on fd through the event loop: the file's fences call back when they
   * signal, and the mask is checked again on a later turn (never synchronously). The wait
   * holds a file reference (closing fd does not end it) and keeps the loop alive, as a
   * uv_poll on the real kernel does.
   *
   * @param fd a simulated fd
   * @param events the poll bits to wait for
   * @param cb called once, on a later turn, with the ready bits (or an error)
   * @returns a handle whose stop() ends the wait
   */
  pollWait(fd: number, events: number, cb: (err: Error | null, revents: number) => void): {
    /** end the wait: `cb` is not called */
    stop(): void;
  } {
    const file = syscall('poll', () => this.fdt.lookup(fd).file);
    file.get();
    const keepAlive = setInterval(() => {}, 0x7fffffff);
    let armed: DmaFence[] = [];
    let stopped = false;
    let queued = false;
    const disarm = () => {
      for (const f of armed) f.removeCallback(onSignal);
      armed = [];
    };
    const stop = () => {
      if (stopped) return;
      stopped = true;
      disarm();
      clearInterval(keepAlive);
      file.put();
    };
    const check = () => {
      queued = false;
      if (stopped) return;
      const mask = this.pollFile(file, events);
      if (mask & (events | POLLERR | POLLHUP)) {
        stop();
        cb(null, mask);
        return;
      }
      disarm();
      armed = file.fops.pollFences?.(file, events) ?? [];
      for (const f of armed) f.addCallback(onSignal);
    };
    function onSignal() {
      if (queued) return;
      queued = true;
      setImmediate(check);
    }
    onSignal();
    return { stop };
  }

  /**
   * the dma-buf an fd refers to (size, name, cpuAccess, priv: a CmaBuffer for CMA heaps...)
   *
   * @param fd a simulated fd
   * @returns the dma-buf's kernel object, or undefined when fd is no dma-buf of this framework
   */
  dmaBuf(fd: number): KernelDmaBuf | undefined {
    if (!this.fdt.has(fd)) return undefined;
    return dmaBufOf(this.fdt.lookup(fd).file);
  }

  /**
   * the simulated fds open now
   *
   * @returns the fd numbers, ascending (a test checks for leaks with it)
   */
  fds(): number[] {
    return this.fdt.list();
  }

  /** Framework.dispose: unmap every mapping, close every fd, open and adopt nothing more. */
  dispose(): void {
    this.disposed = true;
    for (const { held } of [...this.young.waiting, ...this.aged]) {
      const view = held instanceof WeakRef ? held.deref() : held;
      if (view) this.munmap(view);
    }
    for (const fd of this.fdt.list()) this.close(fd);
  }

  // ---- the Kernel interface (userspace side) ----

  /**
   * The heaps registered, as listHeaps reports them.
   *
   * @returns the registered heaps, by name, with whether the framework's credentials may open each
   */
  heaps(): HeapEntry[] {
    return this.framework.registry
      .all()
      .map((h) => ({
        name: h.name,
        path: h.path,
        accessible: this.framework.mayOpen(h),
        ...this.framework.heapTraits(h.name),
      }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * Call `changed` after every heap the framework adds (Framework.addHeap), as a heap module's
   * load adds a node under /dev/dma_heap.
   *
   * @param changed called after each addition
   * @returns the function that stops it
   */
  watchHeaps(changed: () => void): () => void {
    return this.framework.registry.watch(changed);
  }

  /**
   * What a heap is and whether it is charged (Framework.heapKind; memAccounting).
   *
   * @param name a heap's name
   * @returns its kind and accounting
   */
  heapTraits(name: string): HeapTraits {
    return this.framework.heapTraits(name);
  }

  /**
   * Whether a heap is registered (one lookup, not a listing).
   *
   * @param name a heap's name
   * @returns whether a heap of that name is registered
   */
  hasHeap(name: string): boolean {
    return this.framework.registry.find(name) !== undefined;
  }

  /**
   * open(2) of /dev/dma_heap/<name>: ENOENT for no such heap, EACCES when its access policy refuses, ENODEV once disposed.
   *
   * @param name the heap's name
   * @returns the heap device's new fd (O_RDONLY | O_CLOEXEC)
   */
  openHeap(name: string): number {
    return syscall('open', (ctx) => {
      ctx.path = `/dev/dma_heap/${name}`;
      ctx.heap = name;
      if (this.disposed) throw errno('ENODEV', 'this software framework was disposed');
      const heap = this.framework.registry.find(name);
      if (!heap) throw errno('ENOENT');
      if (!this.framework.mayOpen(heap)) throw errno('EACCES');
      // dma_heap_open; O_RDONLY|O_CLOEXEC as the native kernel opens it
      return this.fdt.install(new File(heap, this.heapFops, O_RDONLY | O_LARGEFILE, heap.ino, this.reserve), true);
    });
  }

  /**
   * The kernel side sees `arg` as the addon hands it to the real kernel: in a zeroed scratch
   * of max(arg.length, _IOC_SIZE(cmd), a page) bytes, so a short struct reads as zero-extended
   * and a string always meets a NUL; arg.length bytes come back. null is a NULL pointer: no
   * memory at all, so any access faults.
   *
   * @param fd a simulated fd
   * @param cmd the ioctl number, e.g. DMA_HEAP_IOCTL_ALLOC
   * @param arg the argument struct's bytes, written back as the kernel does; null for a NULL pointer
   * @returns the ioctl's return value
   */
  ioctl(fd: number, cmd: number, arg: Uint8Array | null): number {
    return syscall('ioctl', (ctx) => this.fileIoctl(this.fdt.lookup(fd).file, cmd, arg, ctx));
  }

  /**
   * The same, run on a later turn of the event loop (never synchronously). The file is looked
   * up and held now, as the kernel's fdget holds it for a syscall in flight (and the addon's
   * pool thread holds its dup): closing fd meanwhile, and a later open reusing the number,
   * cannot send the ioctl to another file.
   *
   * @param fd a simulated fd
   * @param cmd the ioctl number
   * @param arg the argument struct's bytes, or null
   * @returns a promise of the ioctl's return value
   */
  ioctlAsync(fd: number, cmd: number, arg: Uint8Array | null): Promise<number> {
    let file: File;
    try {
      file = syscall('ioctl', () => this.fdt.lookup(fd).file);
    } catch (e) {
      return Promise.reject(e);
    }
    file.get();
    return new Promise((resolve, reject) =>
      setImmediate(() => {
        try {
          resolve(syscall('ioctl', (ctx) => this.fileIoctl(file, cmd, arg, ctx)));
        } catch (e) {
          reject(e);
        } finally {
          file.put();
        }
      }),
    );
  }

  /**
   * The kernel side sees `arg` as the addon hands it to the real kernel: in a zeroed scratch
   * of max(arg.length, _IOC_SIZE(cmd), a page) bytes, so a short struct reads as zero-extended
   * and a string always meets a NUL; arg.length bytes come back. null is a NULL pointer: no
   * memory at all, so any access faults.
   */
  private fileIoctl(file: File, cmd: number, arg: Uint8Array | null, ctx: SyscallContext): number {
    ctx.syncFiles = this.syncFiles;
    // one zeroed page reused (and re-zeroed after) while no other ioctl holds it: a fresh
    // zeroed ArrayBuffer per call cost more than the simulated ioctl itself
    const size = arg === null ? 0 : Math.max(arg.length, iocDecode(cmd).size, IOCTL_SCRATCH_MIN);
    const shared = size === IOCTL_SCRATCH_MIN && !this.scratchBusy;
    const mem = arg === null ? new Uint8Array(0) : shared ? this.scratch : ioctlScratch(cmd, arg);
    if (shared) {
      this.scratchBusy = true;
      mem.set(arg!);
    }
    try {
      if (!file.fops.unlockedIoctl) throw errno('ENOTTY');
      return file.fops.unlockedIoctl(file, cmd, mem, ctx);
    } finally {
      arg?.set(mem.subarray(0, arg.length));
      if (shared) {
        mem.fill(0);
        this.scratchBusy = false;
      }
    }
  }

  /**
   * DMA_HEAP_IOCTL_ALLOC without encoding the struct: what Heap.alloc calls.
   *
   * @param fd a heap device fd
   * @param cmd the profile's ALLOC ioctl number
   * @param len bytes
   * @param fdFlags the new fd's flags (O_RDWR, O_CLOEXEC)
   * @returns the new dma-buf's fd
   */
  heapAlloc(fd: number, cmd: number, len: bigint, fdFlags: number): number {
    const data = { len, fd: 0, fdFlags, heapFlags: 0n };
    // Heap.alloc's typed call: with the profile's ALLOC on a heap device, dma_heap_ioctl's table
    // lookup and struct copies decide nothing, so the handler runs on the struct as it would
    // be copied in. Anything else takes the encoded path and its errors.
    const file = cmd === this.allocCmd ? this.fdt.get(fd)?.file : undefined;
    if (file?.fops === this.heapFops) {
      const heap = file.priv as DmaHeap;
      try {
        return dmaHeapAllocate(heap, data, this.allocator);
      } catch (e) {
        throw syscallError(e, 'ioctl', { path: heap.path, heap: heap.name });
      }
    }
    const arg = encodeAllocationData(data);
    this.ioctl(fd, cmd, arg);
    return decodeAllocationData(arg).fd;
  }

  /**
   * munmap then close, in one call (what DmaBuf.close() does).
   *
   * @param fd a simulated fd
   * @param view the mapping to unmap first, if any
   */
  closeMapped(fd: number, view: Uint8Array | undefined): void {
    this.closeMappedBy(fd, view, false);
  }

  /**
   * closeMapped, the real close of a memfd buffer on the libuv pool (where its pages are freed)
   *
   * @param fd a simulated fd
   * @param view the mapping to unmap first, if any
   * @returns a promise settled once the fd is closed
   */
  closeMappedAsync(fd: number, view: Uint8Array | undefined): Promise<void> {
    try {
      return this.closeMappedBy(fd, view, true) ?? Promise.resolve();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** a Promise when `async` and the addon closes on the libuv pool, else nothing */
  private closeMappedBy(fd: number, view: Uint8Array | undefined, async: boolean): Promise<void> | undefined {
    // A memfd buffer's own mapping and fd: the same bookkeeping as munmap then close, with
    // the real munmap and close made by one addon call.
    const mapping = view ? this.live(view) : undefined;
    const backing = mapping ? dmaBufOf(mapping.file!)?.backing : undefined;
    if (mapping && backing instanceof MemfdBacking && this.fdt.get(fd)?.file === mapping.file) {
      const mapped = mapping.file!;
      this.unlink(mapping);
      const { file } = this.fdt.take(fd);
      try {
        try {
          return backing.closeMapped(fd, view!, async);
        } finally {
          mapped.put();
          file.put(); // may release the buffer
        }
      } catch (e) {
        throw syscallError(e, 'close');
      }
    }
    // the fd first: when the mapping then holds the last reference, its munmap knows the
    // buffer goes with it (JS memory then needs no copy to outlive its views)
    try {
      this.close(fd);
    } finally {
      if (view) this.munmap(view);
    }
    return undefined;
  }

  /**
   * lseek(fd, 0, SEEK_END): a dma-buf's size; ESPIPE for a heap device.
   *
   * @param fd a simulated fd
   * @returns the file's size in bytes
   */
  seekEnd(fd: number): number {
    try {
      const { file } = this.fdt.lookup(fd);
      if (!file.fops.llseekEnd) throw errno('ESPIPE'); // the heap device is nonseekable_open
      return file.fops.llseekEnd(file);
    } catch (e) {
      throw syscallError(e, 'lseek');
    }
  }

  /**
   * mmap(MAP_SHARED) in do_mmap's order: offset page-aligned and length > 0 (EINVAL); a
   * writable mapping needs a file open for writing and any shared mapping one open for
   * reading (EACCES); the file must have mmap (heap device: ENODEV); then
   * dma_buf_mmap_internal's bounds (EINVAL). The mapping holds a file reference (vm_file).
   *
   * @param fd a simulated fd
   * @param length bytes, > 0
   * @param offset a page-aligned offset
   * @param writable PROT_WRITE as well as PROT_READ
   * @returns the mapping
   */
  mmap(fd: number, length: number, offset: number, writable: boolean): Uint8Array {
    let file: File;
    let vma: Vma;
    try {
      ({ file, vma } = this.prepareMmap(fd, length, offset, writable));
    } catch (e) {
      throw syscallError(e, 'mmap');
    }
    file.get(); // vma->vm_file
    try {
      file.fops.mmap!(file, vma, this.pageSize);
    } catch (e) {
      file.put();
      throw syscallError(e, 'mmap');
    }
    const view = vma.view!;
    const mapping: Mapping = { owner: this, close: vma.close, file, held: view };
    if (!stampView(view, mapping)) {
      // an exporter's mmap handed out a view that already is a mapping (or cannot be one)
      try {
        vma.close?.(view, false);
      } finally {
        file.put();
      }
      throw syscallError(errno('EINVAL'), 'mmap');
    }
    this.young.add(mapping);
    return view;
  }

  /** a mapping older than a turn and still mapped: now held weakly, watched for being forgotten */
  private age(mapping: Mapping): void {
    const view = mapping.held;
    if (!(view instanceof Uint8Array)) return;
    mapping.held = new WeakRef(view);
    this.aged.add(mapping);
    // A memfd mapping lives as long as its ArrayBuffer (the addon unmaps it when collected);
    // JS memory is shared by all mappings of the buffer, so the view stands for the mapping.
    this.forgotten.register(dmaBufOf(mapping.file!)?.backing?.kind === 'js' ? view : view.buffer, mapping, mapping);
  }

  /** the mapping a view of ours still maps; undefined once unmapped. Not ours: TypeError. */
  private live(view: Uint8Array): Mapping | undefined {
    const mapping = mappingOf(view);
    if (mapping?.owner !== this) throw new TypeError('munmap: not a mapping made by this framework');
    return mapping.held === null ? undefined : mapping;
  }

  /** munmap's bookkeeping: the mapping is no longer live (read its file and close first: they are the caller's now) */
  private unlink(mapping: Mapping): void {
    if (!this.young.drop(mapping)) {
      this.aged.delete(mapping);
      this.forgotten.unregister(mapping);
    }
    release(mapping);
  }

  /**
   * munmap(2): the mapping is detached and its file reference dropped.
   *
   * @param view a mapping mmap() returned
   */
  munmap(view: Uint8Array): void {
    const mapping = this.live(view);
    if (!mapping) return; // unmapped already
    const { close } = mapping;
    const file = mapping.file!;
    this.unlink(mapping);
    try {
      try {
        close?.(view, file.fCount === 1);
      } finally {
        file.put(); // may release the buffer
      }
    } catch (e) {
      throw syscallError(e, 'munmap');
    }
  }

  /**
   * Copy through a brief mapping nobody else sees (for read-only buffers and runtimes that
   * refuse external ArrayBuffers): the same checks as mmap of the pages spanned, syscall 'mmap'.
   * Framework memory is copied by its backing without a mapping (the addon's pread/pwrite for a
   * memfd, a plain copy for JS memory); an exporter's own memory through a mapping made and
   * unmapped here. Zero bytes: nothing happens, as in the addon.
   *
   * @param fd a simulated fd
   * @param offset where to start, in bytes
   * @param dst filled with dst.length bytes
   */
  readMapped(fd: number, offset: number, dst: Uint8Array): void {
    this.copyMapped(fd, offset, dst, false);
  }

  /**
   * The same as readMapped, the other way: copy `src` in at `offset`.
   *
   * @param fd a simulated fd
   * @param offset where to start, in bytes
   * @param src the bytes to copy in
   */
  writeMapped(fd: number, offset: number, src: Uint8Array): void {
    this.copyMapped(fd, offset, src, true);
  }

  /**
   * dup(2) (fcntl F_DUPFD_CLOEXEC when `cloexec`).
   *
   * @param fd a simulated fd
   * @param cloexec O_CLOEXEC on the new fd
   * @returns the new fd
   */
  dup(fd: number, cloexec: boolean): number {
    return syscall('dup', () => this.fdt.dup(fd, cloexec));
  }

  /**
   * close(2): EBADF for an fd that is not open; nothing once the framework was disposed.
   *
   * @param fd a simulated fd
   */
  close(fd: number): void {
    // dispose() closed every fd already: a handle closing afterwards has nothing left to do
    // (the framework opens nothing more, so the number can't be another file of ours)
    if (this.disposed && !this.fdt.has(fd)) return;
    try {
      this.fdt.close(fd);
    } catch (e) {
      throw syscallError(e, 'close');
    }
  }

  /**
   * /proc/self/fdinfo/<fd>: EBADF (syscall open) for an fd that is not the framework's, as the
   *  native kernel reports a closed fd (procfs itself says ENOENT; both kernels say EBADF)
   *
   * @param fd a simulated fd
   * @returns the fdinfo text (pos, flags, mnt_id, ino, then the file's own lines)
   */
  fdinfo(fd: number): string {
    return syscall('open', (ctx) => {
      ctx.path = `/proc/self/fdinfo/${fd}`;
      if (!this.fdt.has(fd)) throw errno('EBADF');
      const { file, cloexec } = this.fdt.lookup(fd);
      return fileFdinfo(file, cloexec);
    });
  }

  /**
   * Whether fd is a dma-buf of this framework.
   *
   * @param fd a simulated fd
   * @returns whether fd is one of this framework's dma-bufs
   */
  isDmaBuf(fd: number): boolean {
    return this.dmaBuf(fd) !== undefined;
  }

  /**
   * whether adopt() can take fd: one of this framework's dma-bufs, or (memfd backing) a memfd
   *
   * @param fd any fd
   * @returns whether adopt() would take it
   */
  canAdopt(fd: number): boolean {
    if (this.isDmaBuf(fd)) return true;
    if (!this.addon || this.backing !== 'memfd') return false;
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith('/memfd:');
    } catch {
      return false;
    }
  }

  /**
   * Kernel.adopt: one of this framework's dma-bufs is dup'ed in the fd table; a memfd from
   * elsewhere (another process's software buffer) is imported as a dma-buf through a private
   * dup (importMemfd). `dup` false then closes the caller's fd. A failure leaves it untouched.
   *
   * @param fd a dma-buf of this framework, or a memfd
   * @param dup keep the caller's fd open (false closes it once adopted)
   * @param memfds how a memfd from elsewhere is taken (MemfdPolicy: default 'softwareBuffer')
   * @returns the buffer's own fd and its parsed fdinfo
   */
  adopt(fd: number, dup: boolean, memfds: MemfdPolicy = 'softwareBuffer'): Adopted {
    let own: number;
    if (this.isDmaBuf(fd)) {
      own = this.dup(fd, true);
      if (!dup) this.close(fd);
    } else {
      if (!this.addon) throw new DmaHeapError('ENODEV', 'open', { path: `/proc/self/fd/${fd}`, message: 'memfds need the native addon' });
      const copy = this.addon.dup(fd, true);
      try {
        own = this.importMemfd(copy, memfds); // the framework takes the copy over as the buffer's fd
      } catch (err) {
        if (!this.isDmaBuf(copy)) this.addon.close(copy);
        throw err;
      }
      if (!dup) this.addon.close(fd);
    }
    return { fd: own, info: parseFdinfo(this.fdinfo(own)) };
  }

  // ---- internals ----

  /** mmap's checks, in do_mmap's order, then dma_buf_mmap_internal's; nothing mapped yet */
  private prepareMmap(fd: number, length: number, offset: number, writable: boolean): { file: File; vma: Vma } {
    const { file } = this.fdt.lookup(fd);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset % this.pageSize !== 0) throw errno('EINVAL');
    if (!Number.isSafeInteger(length) || length <= 0) throw errno('EINVAL');
    const mode = file.fFlags & O_ACCMODE;
    if (writable && mode !== O_WRONLY && mode !== O_RDWR) throw errno('EACCES');
    if (mode !== O_RDONLY && mode !== O_RDWR) throw errno('EACCES');
    if (!file.fops.mmap) throw errno('ENODEV'); // no f_op->mmap
    return { file, vma: { fd, pgoff: offset / this.pageSize, offset, length, writable } };
  }

  private copyMapped(fd: number, offset: number, bytes: Uint8Array, write: boolean): void {
    if (bytes.length === 0) return;
    syscall('mmap', () => {
      if (!Number.isSafeInteger(offset) || offset < 0) throw errno('EINVAL');
      const base = Math.floor(offset / this.pageSize) * this.pageSize;
      const { file, vma } = this.prepareMmap(fd, offset - base + bytes.length, base, write);
      const dmabuf = dmaBufOf(file);
      if (dmabuf?.backing) {
        dmaBufMmapCheck(dmabuf, vma, this.pageSize); // what mmap would check; nothing is mapped
        dmabuf.backing.copy(fd, offset, bytes, write);
        return;
      }
      const view = this.mmap(fd, offset - base + bytes.length, base, write);
      try {
        if (write) view.set(bytes, offset - base);
        else bytes.set(view.subarray(offset - base));
      } finally {
        this.munmap(view);
      }
    });
  }

  /** dma_heap_buffer_alloc after the PAGE_ALIGN: faults, ops->allocate, then dma_buf_fd */
  private bufferAlloc(heap: DmaHeap, len: bigint, fdFlags: number, heapFlags: bigint): number {
    this.framework.faults.check(heap.name, len);
    const dmabuf = heap.ops.allocate(heap, len, fdFlags, heapFlags);
    if (!(dmabuf instanceof KernelDmaBuf)) throw new TypeError(`heap ${heap.name}: allocate must return dmaBufExport()'s dma-buf`);
    dmabuf.account = this.framework.faults.account(heap.name);
    dmabuf.account.charge(dmabuf.size);
    try {
      return this.fdt.install(dmabuf.file, (fdFlags & O_CLOEXEC) !== 0);
    } catch (e) {
      dmabuf.file.put(); // dma_buf_put: the release frees it
      throw e;
    }
  }
}
